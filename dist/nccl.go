package dist

import (
	"context"
	"errors"
	"fmt"
	"time"

	"purpcode/kernels"
)

// NCCLComm is the GPU backend of Comm: the collectives of an NCCL
// communicator (kernels.NCCLRank) on host slices, which the rank stages
// through its pinned and device buffers, one stream, waiting for each call.
// Tensors that live on the device use the rank's device-pointer methods
// from the backend that owns them (Rank; only engine, engine/cuda and
// kernels may name device memory).
//
// Sums are NCCL's: fp32 in fp32, AllReduceSumF64 in fp64 (ncclFloat64),
// bf16 as ncclBfloat16 (NCCL 2.10+, which kernels.LoadNCCL requires); the
// order of the additions is NCCL's own (pin NCCL_ALGO=Ring and
// NCCL_PROTO=Simple for bitwise-reproducible runs), so results may differ
// from the CPU backend's in the last bits.
//
// Failures: NCCL does not say which peer was lost, so failures are errors
// naming the collective ("nccl allreduce #12: ..."), not *PeerError; a
// collective still running at its deadline (the context's, else Timeout)
// or when the communicator reports an asynchronous error (a peer's
// process or network went away) aborts the communicator, and every later
// call returns the first error, as TCPComm does. The launcher, which sees
// which process exited, names the lost rank.
type NCCLComm struct {
	r          *kernels.NCCLRank
	rank, size int
	// Timeout bounds each collective whose context has no deadline: the
	// CPU Comm's when it is a *TCPComm, else 5 minutes.
	Timeout time.Duration
	seq     uint64
	scratch []byte // padded host layouts, grown on demand
	broken  error
	closed  bool
}

var _ Comm = (*NCCLComm)(nil)

// defaultNCCLTimeout matches Options.Timeout's default.
const defaultNCCLTimeout = 5 * time.Minute

// NewNCCL joins this rank's NCCL communicator on dev, for the same ranks
// as cpu: rank 0 creates the unique id and sends it with cpu's Broadcast
// (one rendezvous and one launch path for both backends), then every rank
// calls ncclCommInitRank, which returns once all ranks have joined. A rank
// that never joins makes the others wait until ctx ends (the id broadcast
// just before means every rank got that far); they return then, leaving
// the blocked call behind.
//
// dev must be the device of the rank's backend and belong to the device's
// primary context: NCCL's initialisation binds the primary context
// (cudaSetDevice) and allocates its own buffers and kernels there.
func NewNCCL(ctx context.Context, cpu Comm, lib *kernels.NCCL, dev kernels.NCCLDevice) (*NCCLComm, error) {
	if cpu == nil || lib == nil {
		return nil, errors.New("dist: nccl: needs a CPU communicator and a loaded NCCL")
	}
	rank, size := cpu.Rank(), cpu.Size()
	var id kernels.NCCLUniqueID
	if rank == 0 {
		var err error
		if id, err = lib.UniqueID(); err != nil {
			// The others wait in the broadcast below: tell them.
			err = fmt.Errorf("dist: nccl: rank 0: %w", err)
			_ = cpu.Broadcast(ctx, make([]byte, len(id)), 0)
			return nil, err
		}
	}
	if err := cpu.Broadcast(ctx, id[:], 0); err != nil {
		return nil, fmt.Errorf("dist: nccl: sending the unique id from rank 0: %w", err)
	}
	if id == (kernels.NCCLUniqueID{}) {
		return nil, errors.New("dist: nccl: rank 0 could not create the unique id (see its log)")
	}
	type joined struct {
		r   *kernels.NCCLRank
		err error
	}
	ch := make(chan joined, 1)
	go func() {
		r, err := lib.JoinRank(dev, id, size, rank)
		ch <- joined{r, err}
	}()
	var j joined
	select {
	case j = <-ch:
	case <-ctx.Done():
		return nil, fmt.Errorf("dist: nccl: rank %d of %d on %s: not every rank joined: %w", rank, size, dev, context.Cause(ctx))
	}
	if j.err != nil {
		return nil, fmt.Errorf("dist: nccl: rank %d of %d on %s (NCCL %s): %w", rank, size, dev, lib.VersionString(), j.err)
	}
	c := &NCCLComm{r: j.r, rank: rank, size: size, Timeout: defaultNCCLTimeout}
	if t, ok := cpu.(*TCPComm); ok && t.timeout > 0 {
		c.Timeout = t.timeout
	}
	return c, nil
}

// OpenNCCL loads NCCL on every rank of cpu (kernels.LoadNCCL's search
// rules) and joins the communicator (NewNCCL). Ranks agree on the loading
// first, so a rank without NCCL fails every rank at once, each naming the
// ranks that lack it, instead of leaving the others waiting for the id.
func OpenNCCL(ctx context.Context, cpu Comm, libs kernels.CUDALibOptions, dev kernels.NCCLDevice) (*NCCLComm, error) {
	rank, size := cpu.Rank(), cpu.Size()
	lib, loadErr := kernels.LoadNCCL(libs)
	failed := make([]float32, size)
	if loadErr != nil {
		failed[rank] = 1
	}
	if err := cpu.AllReduceSum(ctx, failed); err != nil {
		return nil, fmt.Errorf("dist: nccl: rank %d of %d: agreeing on the loading: %w", rank, size, err)
	}
	var missing []int
	for r, f := range failed {
		if f != 0 {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		err := fmt.Errorf("dist: nccl: rank %d of %d: NCCL could not be loaded on ranks %v", rank, size, missing)
		if loadErr != nil {
			err = fmt.Errorf("%w: %w", err, loadErr)
		}
		return nil, err
	}
	return NewNCCL(ctx, cpu, lib, dev)
}

// Rank implements Comm.
func (c *NCCLComm) Rank() int { return c.rank }

// Size implements Comm.
func (c *NCCLComm) Size() int { return c.size }

// Device is the NCCL rank, for the backend's collectives on device memory
// (kernels.NCCLRank's *Device methods, which keep ChunkRange's layout when
// the buffer is padded as PaddedLen says).
func (c *NCCLComm) Device() *kernels.NCCLRank { return c.r }

// Close implements Comm: ncclCommDestroy, or nothing more after a failure
// aborted the communicator.
func (c *NCCLComm) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	if err := c.r.Close(); err != nil {
		return fmt.Errorf("dist: nccl: close: %w", err)
	}
	return nil
}

// AllReduceSum implements Comm.
func (c *NCCLComm) AllReduceSum(ctx context.Context, buf []float32) error {
	return c.run(ctx, "allreduce", func(ctx context.Context) error {
		return c.r.AllReduceHost(ctx, asBytes(buf), kernels.NCCLFloat32)
	})
}

// AllReduceSumF64 implements Comm.
func (c *NCCLComm) AllReduceSumF64(ctx context.Context, buf []float64) error {
	return c.run(ctx, "allreduce-f64", func(ctx context.Context) error {
		return c.r.AllReduceHost(ctx, asBytes(buf), kernels.NCCLFloat64)
	})
}

// AllReduceSumBF16 implements Comm.
func (c *NCCLComm) AllReduceSumBF16(ctx context.Context, buf []uint16) error {
	return c.run(ctx, "allreduce-bf16", func(ctx context.Context) error {
		return c.r.AllReduceHost(ctx, asBytes(buf), kernels.NCCLBfloat16)
	})
}

// ReduceScatterSum implements Comm.
func (c *NCCLComm) ReduceScatterSum(ctx context.Context, in, out []float32) error {
	return ncclReduceScatter(ctx, c, "reducescatter", in, out, kernels.NCCLFloat32)
}

// ReduceScatterSumBF16 implements Comm.
func (c *NCCLComm) ReduceScatterSumBF16(ctx context.Context, in, out []uint16) error {
	return ncclReduceScatter(ctx, c, "reducescatter-bf16", in, out, kernels.NCCLBfloat16)
}

// AllGather implements Comm.
func (c *NCCLComm) AllGather(ctx context.Context, in, out []float32) error {
	return ncclAllGather(ctx, c, "allgather", in, out, kernels.NCCLFloat32)
}

// AllGatherBF16 implements Comm.
func (c *NCCLComm) AllGatherBF16(ctx context.Context, in, out []uint16) error {
	return ncclAllGather(ctx, c, "allgather-bf16", in, out, kernels.NCCLBfloat16)
}

// Broadcast implements Comm.
func (c *NCCLComm) Broadcast(ctx context.Context, buf []byte, root int) error {
	if root < 0 || root >= c.size {
		return fmt.Errorf("dist: nccl broadcast: root %d outside %d ranks", root, c.size)
	}
	return c.run(ctx, "broadcast", func(ctx context.Context) error { return c.r.BroadcastHost(ctx, buf, root) })
}

// Barrier implements Comm: an all-reduce of one element, which no rank
// completes before every rank has entered it.
func (c *NCCLComm) Barrier(ctx context.Context) error {
	var one [1]float32
	return c.run(ctx, "barrier", func(ctx context.Context) error {
		return c.r.AllReduceHost(ctx, asBytes(one[:]), kernels.NCCLFloat32)
	})
}

// run numbers the collective, applies the deadline and keeps the first
// failure: after it the communicator is aborted, so later calls return it.
func (c *NCCLComm) run(ctx context.Context, name string, f func(context.Context) error) error {
	if c.closed {
		return ErrClosed
	}
	if c.broken != nil {
		return c.broken
	}
	c.seq++
	label := fmt.Sprintf("nccl %s #%d", name, c.seq)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("dist: %s: %w", label, context.Cause(ctx))
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, c.Timeout, fmt.Errorf("no completion within %s", c.Timeout))
		defer cancel()
	}
	err := f(ctx)
	if err == nil {
		return nil
	}
	err = fmt.Errorf("dist: %s: %w", label, err)
	if c.r.Err() != nil {
		c.broken = err
	}
	return err
}

// ncclReduceScatter checks the lengths, pads in to PaddedLen(n) elements
// (ChunkRange's chunk r at slot r) when n does not split evenly, and
// leaves this rank's chunk in out.
func ncclReduceScatter[T elem](ctx context.Context, c *NCCLComm, name string, in, out []T, dt kernels.NCCLDataType) error {
	n := len(in)
	if want := ChunkLen(n, c.size, c.rank); len(out) != want {
		return fmt.Errorf("dist: nccl %s: rank %d's output has %d elements, want %d (chunk of %d over %d ranks)", name, c.rank, len(out), want, n, c.size)
	}
	return c.run(ctx, name, func(ctx context.Context) error {
		src := in
		if n%c.size != 0 {
			src = ncclScratch[T](c, PaddedLen(n, c.size))
			PadChunks(src, in, c.size)
		}
		return c.r.ReduceScatterHost(ctx, asBytes(src), asBytes(out), dt)
	})
}

// ncclAllGather checks the lengths and, when out does not split evenly,
// gathers into the padded layout and unpads it into out.
func ncclAllGather[T elem](ctx context.Context, c *NCCLComm, name string, in, out []T, dt kernels.NCCLDataType) error {
	n := len(out)
	if want := ChunkLen(n, c.size, c.rank); len(in) != want {
		return fmt.Errorf("dist: nccl %s: rank %d's input has %d elements, want %d (chunk of %d over %d ranks)", name, c.rank, len(in), want, n, c.size)
	}
	return c.run(ctx, name, func(ctx context.Context) error {
		if n%c.size == 0 {
			return c.r.AllGatherHost(ctx, asBytes(in), asBytes(out), dt)
		}
		padded := ncclScratch[T](c, PaddedLen(n, c.size))
		if err := c.r.AllGatherHost(ctx, asBytes(in), asBytes(padded), dt); err != nil {
			return err
		}
		UnpadChunks(out, padded, c.size)
		return nil
	})
}

// PaddedLen is the length NCCL's equal-count reduce-scatter and all-gather
// need for an n-element buffer over size ranks: size slots of
// ceil(n/size) elements. Chunk r of ChunkRange(n, size, r) is the start of
// slot r; the slots of the shorter chunks end with one padding element.
func PaddedLen(n, size int) int { return size * ((n + size - 1) / size) }

// PadChunks lays src (n elements) out as PaddedLen(n, size) elements in
// dst: chunk r at the start of slot r, padding zeroed (so it sums to zero).
func PadChunks[T elem](dst, src []T, size int) {
	n := len(src)
	slot := len(dst) / size
	for r := range size {
		lo, hi := ChunkRange(n, size, r)
		s := dst[r*slot : (r+1)*slot]
		copy(s, src[lo:hi])
		clear(s[hi-lo:])
	}
}

// UnpadChunks is PadChunks' inverse: it copies the chunk at the start of
// each slot of src into its ChunkRange of dst (len(dst) elements).
func UnpadChunks[T elem](dst, src []T, size int) {
	n := len(dst)
	slot := len(src) / size
	for r := range size {
		lo, hi := ChunkRange(n, size, r)
		copy(dst[lo:hi], src[r*slot:r*slot+hi-lo])
	}
}

// ncclScratch returns n elements of the comm's reusable host scratch.
func ncclScratch[T elem](c *NCCLComm, n int) []T { return scratchIn[T](&c.scratch, n) }
