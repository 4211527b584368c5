package dist

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"purpcode/internal/half"
)

// gridMembers are the world ranks of world rank w's TP and DP groups in a
// grid of n ranks with TP size tp, in group-rank order (TP-innermost).
func gridMembers(w, n, tp int) (tpRanks, dpRanks []int) {
	for i := range tp {
		tpRanks = append(tpRanks, w/tp*tp+i)
	}
	for k := range n / tp {
		dpRanks = append(dpRanks, w%tp+k*tp)
	}
	return tpRanks, dpRanks
}

// inputF64 is world rank w's float64 input: fp32 values plus a term fp32
// cannot hold, so that a sum that went through fp32 would show.
func inputF64(seed uint64, w, n int) []float64 {
	a, b := inputF32(seed, w, n), inputF32(seed+1<<32, w, n)
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(a[i]) + math.Ldexp(float64(b[i]), -30)
	}
	return out
}

// groupRef is the rank-order reference of one step in one group: every
// member's inputs (by world rank) summed in group-rank order.
type groupRef struct {
	sum  []float32
	sumD []float64
	sumB []uint16
}

func refOf(seed uint64, members []int, n int) groupRef {
	ref := groupRef{sum: make([]float32, n), sumD: make([]float64, n), sumB: make([]uint16, n)}
	acc := make([]float32, n)
	for i, w := range members {
		f, d, b := inputF32(seed, w, n), inputF64(seed, w, n), inputBF16(seed, w, n)
		for k := range n {
			if i == 0 {
				ref.sum[k], ref.sumD[k], acc[k] = f[k], d[k], half.BF16ToF32(b[k])
				continue
			}
			ref.sum[k] += f[k]
			ref.sumD[k] += d[k]
			acc[k] += half.BF16ToF32(b[k])
		}
	}
	for k, v := range acc {
		ref.sumB[k] = half.F32ToBF16(v)
	}
	return ref
}

// gridOps are the collectives the grid schedule runs.
var gridOps = []string{"allreduce", "allreduce-f64", "allreduce-bf16", "reducescatter", "reducescatter-bf16",
	"allgather", "allgather-bf16", "broadcast", "barrier"}

// runGroupStep runs op on c, the group of world ranks members, with the
// inputs of seed, and checks the result bit for bit against the reference.
func runGroupStep(ctx context.Context, c Comm, members []int, seed uint64, op string, n int) error {
	p, r := c.Size(), c.Rank()
	if p != len(members) {
		return fmt.Errorf("size %d, want %d", p, len(members))
	}
	w := members[r]
	lo, hi := ChunkRange(n, p, r)
	ref := refOf(seed, members, n)
	mismatch := func(i int, got, want any) error {
		return fmt.Errorf("world rank %d, group %v, n=%d: %s [%d] = %v, want %v", w, members, n, op, i, got, want)
	}
	switch op {
	case "allreduce":
		buf := inputF32(seed, w, n)
		if err := c.AllReduceSum(ctx, buf); err != nil {
			return err
		}
		for i := range buf {
			if math.Float32bits(buf[i]) != math.Float32bits(ref.sum[i]) {
				return mismatch(i, buf[i], ref.sum[i])
			}
		}
	case "allreduce-f64":
		buf := inputF64(seed, w, n)
		if err := c.AllReduceSumF64(ctx, buf); err != nil {
			return err
		}
		for i := range buf {
			if math.Float64bits(buf[i]) != math.Float64bits(ref.sumD[i]) {
				return mismatch(i, buf[i], ref.sumD[i])
			}
		}
	case "allreduce-bf16":
		buf := inputBF16(seed, w, n)
		if err := c.AllReduceSumBF16(ctx, buf); err != nil {
			return err
		}
		for i := range buf {
			if buf[i] != ref.sumB[i] {
				return mismatch(i, buf[i], ref.sumB[i])
			}
		}
	case "reducescatter":
		out := make([]float32, hi-lo)
		if err := c.ReduceScatterSum(ctx, inputF32(seed, w, n), out); err != nil {
			return err
		}
		for i := range out {
			if math.Float32bits(out[i]) != math.Float32bits(ref.sum[lo+i]) {
				return mismatch(lo+i, out[i], ref.sum[lo+i])
			}
		}
	case "reducescatter-bf16":
		out := make([]uint16, hi-lo)
		if err := c.ReduceScatterSumBF16(ctx, inputBF16(seed, w, n), out); err != nil {
			return err
		}
		for i := range out {
			if out[i] != ref.sumB[lo+i] {
				return mismatch(lo+i, out[i], ref.sumB[lo+i])
			}
		}
	case "allgather", "allgather-bf16":
		// Each member contributes the first values of its own input.
		out, bout := make([]float32, n), make([]uint16, n)
		var err error
		if op == "allgather" {
			err = c.AllGather(ctx, inputF32(seed, w, hi-lo), out)
		} else {
			err = c.AllGatherBF16(ctx, inputBF16(seed, w, hi-lo), bout)
		}
		if err != nil {
			return err
		}
		for q, wq := range members {
			qlo, qhi := ChunkRange(n, p, q)
			want, bwant := inputF32(seed, wq, qhi-qlo), inputBF16(seed, wq, qhi-qlo)
			for i := range want {
				if op == "allgather" && math.Float32bits(out[qlo+i]) != math.Float32bits(want[i]) {
					return mismatch(qlo+i, out[qlo+i], want[i])
				}
				if op == "allgather-bf16" && bout[qlo+i] != bwant[i] {
					return mismatch(qlo+i, bout[qlo+i], bwant[i])
				}
			}
		}
	case "broadcast":
		root := int(seed) % p
		want := asBytes(inputF32(seed, members[root], n))[:n]
		buf := make([]byte, n)
		if r == root {
			copy(buf, want)
		}
		if err := c.Broadcast(ctx, buf, root); err != nil {
			return err
		}
		if string(buf) != string(want) {
			return fmt.Errorf("world rank %d, group %v, n=%d: broadcast from group rank %d differs", w, members, n, root)
		}
	case "barrier":
		return c.Barrier(ctx)
	default:
		return fmt.Errorf("unknown op %q", op)
	}
	return nil
}

// runGridSchedule makes world's TP×DP grid and runs every collective on
// the world, TP and DP communicators, interleaved (the comm changes at
// every call, in a rotating order), with exact checks. Every rank runs the
// same schedule, as SPMD code does.
func runGridSchedule(ctx context.Context, world *TCPComm, tp int) error {
	tpc, dpc, err := NewGrid(world, tp)
	if err != nil {
		return err
	}
	defer tpc.Close()
	defer dpc.Close()
	n := world.Size()
	tpRanks, dpRanks := gridMembers(world.Rank(), n, tp)
	worldRanks := make([]int, n)
	for i := range worldRanks {
		worldRanks[i] = i
	}
	comms := []struct {
		name    string
		c       Comm
		members []int
	}{{"world", world, worldRanks}, {"tp", tpc, tpRanks}, {"dp", dpc, dpRanks}}
	sizes := []int{0, 1, 3, 1000, 1<<12 + 5}
	step := 0
	for oi, op := range gridOps {
		for k := range comms {
			cm := comms[(k+oi)%len(comms)]
			step++
			// The seed differs per step and per group, so data of one
			// group arriving in another would not pass the checks.
			seed := uint64(step)*16 + uint64(cm.members[0])
			if err := runGroupStep(ctx, cm.c, cm.members, seed, op, sizes[step%len(sizes)]); err != nil {
				return fmt.Errorf("step %d (%s on %s): %w", step, op, cm.name, err)
			}
		}
	}
	return nil
}

// TestGridCollectives runs the interleaved schedule on a 2×2 grid, then
// on the edges tp=1 (TP groups of one rank: local copies) and tp=4 (DP
// groups of one rank), then on a 2×2 grid whose messages arrive in other
// orders: the results must be the rank-order references, bit for bit.
func TestGridCollectives(t *testing.T) {
	for _, tp := range []int{2, 1, 4} {
		t.Run(fmt.Sprintf("tp=%d", tp), func(t *testing.T) {
			cs, err := ConnectLocal(context.Background(), 4, 20*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				for _, c := range cs {
					c.Close()
				}
			})
			for r, err := range onAll(cs, func(c *TCPComm) error { return runGridSchedule(context.Background(), c, tp) }) {
				if err != nil {
					t.Errorf("world rank %d: %v", r, err)
				}
			}
		})
	}
	t.Run("tp=2/perturbed", func(t *testing.T) {
		var mu sync.Mutex
		rng := rand.New(rand.NewPCG(7, 7))
		cs := connectAll(t, 4, func(r, peer int) {
			mu.Lock()
			d := time.Duration(rng.IntN(300)) * time.Microsecond
			spins := rng.IntN(20)
			mu.Unlock()
			for range spins {
				runtime.Gosched()
			}
			time.Sleep(d) // perturbs arrival order only; correctness never waits on it
		})
		for r, err := range onAll(cs, func(c *TCPComm) error { return runGridSchedule(context.Background(), c, 2) }) {
			if err != nil {
				t.Errorf("world rank %d: %v", r, err)
			}
		}
	})
}

// TestGridNumbering: TP-innermost numbering, seen through the
// communicators' ranks and through what their all-gathers collect.
func TestGridNumbering(t *testing.T) {
	const n, tp = 6, 3
	cs := connectAll(t, n, nil)
	ctx := context.Background()
	errs := onAll(cs, func(c *TCPComm) error {
		tpc, dpc, err := NewGrid(c, tp)
		if err != nil {
			return err
		}
		w := c.Rank()
		if tpc.Rank() != w%tp || tpc.Size() != tp || dpc.Rank() != w/tp || dpc.Size() != n/tp {
			return fmt.Errorf("tp rank %d of %d, dp rank %d of %d", tpc.Rank(), tpc.Size(), dpc.Rank(), dpc.Size())
		}
		wantTP, wantDP := gridMembers(w, n, tp)
		for _, g := range []struct {
			c    Comm
			want []int
		}{{tpc, wantTP}, {dpc, wantDP}} {
			out := make([]float32, g.c.Size())
			if err := g.c.AllGather(ctx, []float32{float32(w)}, out); err != nil {
				return err
			}
			for i, v := range out {
				if int(v) != g.want[i] {
					return fmt.Errorf("gathered world ranks %v, want %v", out, g.want)
				}
			}
		}
		return nil
	})
	for r, err := range errs {
		if err != nil {
			t.Errorf("world rank %d: %v", r, err)
		}
	}
}

// TestGridBadTP: a TP size that does not divide the world is refused,
// naming both sizes; so are member lists Sub cannot use.
func TestGridBadTP(t *testing.T) {
	cs := connectAll(t, 4, nil)
	for _, tp := range []int{0, -1, 3, 5, 8} {
		_, _, err := NewGrid(cs[0], tp)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("tensor-parallel size %d does not divide world size 4", tp)) {
			t.Errorf("tp=%d: %v, want an error naming %d and 4", tp, err, tp)
		}
	}
	if _, _, err := NewGrid(nil, 1); err == nil {
		t.Error("NewGrid(nil): no error")
	}
	for _, tc := range []struct {
		ranks []int
		want  string
	}{
		{nil, "no ranks"},
		{[]int{0, 4}, "rank 4 is outside world size 4"},
		{[]int{0, -1}, "rank -1 is outside world size 4"},
		{[]int{0, 1, 0}, "rank 0 appears twice"},
		{[]int{1, 2}, "this rank (0) is not a member"},
	} {
		if _, err := cs[0].Sub(tc.ranks); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Sub(%v): %v, want %q", tc.ranks, err, tc.want)
		}
	}
	// The refusals left the world usable.
	for r, err := range onAll(cs, func(c *TCPComm) error { return c.Barrier(context.Background()) }) {
		if err != nil {
			t.Errorf("rank %d: barrier: %v", r, err)
		}
	}
}

// TestGroupPeerLostBreaksOtherGroups: in a 2×2 grid, world rank 3's
// connections vanish (as when its process is killed) in the middle of a
// collective of one of its groups. The ranks that then block in calls of
// groups without rank 3 (waiting for a rank that failed because of it)
// fail too, naming world rank 3, not the rank they were waiting for; the
// world and every group of every survivor are broken afterwards.
func TestGroupPeerLostBreaksOtherGroups(t *testing.T) {
	const n, tp, victim = 4, 2, 3
	for _, first := range []string{"tp", "dp"} {
		t.Run("dies in "+first, func(t *testing.T) {
			var (
				once  sync.Once
				armed atomic.Bool // not during Connect's barrier
				cs    []*TCPComm
			)
			cs = connectAll(t, n, func(r, peer int) {
				if r != victim || !armed.Load() {
					return
				}
				once.Do(func() {
					for _, cn := range append(slices.Clone(cs[victim].peers), cs[victim].ctrl...) {
						if cn != nil {
							cn.Close()
						}
					}
				})
			})
			armed.Store(true)
			ctx := context.Background()
			comms := make([][2]Comm, n)
			errs := onAll(cs, func(c *TCPComm) error {
				tpc, dpc, err := NewGrid(c, tp)
				if err != nil {
					return err
				}
				comms[c.Rank()] = [2]Comm{tpc, dpc}
				order := []Comm{tpc, dpc}
				if first == "dp" {
					order = []Comm{dpc, tpc}
				}
				// The victim dies in its first group's call; the
				// survivors outside that group complete it, then block
				// in their second group's call.
				for _, g := range order {
					if err := g.AllReduceSum(ctx, make([]float32, 4096)); err != nil {
						return err
					}
				}
				return c.Barrier(ctx)
			})
			for r, err := range errs {
				if r == victim {
					continue
				}
				wantLost(t, r, err, victim)
				if err != nil && strings.Contains(err.Error(), "no answer within") {
					t.Errorf("rank %d failed at its deadline, not through the lost connections: %v", r, err)
				}
				for i, g := range []Comm{cs[r], comms[r][0], comms[r][1]} {
					if g == nil {
						continue
					}
					if again := g.Barrier(ctx); again != err {
						t.Errorf("rank %d, comm %d: a later call returned %v, want the first error", r, i, again)
					}
				}
			}
		})
	}
}

// TestGroupCallsOutOfStep: a rank that calls a collective on a group while
// its peer calls it on the world (or on a group the two list in different
// orders) gets an error saying so instead of mixing up data.
func TestGroupCallsOutOfStep(t *testing.T) {
	ctx := context.Background()
	t.Run("world vs group", func(t *testing.T) {
		cs := connectAll(t, 2, nil)
		errs := onAll(cs, func(c *TCPComm) error {
			tpc, _, err := NewGrid(c, 2) // the TP group is the whole world
			if err != nil {
				return err
			}
			if c.Rank() == 0 {
				return tpc.AllReduceSum(ctx, make([]float32, 8))
			}
			return c.AllReduceSum(ctx, make([]float32, 8))
		})
		for r, err := range errs {
			if err == nil || !strings.Contains(err.Error(), "out of step") {
				t.Errorf("rank %d: %v, want an out-of-step error", r, err)
			}
		}
	})
	t.Run("members disagree", func(t *testing.T) {
		cs := connectAll(t, 2, nil)
		errs := onAll(cs, func(c *TCPComm) error {
			ranks := []int{0, 1}
			if c.Rank() == 1 {
				ranks = []int{1, 0}
			}
			g, err := c.Sub(ranks)
			if err != nil {
				return err
			}
			return g.AllReduceSum(ctx, make([]float32, 8))
		})
		for r, err := range errs {
			if err == nil || !strings.Contains(err.Error(), "out of step") {
				t.Errorf("rank %d: %v, want an out-of-step error", r, err)
			}
		}
	})
}

// TestGroupConcurrentCallRefused: while a TP call is in flight, a call on
// the DP group or the world of the same rank is refused (they share the
// connections), and the refusal breaks nothing.
func TestGroupConcurrentCallRefused(t *testing.T) {
	cs := connectAll(t, 4, nil)
	ctx := context.Background()
	grids := make([][2]Comm, 4)
	for r, err := range onAll(cs, func(c *TCPComm) error {
		tpc, dpc, err := NewGrid(c, 2)
		grids[c.Rank()] = [2]Comm{tpc, dpc}
		return err
	}) {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- grids[0][0].Barrier(ctx) }() // waits for rank 1
	for !cs[0].busy.Load() {
		runtime.Gosched()
	}
	for _, c := range []Comm{grids[0][1], cs[0]} {
		if err := c.Barrier(ctx); err == nil || !strings.Contains(err.Error(), "in flight") {
			t.Errorf("concurrent call: %v, want it refused", err)
		}
	}
	if err := grids[1][0].Barrier(ctx); err != nil {
		t.Fatalf("rank 1: tp barrier: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("rank 0: tp barrier: %v", err)
	}
	for r, err := range onAll(cs, func(c *TCPComm) error { return c.Barrier(ctx) }) {
		if err != nil {
			t.Errorf("rank %d: world barrier after the refusal: %v", r, err)
		}
	}
}

// TestGroupClose: closing a group ends only its own calls; the world and
// the other groups go on over the same connections, and closing the world
// ends its groups.
func TestGroupClose(t *testing.T) {
	cs := connectAll(t, 4, nil)
	ctx := context.Background()
	errs := onAll(cs, func(c *TCPComm) error {
		tpc, dpc, err := NewGrid(c, 2)
		if err != nil {
			return err
		}
		if err := tpc.Close(); err != nil {
			return err
		}
		if err := tpc.Barrier(ctx); !errors.Is(err, ErrClosed) {
			return fmt.Errorf("barrier on a closed group: %v, want ErrClosed", err)
		}
		if err := dpc.Barrier(ctx); err != nil {
			return fmt.Errorf("dp barrier after closing tp: %w", err)
		}
		if err := c.Barrier(ctx); err != nil {
			return fmt.Errorf("world barrier after closing tp: %w", err)
		}
		c.Close()
		if err := dpc.Barrier(ctx); !errors.Is(err, ErrClosed) {
			return fmt.Errorf("dp barrier after closing the world: %v, want ErrClosed", err)
		}
		return nil
	})
	for r, err := range errs {
		if err != nil {
			t.Errorf("rank %d: %v", r, err)
		}
	}
}

// TestKill9GridRank runs a 2×2 grid of rank processes looping over TP and
// DP all-reduces and world barriers, and kills world rank 3 with SIGKILL:
// every other rank, including rank 0, which shares no group with rank 3,
// must exit non-zero naming rank 3, through the lost connections rather
// than the 30 s per-call timeout. The 60 s context only turns a hang into
// a failure.
func TestKill9GridRank(t *testing.T) {
	const p, victim = 4, 3
	port := freeTestPort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmds := make([]*exec.Cmd, p)
	stderrs := make([]*syncBuffer, p)
	var victimOut *bufio.Scanner
	for r := range p {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"=grid-loop", timeoutEnv+"=30s",
			"RANK="+strconv.Itoa(r), "WORLD_SIZE="+strconv.Itoa(p),
			"MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(port))
		stderrs[r] = &syncBuffer{}
		cmd.Stderr = stderrs[r]
		if r == victim {
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			victimOut = bufio.NewScanner(out)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[r] = cmd
	}
	for victimOut.Scan() && victimOut.Text() != "iter 3" {
	}
	if err := cmds[victim].Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmds[victim].Wait() //nolint:errcheck // killed on purpose
	for r, cmd := range cmds {
		if r == victim {
			continue
		}
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("rank %d: %v, want exit status 1\nstderr: %s", r, err, stderrs[r])
			continue
		}
		if msg := stderrs[r].String(); !strings.Contains(msg, fmt.Sprintf("rank %d lost", victim)) {
			t.Errorf("rank %d's error does not name rank %d: %s", r, victim, msg)
		}
	}
}

// gridLoop is the "grid-loop" helper role: a 2-way TP grid looping over a
// TP all-reduce, a DP all-reduce and a world barrier until a call fails.
func gridLoop(ctx context.Context, c *TCPComm) int {
	tpc, dpc, err := NewGrid(c, 2)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	buf := make([]float32, 1<<16)
	for i := 0; ; i++ {
		for _, step := range []func() error{
			func() error { return tpc.AllReduceSum(ctx, buf) },
			func() error { return dpc.AllReduceSum(ctx, buf) },
			func() error { return c.Barrier(ctx) },
		} {
			if err := step(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		fmt.Printf("iter %d\n", i)
	}
}
