package dist

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
	"unsafe"

	"purpcode/internal/half"
)

// TCPComm is the CPU backend: a full mesh of TCP connections, one per pair
// of ranks, built by Connect.
type TCPComm struct {
	rank, size int
	peers      []net.Conn // peers[rank] is nil
	timeout    time.Duration
	seq        uint64
	broken     error
	scratch    []byte
	// sendHook, when set (tests), runs before every message is sent; it
	// lets a test perturb the order in which messages arrive.
	sendHook func(peer int)
}

var _ Comm = (*TCPComm)(nil)

// Rank implements Comm.
func (c *TCPComm) Rank() int { return c.rank }

// Size implements Comm.
func (c *TCPComm) Size() int { return c.size }

// Close implements Comm.
func (c *TCPComm) Close() error {
	if errors.Is(c.broken, ErrClosed) {
		return nil
	}
	c.broken = ErrClosed
	var first error
	for _, p := range c.peers {
		if p != nil {
			if err := p.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// Message kinds on the wire; a frame of another kind than the one expected
// means the ranks issued different collectives.
type opcode uint32

const (
	opReduce opcode = iota + 1
	opGather
	opBroadcast
	opBarrier
)

func (o opcode) String() string {
	switch o {
	case opReduce:
		return "reduce"
	case opGather:
		return "gather"
	case opBroadcast:
		return "broadcast"
	case opBarrier:
		return "barrier"
	}
	return fmt.Sprintf("op%d", uint32(o))
}

// A frame is a 24-byte header (kind, reserved, sequence number, payload
// length, little endian) and the payload in host byte order; all ranks are
// assumed to share one byte order (every supported 64-bit target is little
// endian).
const headerLen = 24

// xfer is what one collective step sends to and receives from one peer.
type xfer struct {
	send, recv     []byte
	doSend, doRecv bool
}

// exchange runs one step of a collective: every send and receive of xs
// (indexed by peer) concurrently, under one deadline. The first peer that
// fails aborts the others, and the Comm is broken afterwards.
func (c *TCPComm) exchange(ctx context.Context, name string, op opcode, xs []xfer) error {
	if c.broken != nil {
		return c.broken
	}
	c.seq++
	label := fmt.Sprintf("%s #%d", name, c.seq)
	start := time.Now()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(c.timeout)
	}
	for q, x := range xs {
		if x.doSend || x.doRecv {
			if err := c.peers[q].SetDeadline(deadline); err != nil {
				c.broken = &PeerError{Rank: q, Op: label, Err: err}
				return c.broken
			}
		}
	}

	var (
		mu       sync.Mutex
		finished bool
		errs     = make([]error, len(xs))
		realErr  = -1 // first peer with an error other than a deadline
	)
	abort := func() {
		mu.Lock()
		defer mu.Unlock()
		if finished {
			return
		}
		for q, x := range xs {
			if x.doSend || x.doRecv {
				c.peers[q].SetDeadline(time.Unix(1, 0)) //nolint:errcheck // best effort wake-up
			}
		}
	}
	fail := func(q int, err error) {
		mu.Lock()
		if errs[q] == nil {
			errs[q] = err
		}
		real := !errors.Is(err, os.ErrDeadlineExceeded)
		if real && realErr < 0 {
			realErr = q
		}
		mu.Unlock()
		if real {
			abort()
		}
	}
	stop := context.AfterFunc(ctx, abort)

	var wg sync.WaitGroup
	for q, x := range xs {
		if x.doSend {
			wg.Go(func() {
				if c.sendHook != nil {
					c.sendHook(q)
				}
				if err := writeFrame(c.peers[q], op, c.seq, x.send); err != nil {
					fail(q, fmt.Errorf("send: %w", err))
				}
			})
		}
		if x.doRecv {
			wg.Go(func() {
				if err := readFrame(c.peers[q], op, c.seq, x.recv); err != nil {
					fail(q, err)
				}
			})
		}
	}
	wg.Wait()
	stop()
	mu.Lock()
	finished = true
	mu.Unlock()

	q := realErr
	if q < 0 {
		for i, err := range errs {
			if err != nil {
				q = i
				break
			}
		}
	}
	if q < 0 {
		return nil
	}
	err := errs[q]
	if realErr < 0 {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w while waiting for it", ctx.Err())
		} else {
			err = fmt.Errorf("no answer within %s: %w", deadline.Sub(start).Round(time.Millisecond), err)
		}
	}
	c.broken = &PeerError{Rank: q, Op: label, Err: err}
	return c.broken
}

func writeFrame(w net.Conn, op opcode, seq uint64, payload []byte) error {
	var hdr [headerLen]byte
	binary.LittleEndian.PutUint32(hdr[0:], uint32(op))
	binary.LittleEndian.PutUint64(hdr[8:], seq)
	binary.LittleEndian.PutUint64(hdr[16:], uint64(len(payload)))
	bufs := net.Buffers{hdr[:], payload}
	_, err := bufs.WriteTo(w)
	return err
}

func readFrame(r net.Conn, op opcode, seq uint64, dst []byte) error {
	var hdr [headerLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	gotOp := opcode(binary.LittleEndian.Uint32(hdr[0:]))
	gotSeq := binary.LittleEndian.Uint64(hdr[8:])
	gotLen := binary.LittleEndian.Uint64(hdr[16:])
	if gotOp != op || gotSeq != seq || gotLen != uint64(len(dst)) {
		return fmt.Errorf("collectives out of step: peer sent %s #%d of %d bytes, this rank expects %s #%d of %d bytes (different call order or buffer sizes)",
			gotOp, gotSeq, gotLen, op, seq, len(dst))
	}
	_, err := io.ReadFull(r, dst)
	return err
}

// elem is an element type the collectives move: fp32 or bf16 bits.
type elem interface{ float32 | uint16 }

func asBytes[T elem](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(z)))
}

// scratchOf returns n elements of reusable scratch memory.
func scratchOf[T elem](c *TCPComm, n int) []T {
	var z T
	nb := n * int(unsafe.Sizeof(z))
	if cap(c.scratch) < nb {
		// Allocated as uint64 so that the bytes are aligned for any T.
		words := make([]uint64, (nb+7)/8)
		c.scratch = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), len(words)*8)
	}
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(c.scratch))), n)
}

// sumF32 writes srcs[0]+srcs[1]+... (in that order) to dst. One of srcs may
// alias dst: each element is read before it is written.
func sumF32(dst []float32, srcs [][]float32) {
	for k := range dst {
		s := srcs[0][k]
		for _, src := range srcs[1:] {
			s += src[k]
		}
		dst[k] = s
	}
}

// sumBF16 is sumF32 for bf16 inputs: fp32 accumulation, one rounding.
func sumBF16(dst []uint16, srcs [][]uint16) {
	for k := range dst {
		s := half.BF16ToF32(srcs[0][k])
		for _, src := range srcs[1:] {
			s += half.BF16ToF32(src[k])
		}
		dst[k] = half.F32ToBF16(s)
	}
}

// reduceToOwner sends chunk q of in to rank q, receives this rank's chunk
// from every peer and writes their rank-ordered sum to out (which may be
// this rank's chunk of in).
func reduceToOwner[T elem](ctx context.Context, c *TCPComm, name string, in, out []T, sum func([]T, [][]T)) error {
	n, p, r := len(in), c.size, c.rank
	lo, hi := ChunkRange(n, p, r)
	if len(out) != hi-lo {
		return fmt.Errorf("dist: %s: rank %d's output has %d elements, want %d (chunk of %d over %d ranks)", name, r, len(out), hi-lo, n, p)
	}
	scratch := scratchOf[T](c, (p-1)*(hi-lo))
	srcs := make([][]T, p)
	xs := make([]xfer, p)
	for q, i := 0, 0; q < p; q++ {
		if q == r {
			srcs[q] = in[lo:hi]
			continue
		}
		qlo, qhi := ChunkRange(n, p, q)
		srcs[q] = scratch[i*(hi-lo) : (i+1)*(hi-lo)]
		i++
		xs[q] = xfer{send: asBytes(in[qlo:qhi]), recv: asBytes(srcs[q]), doSend: true, doRecv: true}
	}
	if err := c.exchange(ctx, name, opReduce, xs); err != nil {
		return err
	}
	sum(out, srcs)
	return nil
}

// gatherChunks sends this rank's chunk of out (already in place) to every
// peer and receives theirs into out.
func gatherChunks[T elem](ctx context.Context, c *TCPComm, name string, out []T) error {
	n, p, r := len(out), c.size, c.rank
	lo, hi := ChunkRange(n, p, r)
	xs := make([]xfer, p)
	for q := range p {
		if q == r {
			continue
		}
		qlo, qhi := ChunkRange(n, p, q)
		xs[q] = xfer{send: asBytes(out[lo:hi]), recv: asBytes(out[qlo:qhi]), doSend: true, doRecv: true}
	}
	return c.exchange(ctx, name, opGather, xs)
}

func allReduce[T elem](ctx context.Context, c *TCPComm, name string, buf []T, sum func([]T, [][]T)) error {
	lo, hi := ChunkRange(len(buf), c.size, c.rank)
	if err := reduceToOwner(ctx, c, name, buf, buf[lo:hi], sum); err != nil {
		return err
	}
	return gatherChunks(ctx, c, name, buf)
}

func allGather[T elem](ctx context.Context, c *TCPComm, name string, in, out []T) error {
	lo, hi := ChunkRange(len(out), c.size, c.rank)
	if len(in) != hi-lo {
		return fmt.Errorf("dist: %s: rank %d passes %d elements, want %d (chunk of %d over %d ranks)", name, c.rank, len(in), hi-lo, len(out), c.size)
	}
	copy(out[lo:hi], in)
	return gatherChunks(ctx, c, name, out)
}

// AllReduceSum implements Comm.
func (c *TCPComm) AllReduceSum(ctx context.Context, buf []float32) error {
	return allReduce(ctx, c, "allreduce", buf, sumF32)
}

// AllReduceSumBF16 implements Comm.
func (c *TCPComm) AllReduceSumBF16(ctx context.Context, buf []uint16) error {
	return allReduce(ctx, c, "allreduce-bf16", buf, sumBF16)
}

// ReduceScatterSum implements Comm.
func (c *TCPComm) ReduceScatterSum(ctx context.Context, in, out []float32) error {
	return reduceToOwner(ctx, c, "reducescatter", in, out, sumF32)
}

// ReduceScatterSumBF16 implements Comm.
func (c *TCPComm) ReduceScatterSumBF16(ctx context.Context, in, out []uint16) error {
	return reduceToOwner(ctx, c, "reducescatter-bf16", in, out, sumBF16)
}

// AllGather implements Comm.
func (c *TCPComm) AllGather(ctx context.Context, in, out []float32) error {
	return allGather(ctx, c, "allgather", in, out)
}

// AllGatherBF16 implements Comm.
func (c *TCPComm) AllGatherBF16(ctx context.Context, in, out []uint16) error {
	return allGather(ctx, c, "allgather-bf16", in, out)
}

// Broadcast implements Comm.
func (c *TCPComm) Broadcast(ctx context.Context, buf []byte, root int) error {
	if root < 0 || root >= c.size {
		return fmt.Errorf("dist: broadcast: root %d out of range for %d ranks", root, c.size)
	}
	xs := make([]xfer, c.size)
	for q := range c.size {
		switch {
		case q == c.rank:
		case c.rank == root:
			xs[q] = xfer{send: buf, doSend: true}
		case q == root:
			xs[q] = xfer{recv: buf, doRecv: true}
		}
	}
	return c.exchange(ctx, "broadcast", opBroadcast, xs)
}

// Barrier implements Comm.
func (c *TCPComm) Barrier(ctx context.Context) error {
	xs := make([]xfer, c.size)
	for q := range c.size {
		if q != c.rank {
			xs[q] = xfer{doSend: true, doRecv: true}
		}
	}
	return c.exchange(ctx, "barrier", opBarrier, xs)
}
