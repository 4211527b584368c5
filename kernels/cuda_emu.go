package kernels

import (
	"fmt"
	"sync"
	"sync/atomic"

	"purpcode/kernels/ptxemu"
)

// EmulatedArch is the architecture an emulated context reports: kernels
// are compiled by NVRTC for it exactly as for an A100, and the emulator
// runs that PTX.
const EmulatedArch = "compute_80"

// emulatedSharedOptin is the A100's opt-in limit of shared memory per
// block (163 KiB), the limit SetMaxDynamicShared enforces on the emulator.
const emulatedSharedOptin = 163 << 10

// emuDevice is the emulated backend of a Context: a ptxemu.Device plus
// the bookkeeping the driver would do (live allocations, streams). Every
// operation runs to completion under mu before its call returns, which is
// a valid schedule of any set of in-order streams.
type emuDevice struct {
	mu        sync.Mutex
	dev       *ptxemu.Device
	allocs    map[DevicePtr]uint64 // base -> size, for the GEMM's bounds checks
	destroyed bool
	last      ptxemu.Stats
}

type emuModule struct {
	d *emuDevice
	m *ptxemu.Module
}

type emuKernel struct {
	k *ptxemu.Kernel
}

// emuStream marks a stream of an emulated context; destroyed streams are
// rejected like the driver rejects a destroyed handle.
type emuStream struct{ destroyed atomic.Bool }

// NewEmulatedContext returns a Context whose device is the PTX emulator
// (kernels/ptxemu) with opts: device memory, modules and launches go to
// the interpreter, cuBLASLt calls (through EmulatedCublasLt) to a
// reference GEMM. Dev reports compute capability 8.0, so the PTX loaded
// is what NVRTC produces for an A100.
func NewEmulatedContext(opts ptxemu.Options) (*Context, error) {
	d := &emuDevice{dev: ptxemu.NewDevice(opts), allocs: map[DevicePtr]uint64{}}
	return &Context{emu: d, Dev: DeviceInfo{
		Name:           "ptxemu (emulated " + EmulatedArch + ")",
		Major:          8,
		Minor:          0,
		SMs:            1,
		MaxSharedOptin: emulatedSharedOptin,
		handle:         -1,
	}}, nil
}

// LastLaunchStats is what the emulator counted for the most recent launch
// on c (false on a real device or before any launch).
func (c *Context) LastLaunchStats() (ptxemu.Stats, bool) {
	if c.emu == nil {
		return ptxemu.Stats{}, false
	}
	c.emu.mu.Lock()
	defer c.emu.mu.Unlock()
	return c.emu.last, true
}

func (d *emuDevice) lock() error {
	d.mu.Lock()
	if d.destroyed {
		d.mu.Unlock()
		return fmt.Errorf("emulated context used after Destroy")
	}
	return nil
}

func (d *emuDevice) destroy() error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	for p := range d.allocs {
		_ = d.dev.Free(uint64(p))
	}
	d.allocs = nil
	d.destroyed = true
	return nil
}

func (d *emuDevice) memAlloc(n uint64) (DevicePtr, error) {
	if err := d.lock(); err != nil {
		return 0, err
	}
	defer d.mu.Unlock()
	a, err := d.dev.Alloc(n)
	if err != nil {
		return 0, fmt.Errorf("emulated cuMemAlloc(%d bytes): %w", n, err)
	}
	d.allocs[DevicePtr(a)] = n
	return DevicePtr(a), nil
}

func (d *emuDevice) memFree(p DevicePtr) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if _, ok := d.allocs[p]; !ok {
		return fmt.Errorf("emulated cuMemFree(%#x): not the start of a live allocation", uint64(p))
	}
	delete(d.allocs, p)
	if err := d.dev.Free(uint64(p)); err != nil {
		return fmt.Errorf("emulated cuMemFree(%#x): %w", uint64(p), err)
	}
	return nil
}

func (d *emuDevice) write(dst DevicePtr, src []byte) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if err := d.dev.Write(uint64(dst), src); err != nil {
		return fmt.Errorf("emulated copy of %d bytes to %#x: %w", len(src), uint64(dst), err)
	}
	return nil
}

func (d *emuDevice) read(dst []byte, src DevicePtr) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if err := d.dev.Read(dst, uint64(src)); err != nil {
		return fmt.Errorf("emulated copy of %d bytes from %#x: %w", len(dst), uint64(src), err)
	}
	return nil
}

func (d *emuDevice) memset(dst DevicePtr, n uint64) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if err := d.dev.Memset(uint64(dst), 0, n); err != nil {
		return fmt.Errorf("emulated memset of %d bytes at %#x: %w", n, uint64(dst), err)
	}
	return nil
}

// span returns the live allocation holding [p, p+n), for argument checks
// that must name the buffer a bad pointer falls outside of.
func (d *emuDevice) span(p DevicePtr, n uint64) (base DevicePtr, size uint64, ok bool) {
	for b, sz := range d.allocs {
		if p >= b && uint64(p-b) < sz {
			return b, sz, uint64(p-b)+n <= sz
		}
	}
	return 0, 0, false
}

func (d *emuDevice) newStream() Stream { return Stream{es: &emuStream{}} }

// stream checks that s can be used on this context.
func (d *emuDevice) stream(s Stream) error {
	switch {
	case s.h != nil:
		return fmt.Errorf("a stream of a real CUDA context used on an emulated context")
	case s.es != nil && s.es.destroyed.Load():
		return fmt.Errorf("stream used after DestroyStream")
	}
	return nil
}

func (d *emuDevice) destroyStream(s Stream) error {
	if s.es == nil {
		return fmt.Errorf("DestroyStream: the default stream cannot be destroyed")
	}
	if err := d.stream(s); err != nil {
		return err
	}
	s.es.destroyed.Store(true)
	return nil
}

func (d *emuDevice) loadModule(ptx []byte) (*emuModule, error) {
	if err := d.lock(); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	m, err := d.dev.LoadModule(ptx)
	if err != nil {
		return nil, fmt.Errorf("emulated cuModuleLoadData: %w", err)
	}
	return &emuModule{d: d, m: m}, nil
}

// kernel looks name up and cross-checks the emulator's .param sizes with
// the launcher's parse of the same PTX: the two must encode one ABI.
func (m *emuModule) kernel(name string, params []KernelParam) (*emuKernel, error) {
	k, err := m.m.Kernel(name)
	if err != nil {
		return nil, fmt.Errorf("emulated cuModuleGetFunction %s: %w", name, err)
	}
	got := k.Params()
	if len(got) != len(params) {
		return nil, fmt.Errorf("kernel %s: the emulator sees %d .params, the launcher %d", name, len(got), len(params))
	}
	for i, p := range got {
		if p.Size != params[i].Size {
			return nil, fmt.Errorf("kernel %s: .param %d is %d bytes to the emulator, %d to the launcher", name, i, p.Size, params[i].Size)
		}
	}
	return &emuKernel{k: k}, nil
}

func (d *emuDevice) launch(k *emuKernel, grid, block Dim3, shmem uint32, s Stream, args [][]byte) error {
	if err := d.stream(s); err != nil {
		return err
	}
	if err := d.lock(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	st, err := d.dev.Launch(k.k, [3]uint32{grid.X, grid.Y, grid.Z}, [3]uint32{block.X, block.Y, block.Z}, shmem, args)
	d.last = st
	if err != nil {
		return fmt.Errorf("emulated launch: %w", err)
	}
	return nil
}

// inBounds reports an error unless [p, p+n) lies inside one live
// allocation.
func (d *emuDevice) inBounds(p DevicePtr, n uint64) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	base, size, ok := d.span(p, n)
	switch {
	case size == 0:
		return fmt.Errorf("%#x is not inside any live allocation", uint64(p))
	case !ok:
		return fmt.Errorf("[%#x, +%d) runs past the end of the %d-byte allocation at %#x", uint64(p), n, size, uint64(base))
	}
	return nil
}
