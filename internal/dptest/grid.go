package dptest

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"testing"
	"time"
)

// Timeout is each collective's deadline in the groups Grid connects: long
// enough for a loaded test machine, short enough that a rank stuck in a
// collective fails the test instead of hanging it.
const Timeout = 30 * time.Second

// Rank is one rank's place in a Grid run.
type Rank[C any] struct {
	// World is the rank's number, TP-innermost: World = DPRank*TPSize +
	// TPRank (train.Group's numbering).
	World, TPRank, DPRank int
	TPSize, DPSize        int
	// TP and DP are the rank's groups: the TPSize ranks of its replica and
	// the DPSize ranks with its TPRank. A dimension of size 1 still gets a
	// (one-rank) group, so that neither is ever a nil pointer in an
	// interface; the caller passes nil to the trainer where it wants none.
	TP, DP C
	// Cancel cancels the context this rank's run received (e.g. from a
	// hook, to interrupt one rank alone).
	Cancel context.CancelFunc
}

// Connector forms a group of n ranks: dist.ConnectLocal.
type Connector[C any] func(ctx context.Context, n int, timeout time.Duration) ([]C, error)

// Grid runs run once per rank of a tp×dp world, each in its own goroutine,
// and returns the ranks' results and errors in world order once all have
// returned. Every rank's communicators are closed when its run returns,
// so that its peers' pending collectives fail rather than wait out the
// timeout. A rank that panics fails with the panic and its stack as its
// error.
func Grid[C interface{ Close() error }, R any](t testing.TB, connect Connector[C], tp, dp int, run func(ctx context.Context, r Rank[C]) (R, error)) ([]R, []error) {
	t.Helper()
	if tp < 1 || dp < 1 {
		t.Fatalf("dptest: grid of tp %d x dp %d", tp, dp)
	}
	n := tp * dp
	ranks := make([]Rank[C], n)
	for w := range ranks {
		ranks[w] = Rank[C]{World: w, TPRank: w % tp, DPRank: w / tp, TPSize: tp, DPSize: dp}
	}
	var all []C
	closeAll := func() {
		for _, c := range all {
			c.Close()
		}
	}
	// One TP group per replica, one DP group per TP rank.
	for d := range dp {
		cs, err := connect(context.Background(), tp, Timeout)
		if err != nil {
			closeAll()
			t.Fatalf("dptest: tensor-parallel group of replica %d: %v", d, err)
		}
		all = append(all, cs...)
		for r, c := range cs {
			ranks[d*tp+r].TP = c
		}
	}
	for r := range tp {
		cs, err := connect(context.Background(), dp, Timeout)
		if err != nil {
			closeAll()
			t.Fatalf("dptest: data-parallel group of TP rank %d: %v", r, err)
		}
		all = append(all, cs...)
		for d, c := range cs {
			ranks[d*tp+r].DP = c
		}
	}
	res := make([]R, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for w := range ranks {
		ctx, cancel := context.WithCancel(context.Background())
		ranks[w].Cancel = cancel
		wg.Go(func() {
			defer cancel()
			defer ranks[w].DP.Close()
			defer ranks[w].TP.Close()
			defer func() {
				// A panicking rank would take the test binary down with
				// its peers blocked; report it as the rank's error.
				if p := recover(); p != nil {
					errs[w] = fmt.Errorf("dptest: rank %d panicked: %v\n%s", w, p, debug.Stack())
				}
			}()
			res[w], errs[w] = run(ctx, ranks[w])
		})
	}
	wg.Wait()
	return res, errs
}
