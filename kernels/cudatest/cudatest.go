package cudatest

import (
	"errors"
	"fmt"
	"testing"

	"purpcode/kernels"
	"purpcode/kernels/ptxemu"
)

// Device kinds accepted by Open (the tests' -cuda-device flag).
const (
	Emulated = "emu"  // the PTX emulator: NVRTC only, no GPU
	Real     = "real" // the first GPU of the CUDA driver
)

// FlagUsage is the help text of the tests' -cuda-device flag.
const FlagUsage = "device the CUDA kernel tests run on: " + Emulated + " (PTX emulator) or " + Real + " (first GPU)"

// ErrNoNVRTC is wrapped by Open's error when NVRTC cannot be loaded: the
// kernels cannot be compiled for any device.
var ErrNoNVRTC = errors.New("NVRTC not loadable")

// Kit is a context on the chosen device with the embedded kernels, bound
// to one test: its helpers fail the test on any error.
type Kit struct {
	t   testing.TB
	Ctx *kernels.Context
	KS  *kernels.KernelSet
}

// Open returns a Kit on device (Emulated or Real); the context is
// destroyed when the test ends. A missing NVRTC is ErrNoNVRTC; a missing
// GPU or driver under Real is a plain error (asking for a real device on
// a machine without one is the caller's mistake, not a skip).
func Open(t testing.TB, device string) (*Kit, error) {
	t.Helper()
	var (
		ctx *kernels.Context
		err error
	)
	n, nerr := kernels.LoadNVRTC(kernels.CUDALibOptions{})
	if nerr != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoNVRTC, nerr)
	}
	switch device {
	case Emulated:
		ctx, err = kernels.NewEmulatedContext(ptxemu.Options{})
	case Real:
		ctx, err = openReal()
	default:
		return nil, fmt.Errorf("-cuda-device %q: want %q or %q", device, Emulated, Real)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s CUDA device: %w", device, err)
	}
	t.Cleanup(func() {
		if err := ctx.Destroy(); err != nil {
			t.Errorf("destroy CUDA context: %v", err)
		}
	})
	return &Kit{t: t, Ctx: ctx, KS: kernels.NewKernelSet(ctx, n, nil)}, nil
}

// Must is Open for a test that cannot go on without the device: a missing
// NVRTC goes to noNVRTC with what was looked for (tests pass
// testref.Missing's NVRTC form, so CI fails where a user's machine skips);
// any other error fails the test.
func Must(t testing.TB, device string, noNVRTC func(detail string)) *Kit {
	t.Helper()
	k, err := Open(t, device)
	if errors.Is(err, ErrNoNVRTC) {
		noNVRTC(err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func openReal() (*kernels.Context, error) {
	drv, err := kernels.LoadDriver(kernels.CUDALibOptions{})
	if err != nil {
		return nil, err
	}
	devs, err := drv.Devices()
	if err != nil {
		return nil, err
	}
	if len(devs) == 0 {
		return nil, fmt.Errorf("the CUDA driver %s sees no GPU", drv.VersionString())
	}
	return drv.NewContext(devs[0])
}

// Up copies data (a slice type kernels.Context.Upload takes) to a new
// device buffer.
func (k *Kit) Up(data any) kernels.DevicePtr {
	k.t.Helper()
	p, err := k.Ctx.Upload(data)
	if err != nil {
		k.t.Fatal(err)
	}
	return p
}

// Alloc returns n bytes of zeroed device memory (zeroed so that a kernel
// that leaves part of an output unwritten is compared against zeros, not
// reported as a read of never-written memory by a later download).
func (k *Kit) Alloc(n int) kernels.DevicePtr {
	k.t.Helper()
	p, err := k.Ctx.MemAlloc(uint64(max(n, 1)))
	if err != nil {
		k.t.Fatal(err)
	}
	if err := k.Ctx.ZeroAsync(p, uint64(max(n, 1)), kernels.Stream{}); err != nil {
		k.t.Fatal(err)
	}
	return p
}

// Down fills dst (a slice type kernels.Context.Download takes) from src.
func (k *Kit) Down(dst any, src kernels.DevicePtr) {
	k.t.Helper()
	if err := k.Ctx.Synchronize(kernels.Stream{}); err != nil {
		k.t.Fatal(err)
	}
	if err := k.Ctx.Download(dst, src); err != nil {
		k.t.Fatal(err)
	}
}

// Launch runs the embedded kernel name on the default stream.
func (k *Kit) Launch(name string, grid, block kernels.Dim3, shmem uint32, args ...any) {
	k.t.Helper()
	f, err := k.KS.Function(name)
	if err != nil {
		k.t.Fatal(err)
	}
	if shmem > 48<<10 {
		if err := f.SetMaxDynamicShared(int(shmem)); err != nil {
			k.t.Fatal(err)
		}
	}
	if err := f.Launch(grid, block, shmem, kernels.Stream{}, args...); err != nil {
		k.t.Fatalf("%s: %v", name, err)
	}
}

// Grid is the 1-D grid of ceil(n/per) blocks (at least one).
func Grid(n, per int) kernels.Dim3 { return kernels.Dim3{X: uint32(max((n+per-1)/per, 1)), Y: 1, Z: 1} }

// Block is a 1-D block of n threads.
func Block(n int) kernels.Dim3 { return kernels.Dim3{X: uint32(n), Y: 1, Z: 1} }
