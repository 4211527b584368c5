package cuda

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"purpcode/engine"
	"purpcode/kernels"
	"purpcode/kernels/ptxemu"
)

// Emulated is the --device name of the PTX emulator.
const Emulated = "cuda-emu"

// Backend runs the engine's ops on one CUDA device.
type Backend struct {
	name string
	ctx  *kernels.Context
	ks   *kernels.KernelSet
	lt   *kernels.LtHandle

	gemms     map[kernels.GemmSpec]*kernels.LtGemm
	workspace kernels.DevicePtr
	wsBytes   uint64

	// scratch are reused device buffers, grown on demand, for host
	// slices an op uploads (ids, positions, targets) and for temporaries.
	scratch map[string]scratchBuf
	errBuf  kernels.DevicePtr // one int the kernels set on a bad id/position

	mem *memStats
	tag string // the category Alloc attributes to (engine.Mem*)
}

// memStats is the allocation accounting shared by a backend and its
// Tagged views.
type memStats struct {
	owner      map[kernels.DevicePtr]string // live allocation -> category
	size       map[kernels.DevicePtr]uint64
	live, peak map[string]uint64
	total      uint64
	totalPeak  uint64
}

func (m *memStats) add(p kernels.DevicePtr, cat string, n uint64) {
	m.owner[p], m.size[p] = cat, n
	m.live[cat] += n
	m.peak[cat] = max(m.peak[cat], m.live[cat])
	m.total += n
	m.totalPeak = max(m.totalPeak, m.total)
}

func (m *memStats) remove(p kernels.DevicePtr) {
	n, ok := m.size[p]
	if !ok {
		return
	}
	m.live[m.owner[p]] -= n
	m.total -= n
	delete(m.owner, p)
	delete(m.size, p)
}

type scratchBuf struct {
	p kernels.DevicePtr
	n uint64
}

var _ engine.Backend = (*Backend)(nil)

// Options selects where the CUDA libraries are looked for.
type Options struct {
	Libs kernels.CUDALibOptions
	// Cache, when set, keeps compiled PTX between runs.
	Cache *kernels.PTXCache
	// PrimaryContext computes in the device's primary context, which NCCL
	// requires (kernels.NCCL.InitRank): set it for a rank of a multi-GPU run.
	PrimaryContext bool
}

// ParseDevice checks a --device value: "cpu", "cuda", "cuda:N" or
// "cuda-emu". It returns the GPU index for the CUDA forms (-1 for cpu and
// the emulator).
func ParseDevice(spec string) (index int, err error) {
	switch {
	case spec == "cpu" || spec == Emulated:
		return -1, nil
	case spec == "cuda":
		return 0, nil
	case strings.HasPrefix(spec, "cuda:"):
		n, err := strconv.Atoi(spec[len("cuda:"):])
		if err != nil || n < 0 {
			return 0, fmt.Errorf("device %q: want cuda:N with N a GPU index", spec)
		}
		return n, nil
	}
	return 0, fmt.Errorf("device %q: want cpu, cuda, cuda:N or %s", spec, Emulated)
}

// Open returns a backend on the device spec names ("cuda", "cuda:N" or
// "cuda-emu"). Errors name the library or device that is missing and
// where it was looked for, in one line.
func Open(spec string, opts Options) (*Backend, error) {
	idx, err := ParseDevice(spec)
	if err != nil {
		return nil, err
	}
	if spec == "cpu" {
		return nil, fmt.Errorf("device cpu is not a CUDA device")
	}
	nvrtc, err := kernels.LoadNVRTC(opts.Libs)
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", spec, err)
	}
	var ctx *kernels.Context
	name := spec
	if spec == Emulated {
		ctx, err = kernels.NewEmulatedContext(ptxemu.Options{})
	} else {
		ctx, err = openGPU(idx, opts.Libs, opts.PrimaryContext)
		name = fmt.Sprintf("cuda:%d", idx)
	}
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", spec, err)
	}
	lib, err := kernels.CublasLtFor(ctx, opts.Libs)
	if err != nil {
		_ = ctx.Destroy()
		return nil, fmt.Errorf("device %s: %w", spec, err)
	}
	h, err := lib.NewHandle(ctx)
	if err != nil {
		_ = ctx.Destroy()
		return nil, fmt.Errorf("device %s: cuBLASLt handle: %w", spec, err)
	}
	b := &Backend{
		name: name, ctx: ctx, ks: kernels.NewKernelSet(ctx, nvrtc, opts.Cache), lt: h,
		gemms: map[kernels.GemmSpec]*kernels.LtGemm{}, scratch: map[string]scratchBuf{},
		mem: &memStats{owner: map[kernels.DevicePtr]string{}, size: map[kernels.DevicePtr]uint64{},
			live: map[string]uint64{}, peak: map[string]uint64{}},
		tag: engine.MemOther,
	}
	if !ctx.Emulated() {
		b.wsBytes = 32 << 20 // cuBLASLt's recommendation for Hopper
		if b.workspace, err = ctx.MemAlloc(b.wsBytes); err != nil {
			b.Close()
			return nil, fmt.Errorf("device %s: cuBLASLt workspace: %w", spec, err)
		}
	}
	if b.errBuf, err = ctx.MemAlloc(4); err != nil {
		b.Close()
		return nil, fmt.Errorf("device %s: %w", spec, err)
	}
	b.zeroBytes(b.errBuf, 4)
	return b, nil
}

func openGPU(idx int, libs kernels.CUDALibOptions, primary bool) (*kernels.Context, error) {
	drv, err := kernels.LoadDriver(libs)
	if err != nil {
		return nil, err
	}
	devs, err := drv.Devices()
	if err != nil {
		return nil, err
	}
	if idx >= len(devs) {
		return nil, fmt.Errorf("GPU %d requested, the CUDA driver %s sees %d", idx, drv.VersionString(), len(devs))
	}
	if primary {
		return drv.NewPrimaryContext(devs[idx])
	}
	return drv.NewContext(devs[idx])
}

// NCCLDevice is the backend's device for dist.NewNCCL; its context must
// be the primary one (Options.PrimaryContext).
func (b *Backend) NCCLDevice() kernels.NCCLDevice { return kernels.NewNCCLDevice(b.ctx) }

// Close frees the device and everything allocated on it.
func (b *Backend) Close() error {
	for _, g := range b.gemms {
		g.Destroy()
	}
	if b.lt != nil {
		_ = b.lt.Destroy()
	}
	// Free what is still allocated before letting the context go: a
	// primary context (Options.PrimaryContext) outlives Destroy while
	// NCCL's runtime holds it, and its memory with it.
	var errs []error
	for p := range b.mem.owner {
		errs = append(errs, b.ctx.MemFree(p))
		b.mem.remove(p)
	}
	for _, p := range []kernels.DevicePtr{b.workspace, b.errBuf} {
		if p != 0 {
			errs = append(errs, b.ctx.MemFree(p))
		}
	}
	b.workspace, b.errBuf = 0, 0
	return errors.Join(append(errs, b.ctx.Destroy())...)
}

// Name is the device as the user named it ("cuda:0", "cuda-emu").
func (b *Backend) Name() string { return b.name }

// Describe names the device and the GPU (or the emulator) behind it.
func (b *Backend) Describe() string { return b.name + " (" + b.ctx.Dev.Name + ")" }

// ActDType is BF16: activations and compute weights are bf16.
func (b *Backend) ActDType() engine.DType { return engine.BF16 }

// Tagged returns a view of b whose allocations are attributed to
// category (engine.Tagged); it shares b's device and accounting.
func (b *Backend) Tagged(category string) engine.Backend {
	v := *b
	v.tag = category
	return &v
}

// PeakBytes is the most device memory held at once per category and in
// "total" (engine.MemoryReporter).
func (b *Backend) PeakBytes() map[string]int64 {
	out := map[string]int64{"total": int64(b.mem.totalPeak)}
	for c, n := range b.mem.peak {
		out[c] = int64(n)
	}
	return out
}

// check turns a driver error into a panic naming the op: the ops have no
// error results (like the CPU ones, a failure is a programmer or device
// fault, not bad user data, which the model validates first).
func check(op string, err error) {
	if err != nil {
		panic(fmt.Sprintf("cuda.%s: %v", op, err))
	}
}

// Alloc returns a zeroed tensor in device memory.
func (b *Backend) Alloc(dt engine.DType, shape ...int) *engine.Tensor {
	if dt != engine.F32 && dt != engine.BF16 {
		panic("cuda.Alloc: dtype " + dt.String() + ", want F32 or BF16")
	}
	n := uint64(max(engine.Numel(shape)*dt.Size(), 1))
	p, err := b.ctx.MemAlloc(n)
	check("Alloc", err)
	b.zeroBytes(p, n)
	b.mem.add(p, b.tag, n)
	return &engine.Tensor{DType: dt, Shape: append([]int(nil), shape...), Dev: p}
}

// Free releases a tensor made by Alloc.
func (b *Backend) Free(t *engine.Tensor) {
	if t == nil || t.Dev == 0 {
		return
	}
	check("Free", b.ctx.MemFree(t.Dev))
	b.mem.remove(t.Dev)
	t.Dev = 0
}

func (b *Backend) zeroBytes(p kernels.DevicePtr, n uint64) {
	check("Zero", b.ctx.ZeroAsync(p, n, kernels.Stream{}))
}

// Zero clears t.
func (b *Backend) Zero(t *engine.Tensor) {
	mustDev("Zero", t)
	b.zeroBytes(t.Dev, uint64(t.Numel()*t.DType.Size()))
}

// Upload copies src into t, rounding to bf16 for a BF16 tensor.
func (b *Backend) Upload(t *engine.Tensor, src []float32) {
	mustDev("Upload", t)
	if len(src) != t.Numel() {
		panic(fmt.Sprintf("cuda.Upload: %d values into %s", len(src), engine.ShapeString(t.Shape)))
	}
	if len(src) == 0 {
		return
	}
	if t.DType == engine.BF16 {
		h := kernels.BF16(src)
		check("Upload", b.ctx.CopyToDevice(t.Dev, u16Bytes(h)))
		return
	}
	check("Upload", b.ctx.CopyToDevice(t.Dev, f32Bytes(src)))
}

// Download waits for the device and copies t, widened to float32, into dst.
func (b *Backend) Download(dst []float32, t *engine.Tensor) {
	mustDev("Download", t)
	if len(dst) != t.Numel() {
		panic(fmt.Sprintf("cuda.Download: %s into %d values", engine.ShapeString(t.Shape), len(dst)))
	}
	if len(dst) == 0 {
		return
	}
	check("Download", b.ctx.Synchronize(kernels.Stream{}))
	if t.DType == engine.BF16 {
		h := make([]uint16, len(dst))
		check("Download", b.ctx.CopyFromDevice(u16Bytes(h), t.Dev))
		copy(dst, kernels.FromBF16(h))
		return
	}
	check("Download", b.ctx.CopyFromDevice(f32Bytes(dst), t.Dev))
}

// NewWeights uploads the host weights as the fp32 master copy and its bf16
// compute copy, with zeroed fp32 gradients.
func (b *Backend) NewWeights(host, grad []float32) *engine.Weights {
	return b.NewWeightsWith(host, grad, engine.WeightsOptions{})
}

// NewWeightsWith is NewWeights keeping only what o asks for besides the
// bf16 compute copy: the fp32 master's chunk [o.Lo, o.Hi) (none when
// empty) with o.Partial, neither master nor gradients with o.Inference.
// Nothing else is allocated, not even for a moment, so the backend's
// weights peak is what stays.
func (b *Backend) NewWeightsWith(host, grad []float32, o engine.WeightsOptions) *engine.Weights {
	wb, gb := b.Tagged(engine.MemWeights), b.Tagged(engine.MemGrads)
	n := len(host)
	lo, hi := 0, n
	switch {
	case o.Inference:
		lo, hi = 0, 0
	case o.Partial:
		lo, hi = o.Lo, o.Hi
	}
	w := &engine.Weights{Compute: wb.Alloc(engine.BF16, n), Host: host, HostCurrent: true}
	if hi > lo {
		w.Master, w.MasterLo = wb.Alloc(engine.F32, hi-lo), lo
		b.Upload(w.Master, host[lo:hi])
	}
	if !o.Inference {
		w.Grad = gb.Alloc(engine.F32, n)
	}
	b.Upload(w.Compute, host)
	return w
}

// The kernels read little-endian data, as Go lays slices out on every
// platform the project builds for (amd64, arm64), so host slices are
// copied as their bytes.
func f32Bytes(v []float32) []byte { return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v)) }
func u16Bytes(v []uint16) []byte  { return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 2*len(v)) }
func i32Bytes(v []int32) []byte   { return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v)) }

// buf returns the scratch buffer slot with at least n bytes.
func (b *Backend) buf(slot string, n uint64) kernels.DevicePtr {
	s := b.scratch[slot]
	if s.n < n {
		if s.p != 0 {
			check("scratch", b.ctx.MemFree(s.p))
			b.mem.remove(s.p)
		}
		p, err := b.ctx.MemAlloc(max(n, 256))
		check("scratch", err)
		s = scratchBuf{p, max(n, 256)}
		b.mem.add(p, engine.MemScratch, s.n)
		b.scratch[slot] = s
	}
	return s.p
}

// ints uploads host ints into scratch slot and returns the device copy.
func (b *Backend) ints(slot string, v []int32) kernels.DevicePtr {
	p := b.buf(slot, uint64(4*max(len(v), 1)))
	if len(v) > 0 {
		check("upload "+slot, b.ctx.CopyToDevice(p, i32Bytes(v)))
	}
	return p
}

// bf16Scratch returns a bf16 (shape) tensor in scratch slot.
func (b *Backend) bf16Scratch(slot string, shape ...int) *engine.Tensor {
	n := engine.Numel(shape)
	return &engine.Tensor{DType: engine.BF16, Shape: shape, Dev: b.buf(slot, uint64(2*n))}
}

// asBF16 returns t when it is bf16, else a bf16 copy of the F32 tensor t
// in scratch slot: the operand form of bf16 GEMMs and kernels.
func (b *Backend) asBF16(slot string, t *engine.Tensor) *engine.Tensor {
	if t.DType == engine.BF16 {
		return t
	}
	o := b.bf16Scratch(slot, t.Shape...)
	n := t.Numel()
	b.launch("f32_to_bf16", grid1(n, 256), block(256), o.Dev, t.Dev, float32(1), int64(n))
	return o
}

// launch runs an embedded kernel on the default stream.
func (b *Backend) launch(name string, grid, blk kernels.Dim3, args ...any) {
	b.launchShared(name, grid, blk, 0, args...)
}

func (b *Backend) launchShared(name string, grid, blk kernels.Dim3, shmem uint32, args ...any) {
	f, err := b.ks.Function(name)
	check(name, err)
	if shmem > 48<<10 {
		check(name, f.SetMaxDynamicShared(int(shmem)))
	}
	check(name, f.Launch(grid, blk, shmem, kernels.Stream{}, args...))
}

// checkErr reads the kernels' error flag (set to row+1 of the first bad
// id or position) and panics naming op when it is set.
func (b *Backend) checkErr(op, what string) {
	var e [1]int32
	check(op, b.ctx.Synchronize(kernels.Stream{}))
	check(op, b.ctx.CopyFromDevice(i32Bytes(e[:]), b.errBuf))
	if e[0] != 0 {
		b.zeroBytes(b.errBuf, 4)
		panic(fmt.Sprintf("cuda.%s: %s at row %d", op, what, e[0]-1))
	}
}

func grid1(n, per int) kernels.Dim3 {
	return kernels.Dim3{X: uint32(max((n+per-1)/per, 1)), Y: 1, Z: 1}
}

func block(n int) kernels.Dim3 { return kernels.Dim3{X: uint32(n), Y: 1, Z: 1} }

// mustDev panics unless every tensor (nil allowed) is on a device.
func mustDev(op string, ts ...*engine.Tensor) {
	for i, t := range ts {
		if t != nil && t.Dev == 0 {
			panic(fmt.Sprintf("cuda.%s: operand %d (%s %s) is not a device tensor", op, i, t.DType, engine.ShapeString(t.Shape)))
		}
	}
}

// mustType panics unless t has dtype dt.
func mustType(op, what string, t *engine.Tensor, dt engine.DType) {
	if t.DType != dt {
		panic(fmt.Sprintf("cuda.%s: %s is %s %s, want %s", op, what, t.DType, engine.ShapeString(t.Shape), dt))
	}
}

// rowsCols views a tensor as a matrix: all leading dims are rows.
func rowsCols(t *engine.Tensor) (int, int) {
	if len(t.Shape) == 0 {
		return 1, 1
	}
	c := t.Shape[len(t.Shape)-1]
	if c == 0 {
		return 0, 0
	}
	return t.Numel() / c, c
}
