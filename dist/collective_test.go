package dist

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// connectAll starts p ranks in goroutines over loopback; hook, when not
// nil, becomes rank r's sendHook.
func connectAll(t *testing.T, p int, hook func(r, peer int)) []*TCPComm {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cs := make([]*TCPComm, p)
	errs := make([]error, p)
	var wg sync.WaitGroup
	for r := range p {
		o := Options{Rank: r, WorldSize: p, MasterAddr: l.Addr().String(), ConnectTimeout: 20 * time.Second, Timeout: 20 * time.Second}
		if r == 0 {
			o.Listener = l
		}
		if hook != nil {
			o.sendHook = func(peer int) { hook(r, peer) }
		}
		wg.Go(func() { cs[r], errs[r] = Connect(context.Background(), o) })
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	t.Cleanup(func() {
		for _, c := range cs {
			c.Close()
		}
	})
	return cs
}

// onAll runs f on every rank concurrently and returns the errors by rank.
func onAll(cs []*TCPComm, f func(c *TCPComm) error) []error {
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for r, c := range cs {
		wg.Go(func() { errs[r] = f(c) })
	}
	wg.Wait()
	return errs
}

// suiteDigests runs runSuite for seeds 1 and 2 on every rank and returns
// the digests, which every rank must agree on.
func suiteDigests(t *testing.T, cs []*TCPComm) [2]string {
	t.Helper()
	var ds [2]string
	for i, seed := range []uint64{1, 2} {
		digests := make([]string, len(cs))
		errs := onAll(cs, func(c *TCPComm) error {
			d, err := runSuite(context.Background(), c, seed)
			digests[c.Rank()] = fmt.Sprintf("%x", d)
			return err
		})
		for r, err := range errs {
			if err != nil {
				t.Fatalf("seed %d rank %d: %v", seed, r, err)
			}
			if digests[r] != digests[0] {
				t.Fatalf("seed %d: rank %d's results differ from rank 0's", seed, r)
			}
		}
		ds[i] = digests[0]
	}
	return ds
}

// TestCollectivesInProcess checks every collective, fp32 and bf16, against
// the serial rank-order reference with 2, 3 and 4 ranks, then again with
// the sends of every rank delayed at random, so that messages arrive in
// other orders: the bits must not change.
func TestCollectivesInProcess(t *testing.T) {
	for _, p := range []int{2, 3, 4} {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			want := suiteDigests(t, connectAll(t, p, nil))
			for trial := range 2 {
				var mu sync.Mutex
				rng := rand.New(rand.NewPCG(uint64(p), uint64(trial)))
				perturb := func(r, peer int) {
					mu.Lock()
					d := time.Duration(rng.IntN(300)) * time.Microsecond
					spins := rng.IntN(20)
					mu.Unlock()
					for range spins {
						runtime.Gosched()
					}
					time.Sleep(d) // perturbs arrival order only; correctness never waits on it
				}
				if got := suiteDigests(t, connectAll(t, p, perturb)); got != want {
					t.Fatalf("trial %d: results changed with the arrival order", trial)
				}
			}
		})
	}
}

// TestInputsExposeSumOrder guards the test above: with these inputs the
// order of a sum changes its bits, so a backend that summed in arrival
// order would fail it.
func TestInputsExposeSumOrder(t *testing.T) {
	const p, n = 4, 1 << 14
	fwd := serialSum(1, p, n)
	rev := inputF32(1, p-1, n)
	for r := p - 2; r >= 0; r-- {
		for i, v := range inputF32(1, r, n) {
			rev[i] += v
		}
	}
	diff := 0
	for i := range fwd {
		if fwd[i] != rev[i] {
			diff++
		}
	}
	if diff == 0 {
		t.Fatal("rank-order and reverse-order sums agree everywhere: the inputs cannot tell orders apart")
	}
}

// ops are the collectives the failure tests call, each as one rank would
// with a small buffer; root is the broadcast's root.
var ops = []struct {
	name string
	call func(ctx context.Context, c Comm, root int) error
}{
	{"allreduce", func(ctx context.Context, c Comm, _ int) error { return c.AllReduceSum(ctx, make([]float32, 4096)) }},
	{"allreduce-bf16", func(ctx context.Context, c Comm, _ int) error { return c.AllReduceSumBF16(ctx, make([]uint16, 4096)) }},
	{"reducescatter", func(ctx context.Context, c Comm, _ int) error {
		return c.ReduceScatterSum(ctx, make([]float32, 4096), make([]float32, ChunkLen(4096, c.Size(), c.Rank())))
	}},
	{"reducescatter-bf16", func(ctx context.Context, c Comm, _ int) error {
		return c.ReduceScatterSumBF16(ctx, make([]uint16, 4096), make([]uint16, ChunkLen(4096, c.Size(), c.Rank())))
	}},
	{"allgather", func(ctx context.Context, c Comm, _ int) error {
		return c.AllGather(ctx, make([]float32, ChunkLen(4096, c.Size(), c.Rank())), make([]float32, 4096))
	}},
	{"allgather-bf16", func(ctx context.Context, c Comm, _ int) error {
		return c.AllGatherBF16(ctx, make([]uint16, ChunkLen(4096, c.Size(), c.Rank())), make([]uint16, 4096))
	}},
	// A broadcast waits only for its root: the root is the missing rank.
	{"broadcast", func(ctx context.Context, c Comm, root int) error { return c.Broadcast(ctx, make([]byte, 4096), root) }},
	{"barrier", func(ctx context.Context, c Comm, _ int) error { return c.Barrier(ctx) }},
}

// wantLost checks that err is a *PeerError naming rank lost.
func wantLost(t *testing.T, who int, err error, lost int) {
	t.Helper()
	var pe *PeerError
	switch {
	case err == nil:
		t.Errorf("rank %d: no error, want rank %d lost", who, lost)
	case !errors.As(err, &pe) || pe.Rank != lost:
		t.Errorf("rank %d: %v; want a PeerError naming rank %d", who, err, lost)
	case !strings.Contains(err.Error(), fmt.Sprintf("rank %d lost", lost)):
		t.Errorf("rank %d: message %q does not name rank %d", who, err, lost)
	}
}

// TestTimeoutNamesMissingRank: when one rank never makes a call, every
// other rank's call ends at its deadline with an error naming that rank,
// and later calls fail at once with the same error.
func TestTimeoutNamesMissingRank(t *testing.T) {
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			t.Parallel()
			const p, missing = 3, 1
			cs := connectAll(t, p, nil)
			const timeout = 2 * time.Second // ample for the callers to start together, even under load
			callers := append(append([]*TCPComm(nil), cs[:missing]...), cs[missing+1:]...)
			errs := onAll(callers, func(c *TCPComm) error {
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				return op.call(ctx, c, missing)
			})
			for i, err := range errs {
				wantLost(t, callers[i].Rank(), err, missing)
				if again := op.call(context.Background(), callers[i], missing); again != err {
					t.Errorf("rank %d: the call after the failure returned %v, want the first error", callers[i].Rank(), again)
				}
			}
		})
	}
}

// TestDefaultTimeout: without a context deadline, Options.Timeout bounds
// the call.
func TestDefaultTimeout(t *testing.T) {
	cs := connectAll(t, 2, nil)
	cs[0].timeout = 200 * time.Millisecond
	err := cs[0].Barrier(context.Background())
	wantLost(t, 0, err, 1)
	if !strings.Contains(err.Error(), "no answer within 200ms") {
		t.Errorf("error %q does not give the timeout", err)
	}
}

// TestPeerLostMidCollective: a rank whose connections vanish while it is
// sending (as when its process is killed) is named by every other rank,
// including ranks that also see the survivors close after it.
func TestPeerLostMidCollective(t *testing.T) {
	for _, p := range []int{2, 3, 4} {
		for _, op := range ops {
			t.Run(fmt.Sprintf("p=%d/%s", p, op.name), func(t *testing.T) {
				victim := p - 1
				var (
					once  sync.Once
					armed atomic.Bool // not during Connect's barrier
					cs    []*TCPComm
				)
				cs = connectAll(t, p, func(r, peer int) {
					if r != victim || !armed.Load() {
						return
					}
					// The kernel closes a dead process's sockets: do the same.
					once.Do(func() {
						for _, cn := range append(append([]net.Conn(nil), cs[victim].peers...), cs[victim].ctrl...) {
							if cn != nil {
								cn.Close()
							}
						}
					})
				})
				armed.Store(true)
				ctx := context.Background()
				errs := onAll(cs, func(c *TCPComm) error { return op.call(ctx, c, victim) })
				for r, err := range errs {
					if r != victim {
						wantLost(t, r, err, victim)
					}
				}
			})
		}
	}
}

// TestCloseBreaksPeers: a rank that closes its Comm is named by the peers
// still waiting for it, and calls on a closed Comm fail.
func TestCloseBreaksPeers(t *testing.T) {
	cs := connectAll(t, 3, nil)
	cs[2].Close()
	errs := onAll(cs[:2], func(c *TCPComm) error { return c.Barrier(context.Background()) })
	for r, err := range errs {
		wantLost(t, r, err, 2)
	}
	if err := cs[2].Barrier(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("barrier on a closed Comm: %v, want ErrClosed", err)
	}
}

// TestMismatchedCalls: ranks that issue different collectives get an error
// saying so instead of mixing up data.
func TestMismatchedCalls(t *testing.T) {
	cs := connectAll(t, 2, nil)
	errs := onAll(cs, func(c *TCPComm) error {
		if c.Rank() == 0 {
			return c.AllReduceSum(context.Background(), make([]float32, 8))
		}
		return c.AllReduceSum(context.Background(), make([]float32, 9))
	})
	for r, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "out of step") {
			t.Errorf("rank %d: %v, want an out-of-step error", r, err)
		}
	}
}

// TestBadArguments: wrong lengths are this rank's error and leave the
// Comm usable.
func TestBadArguments(t *testing.T) {
	cs := connectAll(t, 2, nil)
	ctx := context.Background()
	if err := cs[0].ReduceScatterSum(ctx, make([]float32, 10), make([]float32, 4)); err == nil || !strings.Contains(err.Error(), "want 5") {
		t.Errorf("short output: %v", err)
	}
	if err := cs[0].AllGather(ctx, make([]float32, 3), make([]float32, 10)); err == nil || !strings.Contains(err.Error(), "want 5") {
		t.Errorf("short input: %v", err)
	}
	if err := cs[0].Broadcast(ctx, nil, 2); err == nil || !strings.Contains(err.Error(), "root 2") {
		t.Errorf("bad root: %v", err)
	}
	for r, err := range onAll(cs, func(c *TCPComm) error { return c.Barrier(ctx) }) {
		if err != nil {
			t.Errorf("rank %d: barrier after argument errors: %v", r, err)
		}
	}
}

func TestChunkRange(t *testing.T) {
	for _, n := range []int{0, 1, 5, 17, 100} {
		for _, p := range []int{1, 2, 3, 4, 7} {
			next := 0
			for r := range p {
				lo, hi := ChunkRange(n, p, r)
				if lo != next || hi < lo || hi-lo > n/p+1 || hi-lo < n/p {
					t.Fatalf("ChunkRange(%d, %d, %d) = [%d, %d), want a chunk starting at %d of %d or %d", n, p, r, lo, hi, next, n/p, n/p+1)
				}
				next = hi
			}
			if next != n {
				t.Fatalf("ChunkRange(%d, %d, ·) covers [0, %d)", n, p, next)
			}
		}
	}
}

// TestCancelBlamesSelf: a rank whose own context is cancelled (e.g. on
// SIGINT) tells its peers that it stopped, instead of blaming the peer it
// was waiting for.
func TestCancelBlamesSelf(t *testing.T) {
	cs := connectAll(t, 3, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := cs[0].Barrier(ctx); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("rank 0: %v, want its cancellation", err)
	}
	for r, err := range onAll(cs[1:], func(c *TCPComm) error { return c.Barrier(context.Background()) }) {
		wantLost(t, r+1, err, 0)
		if err != nil && !strings.Contains(err.Error(), "rank 0 stopped: context canceled") {
			t.Errorf("rank %d: %v does not say why rank 0 stopped", r+1, err)
		}
	}
}
