package dist

import (
	"context"
	"errors"
	"fmt"
)

// Comm is a group of ranks that run the same collectives in the same order
// (SPMD). Buffers are host memory; every call blocks until this rank's part
// is done, the context ends, or a peer is lost. A Comm is not safe for
// concurrent use: issue one collective at a time, as on one NCCL stream.
type Comm interface {
	// Rank is this process's index in [0, Size()).
	Rank() int
	// Size is the number of ranks.
	Size() int
	// AllReduceSum replaces buf with the element-wise sum of every rank's
	// buf, summed in rank order. All ranks pass the same length.
	AllReduceSum(ctx context.Context, buf []float32) error
	// AllReduceSumF64 is AllReduceSum in float64: sums of fp32 values
	// (e.g. gradients accumulated per micro-batch) that come out exact, so
	// their value does not depend on how the terms were split over ranks.
	AllReduceSumF64(ctx context.Context, buf []float64) error
	// AllReduceSumBF16 is AllReduceSum for bf16 values (raw bits), summed
	// in fp32 and rounded to bf16 once.
	AllReduceSumBF16(ctx context.Context, buf []uint16) error
	// ReduceScatterSum sums every rank's in (all of the same length n) and
	// leaves this rank's chunk, ChunkRange(n, Size(), Rank()), in out.
	ReduceScatterSum(ctx context.Context, in, out []float32) error
	// ReduceScatterSumBF16 is ReduceScatterSum for bf16 values.
	ReduceScatterSumBF16(ctx context.Context, in, out []uint16) error
	// AllGather concatenates every rank's chunk into out: rank r passes
	// in of length ChunkLen(len(out), Size(), r).
	AllGather(ctx context.Context, in, out []float32) error
	// AllGatherBF16 is AllGather for bf16 values.
	AllGatherBF16(ctx context.Context, in, out []uint16) error
	// Broadcast copies root's buf into every other rank's buf (same length).
	Broadcast(ctx context.Context, buf []byte, root int) error
	// Barrier returns once every rank has entered it.
	Barrier(ctx context.Context) error
	// Close releases the connections; peers blocked on this rank see it
	// as lost. A group from TCPComm.Sub or NewGrid owns no connections:
	// its Close only ends its own calls (the world TCPComm's Close ends all).
	Close() error
}

// ChunkRange is the [lo, hi) slice of an n-element buffer that rank r owns
// in ReduceScatterSum and contributes in AllGather: contiguous chunks in
// rank order, the first n%size of them one element longer.
func ChunkRange(n, size, r int) (lo, hi int) {
	base, rem := n/size, n%size
	lo = r*base + min(r, rem)
	hi = lo + base
	if r < rem {
		hi++
	}
	return lo, hi
}

// ChunkLen is the length of rank r's chunk of an n-element buffer.
func ChunkLen(n, size, r int) int {
	lo, hi := ChunkRange(n, size, r)
	return hi - lo
}

// PeerError is a collective that failed because of one peer: it closed the
// connection (died, or gave up on its own error), sent something this rank
// did not expect, or did not answer before the deadline.
type PeerError struct {
	Rank int    // the peer
	Op   string // the collective, e.g. "allreduce #12"
	Err  error
}

func (e *PeerError) Error() string {
	return fmt.Sprintf("dist: %s: rank %d lost: %v", e.Op, e.Rank, e.Err)
}

func (e *PeerError) Unwrap() error { return e.Err }

// ErrClosed is returned by calls on a closed Comm.
var ErrClosed = errors.New("dist: communicator closed")
