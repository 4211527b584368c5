package dist

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"purpcode/internal/half"
)

// TCPComm is the CPU backend: a full mesh of TCP connections, one per pair
// of ranks, built by Connect. It owns the connections: its sub-communicators
// (Sub, NewGrid) send over the same ones, and its Close ends them all.
type TCPComm struct {
	rank, size int
	peers      []net.Conn // data connections; peers[rank] is nil
	// ctrl are the control connections, one per peer beside the data one:
	// a rank whose Comm breaks tells the others which rank it lost there,
	// so that when rank a dies and rank b gives up because of it, rank c
	// (which sees both go) still names a, not b.
	ctrl     []net.Conn
	ctrlDone []chan struct{} // closed when ctrl[q]'s reader returns
	timeout  time.Duration
	// world is the Comm of all ranks; the TCPComm's collectives are its.
	world *group
	// broken is the first failure of the world or of any of its groups:
	// they share the connections, so one failure ends them all.
	broken  error
	closed  bool
	scratch []byte // shared by the world and its groups (one call at a time)
	// busy is set while a collective of the world or one of its groups
	// runs: they share the connections and the scratch memory, so a
	// second, concurrent call is refused instead of mixing their frames.
	busy atomic.Bool
	// sendHook, when set (tests), runs before every message is sent; it
	// lets a test perturb the order in which messages arrive.
	sendHook func(peer int)

	mu       sync.Mutex
	notices  []*notice      // notices[q]: what peer q reported before leaving
	inflight func()         // wakes the exchange in flight, if any
	subs     map[string]int // how many groups of each member list exist (see Sub)
}

// newTCPComm is rank o.Rank's TCPComm before its connections are made.
func newTCPComm(o Options) *TCPComm {
	c := &TCPComm{
		rank: o.Rank, size: o.WorldSize, timeout: o.Timeout, sendHook: o.sendHook,
		peers: make([]net.Conn, o.WorldSize), ctrl: make([]net.Conn, o.WorldSize),
		ctrlDone: make([]chan struct{}, o.WorldSize), notices: make([]*notice, o.WorldSize),
	}
	members := make([]int, o.WorldSize)
	for r := range members {
		members[r] = r
	}
	c.world = &group{m: c, rank: o.Rank, members: members}
	return c
}

// group is a communicator over a TCPComm's connections: the world itself
// (id 0) or a sub-communicator of some of its ranks. Ranks inside a group
// are indices into members, which holds their world ranks; errors and
// notices always name world ranks.
type group struct {
	m       *TCPComm
	rank    int   // this process's index in members
	members []int // world rank of each group rank, in group-rank order
	// id tells the group's frames apart from those of the world and of
	// the other groups on the same connections (see Sub).
	id     uint32
	name   string // e.g. "tp group [2 3]"; "" for the world
	seq    uint64
	closed bool
}

var _ Comm = (*group)(nil)

// notice is a failure report from a peer: it lost rank Blame.
type notice struct {
	From, Blame int
	Msg         string
}

var _ Comm = (*TCPComm)(nil)

// Rank implements Comm.
func (c *TCPComm) Rank() int { return c.rank }

// Size implements Comm.
func (c *TCPComm) Size() int { return c.size }

// Close implements Comm. It closes the connections, so it also ends every
// group made from c.
func (c *TCPComm) Close() error {
	if c.broken == nil {
		c.broken = ErrClosed
	}
	return c.closeConns()
}

// Rank implements Comm.
func (g *group) Rank() int { return g.rank }

// Size implements Comm.
func (g *group) Size() int { return len(g.members) }

func (c *TCPComm) closeConns() error {
	if c.closed {
		return nil
	}
	c.closed = true
	var first error
	for _, cs := range [][]net.Conn{c.peers, c.ctrl} {
		for _, p := range cs {
			if p != nil {
				if err := p.Close(); err != nil && first == nil {
					first = err
				}
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

// A frame is a 24-byte header (kind, group id, the group's sequence
// number, payload length, little endian) and the payload in host byte
// order; all ranks are assumed to share one byte order (every supported
// 64-bit target is little endian). The world's group id is 0, so a run
// without groups sends the frames it sent before groups existed.
const headerLen = 24

// xfer is what one collective step sends to and receives from one peer.
type xfer struct {
	send, recv     []byte
	doSend, doRecv bool
}

// exchange runs one step of a collective: every send and receive of xs
// (indexed by group rank) concurrently, under one deadline. The first peer
// that fails aborts the others, and the world and all its groups are broken
// afterwards: the connections are closed, after telling the peers which
// rank was lost. Everything it reports (PeerError, notices) names world
// ranks.
func (g *group) exchange(ctx context.Context, name string, op opcode, xs []xfer) error {
	c := g.m
	if g.closed {
		return ErrClosed
	}
	if c.broken != nil {
		return c.broken
	}
	g.seq++
	label := fmt.Sprintf("%s #%d", name, g.seq)
	if g.name != "" {
		label += " in " + g.name
	}
	// From here on xs is indexed by world rank, like the connections.
	xs = g.toWorld(xs)
	if err := ctx.Err(); err != nil {
		// Send nothing: the peers must not complete a step this rank left.
		return c.fail(fmt.Errorf("dist: %s: %w", label, err), c.rank)
	}
	start := time.Now()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(c.timeout)
	}
	for q, x := range xs {
		if x.doSend || x.doRecv {
			if err := c.peers[q].SetDeadline(deadline); err != nil {
				return c.fail(&PeerError{Rank: q, Op: label, Err: err}, q)
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
	// A notice from a peer that already broke (see watch) ends this step
	// at once instead of at the deadline.
	c.mu.Lock()
	noticed := slices.ContainsFunc(c.notices, func(n *notice) bool { return n != nil })
	c.inflight = abort
	c.mu.Unlock()
	if noticed {
		abort()
	}
	stop := context.AfterFunc(ctx, abort)

	var wg sync.WaitGroup
	for q, x := range xs {
		if x.doSend {
			wg.Go(func() {
				if c.sendHook != nil {
					c.sendHook(q)
				}
				if err := writeFrame(c.peers[q], op, g.id, g.seq, x.send); err != nil {
					fail(q, fmt.Errorf("send: %w", err))
				}
			})
		}
		if x.doRecv {
			wg.Go(func() {
				if err := readFrame(c.peers[q], op, g.id, g.seq, x.recv); err != nil {
					fail(q, err)
				}
			})
		}
	}
	wg.Wait()
	stop()
	c.mu.Lock()
	c.inflight = nil
	c.mu.Unlock()
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
	if q < 0 && !noticed {
		return nil
	}
	if realErr >= 0 && peerClosed(errs[realErr]) {
		// A peer that closed its connections may have said why on its
		// control connection, which it closes right after; wait for that
		// (bounded, in case the peer is half gone) before blaming it.
		select {
		case <-c.ctrlDone[realErr]:
		case <-time.After(noticeWait):
		}
	}
	if n := c.firstNotice(q); n != nil {
		if n.Blame == c.rank {
			return c.fail(&PeerError{Rank: n.From, Op: label, Err: fmt.Errorf("it gave up on this rank: %s", n.Msg)}, n.From)
		}
		return c.fail(&PeerError{Rank: n.Blame, Op: label, Err: fmt.Errorf("reported by rank %d: %s", n.From, n.Msg)}, n.Blame)
	}
	err := errs[q]
	blame := q
	if realErr < 0 {
		if errors.Is(ctx.Err(), context.Canceled) {
			// This rank gave up, not the peer: say so to the others.
			err = fmt.Errorf("%w while waiting for it", ctx.Err())
			blame = c.rank
		} else {
			err = fmt.Errorf("no answer within %s: %w", deadline.Sub(start).Round(time.Millisecond), err)
		}
	}
	return c.fail(&PeerError{Rank: q, Op: label, Err: err}, blame)
}

// peerClosed reports whether err is the peer closing the connection (or
// the kernel closing it for a dead process), as opposed to a local error
// or a protocol violation.
func peerClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// noticeWait bounds how long a rank waits for a closed peer's notice.
const noticeWait = 2 * time.Second

// firstNotice returns peer q's notice, else the lowest peer's, else nil.
func (c *TCPComm) firstNotice(q int) *notice {
	c.mu.Lock()
	defer c.mu.Unlock()
	if q >= 0 && c.notices[q] != nil {
		return c.notices[q]
	}
	for _, n := range c.notices {
		if n != nil {
			return n
		}
	}
	return nil
}

// fail breaks the Comm with err: it tells every peer which rank the group
// lost (blame itself too, if it is alive: it learns who gave up on it) and
// closes all connections, so that the peers' calls end now instead of at
// their deadlines.
func (c *TCPComm) fail(err error, blame int) error {
	c.broken = err
	msg := err.Error()
	if blame == c.rank {
		// The peers read this as "rank N lost: reported by rank N: ...".
		cause := err
		if pe, ok := err.(*PeerError); ok {
			cause = pe.Err
		} else if u := errors.Unwrap(err); u != nil {
			cause = u
		}
		msg = fmt.Sprintf("rank %d stopped: %v", c.rank, cause)
	}
	if len(msg) > maxNoticeLen {
		msg = msg[:maxNoticeLen]
	}
	var wg sync.WaitGroup
	for _, cn := range c.ctrl {
		if cn == nil {
			continue
		}
		wg.Go(func() {
			cn.SetWriteDeadline(time.Now().Add(noticeWait)) //nolint:errcheck // a failed write is ignored below
			writeNotice(cn, blame, msg)                     //nolint:errcheck // best effort: the peer may be gone
		})
	}
	wg.Wait()
	c.closeConns() //nolint:errcheck // the Comm is broken already
	return err
}

// maxNoticeLen caps a notice's message.
const maxNoticeLen = 1 << 10

func writeNotice(w io.Writer, blame int, msg string) error {
	b := make([]byte, 8+len(msg))
	binary.LittleEndian.PutUint32(b[0:], uint32(blame))
	binary.LittleEndian.PutUint32(b[4:], uint32(len(msg)))
	copy(b[8:], msg)
	_, err := w.Write(b)
	return err
}

// watch reads peer q's control connection until it closes, recording a
// notice and waking the exchange in flight.
func (c *TCPComm) watch(q int) {
	defer close(c.ctrlDone[q])
	cn := c.ctrl[q]
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(cn, hdr[:]); err != nil {
			return
		}
		blame := int(binary.LittleEndian.Uint32(hdr[0:]))
		n := binary.LittleEndian.Uint32(hdr[4:])
		if n > maxNoticeLen || blame < 0 || blame >= c.size {
			return // not a notice: the peer is not speaking this protocol
		}
		msg := make([]byte, n)
		if _, err := io.ReadFull(cn, msg); err != nil {
			return
		}
		c.mu.Lock()
		if c.notices[q] == nil {
			c.notices[q] = &notice{From: q, Blame: blame, Msg: string(msg)}
		}
		wake := c.inflight
		c.mu.Unlock()
		if wake != nil {
			wake()
		}
	}
}

func writeFrame(w net.Conn, op opcode, id uint32, seq uint64, payload []byte) error {
	var hdr [headerLen]byte
	binary.LittleEndian.PutUint32(hdr[0:], uint32(op))
	binary.LittleEndian.PutUint32(hdr[4:], id)
	binary.LittleEndian.PutUint64(hdr[8:], seq)
	binary.LittleEndian.PutUint64(hdr[16:], uint64(len(payload)))
	bufs := net.Buffers{hdr[:], payload}
	_, err := bufs.WriteTo(w)
	return err
}

func readFrame(r net.Conn, op opcode, id uint32, seq uint64, dst []byte) error {
	var hdr [headerLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	gotOp := opcode(binary.LittleEndian.Uint32(hdr[0:]))
	gotID := binary.LittleEndian.Uint32(hdr[4:])
	gotSeq := binary.LittleEndian.Uint64(hdr[8:])
	gotLen := binary.LittleEndian.Uint64(hdr[16:])
	if gotOp != op || gotID != id || gotSeq != seq || gotLen != uint64(len(dst)) {
		return fmt.Errorf("collectives out of step: peer sent %s of %d bytes, this rank expects %s of %d bytes (different call order, groups or buffer sizes)",
			stepName(gotOp, gotID, gotSeq), gotLen, stepName(op, id, seq), len(dst))
	}
	_, err := io.ReadFull(r, dst)
	return err
}

// stepName names one step of a collective in a frame mismatch.
func stepName(op opcode, id uint32, seq uint64) string {
	if id == 0 {
		return fmt.Sprintf("%s #%d", op, seq)
	}
	return fmt.Sprintf("%s #%d of group %08x", op, seq, id)
}

// elem is an element type the collectives move: fp32, bf16 bits or fp64.
type elem interface{ float32 | uint16 | float64 }

func asBytes[T elem](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(z)))
}

// scratchOf returns n elements of reusable scratch memory, shared by the
// world and its groups.
func scratchOf[T elem](g *group, n int) []T { return scratchIn[T](&g.m.scratch, n) }

// scratchIn returns n elements of T over *buf, growing it (never
// shrinking) as needed.
func scratchIn[T elem](buf *[]byte, n int) []T {
	var z T
	nb := n * int(unsafe.Sizeof(z))
	if cap(*buf) < nb {
		// Allocated as uint64 so that the bytes are aligned for any T.
		words := make([]uint64, (nb+7)/8)
		*buf = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), len(words)*8)
	}
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(*buf))), n)
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

// sumF64 is sumF32 in float64.
func sumF64(dst []float64, srcs [][]float64) {
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

// toWorld re-indexes a step's transfers from group ranks to world ranks.
func (g *group) toWorld(xs []xfer) []xfer {
	w := make([]xfer, g.m.size)
	for i, x := range xs {
		w[g.members[i]] = x
	}
	return w
}

// reduceToOwner sends chunk q of in to rank q, receives this rank's chunk
// from every peer and writes their rank-ordered sum to out (which may be
// this rank's chunk of in).
func reduceToOwner[T elem](ctx context.Context, g *group, name string, in, out []T, sum func([]T, [][]T)) error {
	n, p, r := len(in), g.Size(), g.rank
	lo, hi := ChunkRange(n, p, r)
	if len(out) != hi-lo {
		return fmt.Errorf("dist: %s: rank %d's output has %d elements, want %d (chunk of %d over %d ranks)", g.what(name), g.members[r], len(out), hi-lo, n, p)
	}
	scratch := scratchOf[T](g, (p-1)*(hi-lo))
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
	if err := g.exchange(ctx, name, opReduce, xs); err != nil {
		return err
	}
	sum(out, srcs)
	return nil
}

// gatherChunks sends this rank's chunk of out (already in place) to every
// peer and receives theirs into out.
func gatherChunks[T elem](ctx context.Context, g *group, name string, out []T) error {
	n, p, r := len(out), g.Size(), g.rank
	lo, hi := ChunkRange(n, p, r)
	xs := make([]xfer, p)
	for q := range p {
		if q == r {
			continue
		}
		qlo, qhi := ChunkRange(n, p, q)
		xs[q] = xfer{send: asBytes(out[lo:hi]), recv: asBytes(out[qlo:qhi]), doSend: true, doRecv: true}
	}
	return g.exchange(ctx, name, opGather, xs)
}

func allReduce[T elem](ctx context.Context, g *group, name string, buf []T, sum func([]T, [][]T)) error {
	lo, hi := ChunkRange(len(buf), g.Size(), g.rank)
	if err := reduceToOwner(ctx, g, name, buf, buf[lo:hi], sum); err != nil {
		return err
	}
	return gatherChunks(ctx, g, name, buf)
}

func allGather[T elem](ctx context.Context, g *group, name string, in, out []T) error {
	lo, hi := ChunkRange(len(out), g.Size(), g.rank)
	if len(in) != hi-lo {
		return fmt.Errorf("dist: %s: rank %d passes %d elements, want %d (chunk of %d over %d ranks)", g.what(name), g.members[g.rank], len(in), hi-lo, len(out), g.Size())
	}
	copy(out[lo:hi], in)
	return gatherChunks(ctx, g, name, out)
}

// what names collective name of g in an error: "allreduce", or
// "allreduce in tp group [2 3]".
func (g *group) what(name string) string {
	if g.name == "" {
		return name
	}
	return name + " in " + g.name
}

// call runs one collective of g, refusing it while another call of the
// world or of any of its groups is in flight: they share the connections,
// so concurrent calls would interleave their frames.
func (g *group) call(name string, f func() error) error {
	if !g.m.busy.CompareAndSwap(false, true) {
		return fmt.Errorf("dist: %s: another collective on the same connections is in flight (the world Comm and its groups share them: issue one call at a time)", g.what(name))
	}
	defer g.m.busy.Store(false)
	return f()
}

// AllReduceSum implements Comm.
func (g *group) AllReduceSum(ctx context.Context, buf []float32) error {
	return g.call("allreduce", func() error { return allReduce(ctx, g, "allreduce", buf, sumF32) })
}

// AllReduceSumF64 implements Comm.
func (g *group) AllReduceSumF64(ctx context.Context, buf []float64) error {
	return g.call("allreduce-f64", func() error { return allReduce(ctx, g, "allreduce-f64", buf, sumF64) })
}

// AllReduceSumBF16 implements Comm.
func (g *group) AllReduceSumBF16(ctx context.Context, buf []uint16) error {
	return g.call("allreduce-bf16", func() error { return allReduce(ctx, g, "allreduce-bf16", buf, sumBF16) })
}

// ReduceScatterSum implements Comm.
func (g *group) ReduceScatterSum(ctx context.Context, in, out []float32) error {
	return g.call("reducescatter", func() error { return reduceToOwner(ctx, g, "reducescatter", in, out, sumF32) })
}

// ReduceScatterSumBF16 implements Comm.
func (g *group) ReduceScatterSumBF16(ctx context.Context, in, out []uint16) error {
	return g.call("reducescatter-bf16", func() error { return reduceToOwner(ctx, g, "reducescatter-bf16", in, out, sumBF16) })
}

// AllGather implements Comm.
func (g *group) AllGather(ctx context.Context, in, out []float32) error {
	return g.call("allgather", func() error { return allGather(ctx, g, "allgather", in, out) })
}

// AllGatherBF16 implements Comm.
func (g *group) AllGatherBF16(ctx context.Context, in, out []uint16) error {
	return g.call("allgather-bf16", func() error { return allGather(ctx, g, "allgather-bf16", in, out) })
}

// Broadcast implements Comm. root is a rank of g (a group rank, not a
// world rank).
func (g *group) Broadcast(ctx context.Context, buf []byte, root int) error {
	p := g.Size()
	if root < 0 || root >= p {
		return fmt.Errorf("dist: %s: root %d out of range for %d ranks", g.what("broadcast"), root, p)
	}
	return g.call("broadcast", func() error {
		xs := make([]xfer, p)
		for q := range p {
			switch {
			case q == g.rank:
			case g.rank == root:
				xs[q] = xfer{send: buf, doSend: true}
			case q == root:
				xs[q] = xfer{recv: buf, doRecv: true}
			}
		}
		return g.exchange(ctx, "broadcast", opBroadcast, xs)
	})
}

// Barrier implements Comm.
func (g *group) Barrier(ctx context.Context) error {
	return g.call("barrier", func() error {
		xs := make([]xfer, g.Size())
		for q := range xs {
			if q != g.rank {
				xs[q] = xfer{doSend: true, doRecv: true}
			}
		}
		return g.exchange(ctx, "barrier", opBarrier, xs)
	})
}

// AllReduceSum implements Comm.
func (c *TCPComm) AllReduceSum(ctx context.Context, buf []float32) error {
	return c.world.AllReduceSum(ctx, buf)
}

// AllReduceSumF64 implements Comm.
func (c *TCPComm) AllReduceSumF64(ctx context.Context, buf []float64) error {
	return c.world.AllReduceSumF64(ctx, buf)
}

// AllReduceSumBF16 implements Comm.
func (c *TCPComm) AllReduceSumBF16(ctx context.Context, buf []uint16) error {
	return c.world.AllReduceSumBF16(ctx, buf)
}

// ReduceScatterSum implements Comm.
func (c *TCPComm) ReduceScatterSum(ctx context.Context, in, out []float32) error {
	return c.world.ReduceScatterSum(ctx, in, out)
}

// ReduceScatterSumBF16 implements Comm.
func (c *TCPComm) ReduceScatterSumBF16(ctx context.Context, in, out []uint16) error {
	return c.world.ReduceScatterSumBF16(ctx, in, out)
}

// AllGather implements Comm.
func (c *TCPComm) AllGather(ctx context.Context, in, out []float32) error {
	return c.world.AllGather(ctx, in, out)
}

// AllGatherBF16 implements Comm.
func (c *TCPComm) AllGatherBF16(ctx context.Context, in, out []uint16) error {
	return c.world.AllGatherBF16(ctx, in, out)
}

// Broadcast implements Comm.
func (c *TCPComm) Broadcast(ctx context.Context, buf []byte, root int) error {
	return c.world.Broadcast(ctx, buf, root)
}

// Barrier implements Comm.
func (c *TCPComm) Barrier(ctx context.Context) error {
	return c.world.Barrier(ctx)
}
