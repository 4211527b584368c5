package optim

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"purpcode/dist"
	"purpcode/engine"
	"purpcode/kernels"
)

// ZeRO1 is AdamW with its state sharded over a data-parallel group (ZeRO
// stage 1): rank r owns the elements dist.ChunkRange(n, size, r) of the
// flat parameter vector and keeps the AdamW moments, and updates the fp32
// master weights, only for that chunk; after its update each rank's chunk
// of the compute weights is all-gathered so that every rank holds the whole
// updated model again. Every element's update is AdamW's kernel with
// AdamW's parameters, so the weights after a step are the same bits as one
// process running AdamW over the whole vector with the same gradient.
//
// Where things live:
//   - On the CPU backend the master is the compute copy (engine.Weights'
//     Master == Compute, host memory): each rank updates its chunk of it in
//     place and the chunks are all-gathered in fp32.
//   - On a device backend the moments are chunk-sized device tensors
//     (memory category engine.MemOptimizer) and the master chunk is this
//     rank's chunk of the weights' Master. Weights made for ZeRO-1
//     (qwen2.Storage{ZeRO: true}, engine.WeightsOptions.Partial) hold only
//     that chunk of the fp32 master on the device; whole weights work too
//     (the rest of their master is then not kept current). The device
//     kernel writes the bf16 compute chunk too, and the bf16 chunks are
//     all-gathered into every rank's compute copy (half the bytes of the
//     fp32 master). Call GatherMaster before reading the master whole
//     (checkpoints): it gathers the chunks into the weights' Host copy (or
//     into a whole device master).
//   - With offload on a device backend, the master chunk and the moments
//     live in host memory and the update runs on the CPU (the same
//     kernels.AdamW as the CPU backend, bit-identical with the device
//     kernel); the rank's gradient chunk is downloaded, the updated master
//     chunk uploaded into Master's chunk when the weights have one (weights
//     made for offload have none: the chunk is seeded from their Host
//     copy), and the bf16 rounding of it all-gathered into the compute
//     copy. No device memory is allocated.
//
// The gradient a step reads (w.Grad) must already be summed over the
// group, as the trainers' GradSum leaves it (in float64 on the CPU, which
// keeps data parallelism bit-identical with one process): ZeRO1 reads only
// this rank's chunk of it. StepScattered is the variant for gradients that
// were not summed: it reduce-scatters them, so each rank receives only its
// chunk.
//
// State and the checkpoint buffers: State returns full-length host buffers
// (allocated on first use, so a rank that never checkpoints holds only its
// chunk), which are the checkpoint format AdamW writes. PullState and
// PushState copy between this rank's chunk and its part of those buffers,
// without any collective (so they may run on one rank alone, as
// train.Policy.Save and LoadPolicy do); GatherState (all ranks) fills the
// whole buffers on every rank before a save, and ScatterState (all ranks)
// restores every rank's chunk from rank 0's buffers. A checkpoint written
// from one group size restores into any other: the buffers are the same.
//
// A ZeRO1 is not safe for concurrent use; every rank of the group must
// call the collective methods (StepShared, StepScattered, GatherMaster,
// GatherState, ScatterState) in the same order.
type ZeRO1 struct {
	cfg     AdamWConfig
	be      engine.Backend
	host    *engine.CPU // runs the offloaded update
	comm    dist.Comm   // nil for one rank
	runs    []Segment   // decayRuns of the segments
	n       int
	lo, hi  int  // this rank's chunk
	offload bool // state in host memory (meaningful on a device backend)
	steps   int64
	err     error

	m, v *engine.Tensor // the chunk's moments: on be, or host tensors with offload

	// Offload only: the master chunk in host memory, and whether it holds
	// the weights' current values (it is loaded from Master's chunk on the
	// first step and after a restore).
	master *engine.Tensor
	seeded bool

	// Full-length host buffers of State (nil until first asked for).
	fullM, fullV []float32

	// Host scratch, allocated on first use and kept.
	chunkF32 []float32 // a chunk of fp32 values (gradient, master, moments)
	full16   []uint16  // the gathered bf16 compute copy
	fullF32  []float32 // the gathered copy widened for Upload
}

// NewZeRO1 returns AdamW sharded over comm (nil or of size 1: one rank
// holding everything) for a flat buffer of n values laid out by segs, on be;
// with offload the rank's master chunk and moments are kept in host memory
// (no difference on the CPU backend, whose memory is the host's).
func NewZeRO1(be engine.Backend, segs []Segment, n int, cfg AdamWConfig, comm dist.Comm, offload bool) (*ZeRO1, error) {
	if err := validSegments(segs, n); err != nil {
		return nil, fmt.Errorf("zero-1: %w", err)
	}
	size, rank := 1, 0
	if comm != nil {
		size, rank = comm.Size(), comm.Rank()
	}
	if size < 1 || rank < 0 || rank >= size {
		return nil, fmt.Errorf("zero-1: rank %d of a group of %d", rank, size)
	}
	o := &ZeRO1{cfg: cfg, be: be, comm: comm, runs: decayRuns(segs), n: n, offload: offload}
	o.lo, o.hi = dist.ChunkRange(n, size, rank)
	k := o.hi - o.lo
	if offload {
		// Only AdamW's kernel runs on it, never a GEMM: no BLAS library.
		o.host = engine.NewCPU(nil, 0)
		o.m, o.v = engine.FromF32(make([]float32, k), k), engine.FromF32(make([]float32, k), k)
	} else {
		st := engine.Tagged(be, engine.MemOptimizer)
		o.m, o.v = st.Alloc(engine.F32, k), st.Alloc(engine.F32, k)
	}
	return o, nil
}

func (o *ZeRO1) Name() string     { return "adamw" }
func (o *ZeRO1) Steps() int64     { return o.steps }
func (o *ZeRO1) SetSteps(n int64) { o.steps = n }

// Chunk is the [lo, hi) range of the flat parameters this rank owns.
func (o *ZeRO1) Chunk() (lo, hi int) { return o.lo, o.hi }

// Err is the first error of a Step (nil when every step succeeded).
func (o *ZeRO1) Err() error { return o.err }

// Free releases the device memory of the moments (nothing with offload or
// on the CPU). The optimizer is unusable afterwards.
func (o *ZeRO1) Free() {
	if !o.offload {
		o.be.Free(o.m)
		o.be.Free(o.v)
	}
}

func (o *ZeRO1) size() int {
	if o.comm == nil {
		return 1
	}
	return o.comm.Size()
}

// Step is StepShared without a context (the Comm's own per-call timeout
// still bounds each collective), for callers that hold an Optimizer: an
// error is kept for Err, and every later step fails with it, since the
// ranks' weights may no longer agree. Trainers should call StepShared.
func (o *ZeRO1) Step(w *engine.Weights, lr float64) {
	_ = o.StepShared(context.Background(), w, lr)
}

// StepShared applies one AdamW update at lr to this rank's chunk, from the
// chunk of w.Grad (the gradient summed over the group), and all-gathers the
// updated compute weights. Every rank of the group calls it with the same
// lr. On an error (a lost peer) the ranks' weights may differ: the run must
// stop, and later steps return the same error.
func (o *ZeRO1) StepShared(ctx context.Context, w *engine.Weights, lr float64) error {
	if o.err != nil {
		return o.err
	}
	o.check("ZeRO1.Step", w)
	err := o.update(w, lr, nil)
	if err == nil {
		err = o.gather(ctx, w)
	}
	if err != nil {
		o.err = err
	}
	return err
}

// check panics when w is not storage for this optimizer (a programming
// error): n weights and gradients, and a master holding at least the
// rank's chunk, or none on a device with offload.
func (o *ZeRO1) check(op string, w *engine.Weights) {
	if w.Compute.Numel() != o.n || w.Grad == nil || w.Grad.Numel() != o.n {
		g := -1
		if w.Grad != nil {
			g = w.Grad.Numel()
		}
		panic(fmt.Sprintf("optim.%s: %d weights and %d gradients (-1: inference-only weights) for an optimizer over %d values", op, w.Compute.Numel(), g, o.n))
	}
	if w.Master == nil {
		if !o.offload || !w.Compute.OnDevice() {
			panic(fmt.Sprintf("optim.%s: weights without a master on %s (offload %v)", op, o.be.Name(), o.offload))
		}
		return
	}
	if w.MasterLo > o.lo || w.MasterLo+w.Master.Numel() < o.hi {
		panic(fmt.Sprintf("optim.%s: the weights' master holds [%d, %d), the rank's chunk is [%d, %d)", op, w.MasterLo, w.MasterLo+w.Master.Numel(), o.lo, o.hi))
	}
}

// masterChunk is the rank's chunk of w's device master (nil when w has no
// master: offload).
func (o *ZeRO1) masterChunk(w *engine.Weights) *engine.Tensor {
	if w.Master == nil {
		return nil
	}
	return w.Master.View(o.lo-w.MasterLo, o.hi-o.lo)
}

// StepScattered is StepShared for gradients that were not summed over the
// group (each rank's w.Grad holds its own part): they are reduce-scattered
// (summed in rank order, in fp32, through host memory), the global norm of
// the summed gradient is measured (the chunks' float64 sums of squares,
// added in rank order) and, when maxNorm > 0, the chunk is clipped as
// ClipGradNorm does; then the chunk updates the weights as in StepShared.
// It returns the norm before clipping. It moves half the bytes of an
// all-reduce, but the summed gradient is fp32 (not the trainers' exact
// float64 sum) and w.Grad keeps this rank's unsummed values.
func (o *ZeRO1) StepScattered(ctx context.Context, w *engine.Weights, lr, maxNorm float64) (float64, error) {
	if o.err != nil {
		return 0, o.err
	}
	o.check("ZeRO1.StepScattered", w)
	norm, g, err := o.scatterGrad(ctx, w.Grad, maxNorm)
	if err == nil {
		err = o.update(w, lr, g)
	}
	if err == nil {
		err = o.gather(ctx, w)
	}
	if err != nil {
		o.err = err
	}
	return norm, err
}

// scatterGrad returns this rank's chunk of the group's summed gradient as
// a tensor the update can read (on be, or in host memory with offload or
// on the CPU), clipped to maxNorm, and the norm before clipping.
func (o *ZeRO1) scatterGrad(ctx context.Context, g *engine.Tensor, maxNorm float64) (float64, *engine.Tensor, error) {
	full := g.F32
	if g.OnDevice() {
		if o.fullF32 == nil {
			o.fullF32 = make([]float32, o.n)
		}
		o.be.Download(o.fullF32, g)
		full = o.fullF32
	}
	k := o.hi - o.lo
	chunk := make([]float32, k)
	if o.comm != nil && o.comm.Size() > 1 {
		if err := o.comm.ReduceScatterSum(ctx, full, chunk); err != nil {
			return 0, nil, fmt.Errorf("zero-1: gradient reduce-scatter: %w", err)
		}
	} else {
		copy(chunk, full[o.lo:o.hi])
	}
	ss := []float64{kernels.SumSquares(chunk)}
	if o.comm != nil && o.comm.Size() > 1 {
		if err := o.comm.AllReduceSumF64(ctx, ss); err != nil {
			return 0, nil, fmt.Errorf("zero-1: gradient norm: %w", err)
		}
	}
	norm := math.Sqrt(ss[0])
	if maxNorm > 0 {
		if coef := maxNorm / (norm + 1e-6); coef < 1 {
			for i := range chunk {
				chunk[i] *= float32(coef)
			}
		}
	}
	t := engine.FromF32(chunk, k)
	if !o.offload && g.OnDevice() {
		t = engine.Tagged(o.be, engine.MemScratch).Alloc(engine.F32, k)
		o.be.Upload(t, chunk)
	}
	return norm, t, nil
}

// update runs AdamW over this rank's chunk. grad is the chunk's gradient
// (in the memory the update reads), or nil to read the chunk of w.Grad.
// Afterwards the weights' Host copy is no longer the master, unless the
// master is the host copy itself (the CPU).
func (o *ZeRO1) update(w *engine.Weights, lr float64, grad *engine.Tensor) error {
	k := o.hi - o.lo
	if grad != nil && !o.offload && grad.OnDevice() {
		defer o.be.Free(grad)
	}
	deviceOffload := o.offload && w.Compute.OnDevice()
	if deviceOffload && !o.seeded {
		if o.master == nil {
			o.master = engine.FromF32(make([]float32, k), k)
		}
		if mc := o.masterChunk(w); mc != nil {
			o.be.Download(o.master.F32, mc)
		} else if w.HostCurrent && len(w.Host) == o.n {
			copy(o.master.F32, w.Host[o.lo:o.hi])
		} else {
			return fmt.Errorf("zero-1: the master chunk [%d, %d) is neither on the device nor current in the weights' host copy", o.lo, o.hi)
		}
		o.seeded = true
	}
	if grad == nil {
		grad = w.Grad.View(o.lo, k)
		if deviceOffload {
			o.be.Download(o.scratch(), grad)
			grad = engine.FromF32(o.chunkF32, k)
		}
	}
	o.steps++
	be, master := o.be, o.masterChunk(w)
	if deviceOffload {
		be, master = o.host, o.master
	} else if o.offload {
		be = o.host // host weights: the host backend runs the same kernel
	}
	o.cfg.update(o.steps, lr).forRange(o.runs, o.lo, o.hi, func(off, n int, p kernels.AdamWStep) {
		rel := off - o.lo
		mv := master.View(rel, n)
		compute := mv
		if !deviceOffload && w.Compute != w.Master {
			compute = w.Compute.View(off, n)
		}
		be.AdamW(mv, compute, grad.View(rel, n), o.m.View(rel, n), o.v.View(rel, n), p)
	})
	if mc := o.masterChunk(w); deviceOffload && mc != nil {
		o.be.Upload(mc, o.master.F32)
	}
	if w.Compute.OnDevice() {
		w.HostCurrent = false
	}
	return nil
}

// scratch is the host chunk buffer.
func (o *ZeRO1) scratch() []float32 {
	if o.chunkF32 == nil {
		o.chunkF32 = make([]float32, o.hi-o.lo)
	}
	return o.chunkF32
}

// gather all-gathers every rank's updated chunk of the compute weights.
func (o *ZeRO1) gather(ctx context.Context, w *engine.Weights) error {
	k := o.hi - o.lo
	c := w.Compute
	if o.size() == 1 {
		// The chunk is everything: the device kernel or the CPU update
		// wrote the compute copy, except with offload on a device.
		if o.offload && c.OnDevice() {
			o.be.Upload(c, o.master.F32)
		}
		return nil
	}
	if !c.OnDevice() && c.DType == engine.F32 {
		// Host fp32 weights (the CPU backend): gather in place.
		in := o.scratch()
		copy(in, c.F32[o.lo:o.hi])
		if err := o.comm.AllGather(ctx, in, c.F32); err != nil {
			return fmt.Errorf("zero-1: weight all-gather: %w", err)
		}
		return nil
	}
	if o.fullF32 == nil {
		o.fullF32 = make([]float32, o.n)
	}
	switch {
	case c.DType == engine.BF16:
		// The rank's bf16 chunk: from the host master with offload (the
		// same round-to-nearest-even as the device kernel), else read back
		// from the compute copy (bf16 widened to fp32 and rounded again is
		// the same bits).
		src := o.master
		if !o.offload || src == nil {
			o.be.Download(o.scratch(), c.View(o.lo, k))
			src = engine.FromF32(o.chunkF32, k)
		}
		if o.full16 == nil {
			o.full16 = make([]uint16, o.n)
		}
		if err := o.comm.AllGatherBF16(ctx, kernels.BF16(src.F32), o.full16); err != nil {
			return fmt.Errorf("zero-1: weight all-gather: %w", err)
		}
		copy(o.fullF32, kernels.FromBF16(o.full16))
	case c.DType == engine.F32:
		o.be.Download(o.scratch(), c.View(o.lo, k))
		if err := o.comm.AllGather(ctx, o.chunkF32, o.fullF32); err != nil {
			return fmt.Errorf("zero-1: weight all-gather: %w", err)
		}
	default:
		return fmt.Errorf("zero-1: compute weights of dtype %s", c.DType)
	}
	o.be.Upload(c, o.fullF32)
	return nil
}

// GatherMaster makes the whole fp32 master readable on every rank by
// all-gathering the ranks' chunks (before the master is read whole: a
// checkpoint or an export): into w.Master when it is whole on the device,
// else into w.Host, which is then current (qwen2's Params.Pull reads it).
// On the CPU backend the master is the compute copy, which every step
// gathers, and this does nothing.
func (o *ZeRO1) GatherMaster(ctx context.Context, w *engine.Weights) error {
	o.check("ZeRO1.GatherMaster", w)
	if !w.Compute.OnDevice() || w.MasterWhole() && o.size() == 1 {
		return nil
	}
	k := o.hi - o.lo
	in := o.scratch()
	switch mc := o.masterChunk(w); {
	case o.offload && o.seeded:
		copy(in, o.master.F32)
	case mc != nil:
		o.be.Download(in, mc)
	case w.HostCurrent && len(w.Host) == o.n:
		// No update since the weights were made or restored.
		copy(in, w.Host[o.lo:o.hi])
	default:
		return fmt.Errorf("zero-1: the master chunk [%d, %d) is neither on the device nor current in the weights' host copy", o.lo, o.hi)
	}
	whole := w.MasterWhole()
	out := w.Host
	if whole {
		if o.fullF32 == nil {
			o.fullF32 = make([]float32, o.n)
		}
		out = o.fullF32
	} else if len(out) != o.n {
		return fmt.Errorf("zero-1: the weights have a partial master and a host copy of %d values, want %d", len(out), o.n)
	}
	if o.size() == 1 {
		copy(out[o.lo:o.lo+k], in)
	} else if err := o.comm.AllGather(ctx, in, out); err != nil {
		return fmt.Errorf("zero-1: master all-gather: %w", err)
	}
	if whole {
		o.be.Upload(w.Master, out)
		return nil
	}
	w.HostCurrent = true
	return nil
}

// State returns the full-length moment buffers in AdamW's checkpoint
// format ("exp_avg", "exp_avg_sq"), allocated in host memory on the first
// call. Only this rank's chunk of them is filled by PullState; GatherState
// fills all of it.
func (o *ZeRO1) State() []Buffer {
	if o.fullM == nil {
		o.fullM, o.fullV = make([]float32, o.n), make([]float32, o.n)
	}
	return []Buffer{{"exp_avg", o.fullM}, {"exp_avg_sq", o.fullV}}
}

// ReleaseState drops the full-length State buffers (8 bytes per
// parameter on every rank) once a checkpoint is written or restored; the
// next State call allocates them afresh.
func (o *ZeRO1) ReleaseState() { o.fullM, o.fullV = nil, nil }

// PullState copies this rank's moments into its chunk of the State
// buffers (no collective; see GatherState).
func (o *ZeRO1) PullState() {
	o.State()
	for _, p := range []struct {
		t    *engine.Tensor
		full []float32
	}{{o.m, o.fullM}, {o.v, o.fullV}} {
		dst := p.full[o.lo:o.hi]
		if p.t.OnDevice() {
			o.be.Download(dst, p.t)
		} else {
			copy(dst, p.t.F32)
		}
	}
}

// PushState sets this rank's moments from its chunk of the State buffers
// (after a restore filled them on this rank: no collective; see
// ScatterState), and has the next step reload the master chunk from the
// weights, which a restore replaces too.
func (o *ZeRO1) PushState() {
	o.State()
	for _, p := range []struct {
		t    *engine.Tensor
		full []float32
	}{{o.m, o.fullM}, {o.v, o.fullV}} {
		src := p.full[o.lo:o.hi]
		if p.t.OnDevice() {
			o.be.Upload(p.t, src)
		} else {
			copy(p.t.F32, src)
		}
	}
	o.seeded = false
}

// GatherState fills the whole State buffers on every rank with the
// group's moments (before a checkpoint is saved; all ranks call it).
func (o *ZeRO1) GatherState(ctx context.Context) error {
	o.PullState()
	if o.size() == 1 {
		return nil
	}
	for _, b := range o.State() {
		in := o.scratch()
		copy(in, b.Data[o.lo:o.hi])
		if err := o.comm.AllGather(ctx, in, b.Data); err != nil {
			return fmt.Errorf("zero-1: gather %s: %w", b.Name, err)
		}
	}
	return nil
}

// GatherStateToRoot fills the whole State buffers on rank 0 only, the
// rank that writes checkpoints: every rank broadcasts its chunk in turn,
// rank 0 keeps them and the others read them into one chunk of scratch, so
// no other rank ever holds the whole state (8 bytes per parameter). All
// ranks call it.
func (o *ZeRO1) GatherStateToRoot(ctx context.Context) error {
	if o.size() == 1 {
		o.PullState()
		return nil
	}
	root := o.comm.Rank() == 0
	if root {
		o.PullState()
	}
	var scratch []byte
	for _, t := range []*engine.Tensor{o.m, o.v} {
		mine := o.scratch()
		if t.OnDevice() {
			o.be.Download(mine, t)
		} else {
			copy(mine, t.F32)
		}
		full := []float32(nil)
		if root {
			full = o.fullM
			if t == o.v {
				full = o.fullV
			}
		}
		for r := range o.comm.Size() {
			lo, hi := dist.ChunkRange(o.n, o.comm.Size(), r)
			var buf []byte
			switch {
			case root:
				buf = f32Bytes(full[lo:hi])
			case r == o.comm.Rank():
				buf = f32Bytes(mine)
			default:
				if cap(scratch) < 4*(hi-lo) {
					scratch = make([]byte, 4*(hi-lo))
				}
				buf = scratch[:4*(hi-lo)]
			}
			if err := o.comm.Broadcast(ctx, buf, r); err != nil {
				return fmt.Errorf("zero-1: gather the optimizer state to rank 0 (chunk of rank %d): %w", r, err)
			}
		}
	}
	return nil
}

// f32Bytes views v's memory as bytes (host byte order on both ends: the
// ranks share one).
func f32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

// ScatterState restores every rank's moments from rank 0's State buffers
// (after rank 0 filled them from a checkpoint, written by a group of any
// size; all ranks call it). The steps count is SetSteps' business, as for
// AdamW.
func (o *ZeRO1) ScatterState(ctx context.Context) error {
	bufs := o.State()
	if o.size() > 1 {
		raw := make([]byte, 4*o.n)
		for _, b := range bufs {
			if o.comm.Rank() == 0 {
				for i, x := range b.Data {
					binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
				}
			}
			if err := o.comm.Broadcast(ctx, raw, 0); err != nil {
				return fmt.Errorf("zero-1: scatter %s: %w", b.Name, err)
			}
			for i := range b.Data {
				b.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
		}
	}
	o.PushState()
	return nil
}

// Collective is an optimizer whose steps and checkpoints involve every
// rank of a group (ZeRO1): every rank calls these methods in the same
// order.
type Collective interface {
	Optimizer
	// StepShared is Step with the collectives' context and error.
	StepShared(ctx context.Context, w *engine.Weights, lr float64) error
	// GatherMaster makes w.Master whole on every rank.
	GatherMaster(ctx context.Context, w *engine.Weights) error
	// GatherState fills the State buffers whole on every rank.
	GatherState(ctx context.Context) error
	// ScatterState restores every rank's state from rank 0's State
	// buffers.
	ScatterState(ctx context.Context) error
}

var _ Collective = (*ZeRO1)(nil)

// StepContext applies one update with opt: StepShared for a Collective
// optimizer (every rank of its group must call it), Step otherwise.
func StepContext(ctx context.Context, opt Optimizer, w *engine.Weights, lr float64) error {
	if c, ok := opt.(Collective); ok {
		return c.StepShared(ctx, w, lr)
	}
	opt.Step(w, lr)
	return nil
}

// PrepareSave readies a Collective optimizer's state and w's master
// weights for a checkpoint that rank 0 writes (GatherMaster, then the
// state gathered to rank 0 for a ZeRO1, GatherState for others): every
// rank of the group calls it before the save. Other optimizers need
// nothing beyond the PullState the save itself calls.
func PrepareSave(ctx context.Context, opt Optimizer, w *engine.Weights) error {
	c, ok := opt.(Collective)
	if !ok {
		return nil
	}
	if err := c.GatherMaster(ctx, w); err != nil {
		return err
	}
	if z, ok := opt.(*ZeRO1); ok {
		// Rank 0 alone writes the optimizer state.
		return z.GatherStateToRoot(ctx)
	}
	return c.GatherState(ctx)
}
