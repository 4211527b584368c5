package sft

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"purpcode/dist"
	"purpcode/internal/dptest"
	"purpcode/train"
)

// runDP runs cfg as a data-parallel group of len(outs) ranks (goroutines
// of this process, connected over loopback TCP); rank r writes to outs[r].
// With stopAt > 0, rank 0 alone is interrupted right after logging that
// step. It returns each rank's result and error.
func runDP(t *testing.T, cfg Config, outs []string, stopAt int64) ([]*Result, []error) {
	t.Helper()
	return runGrid(t, cfg, 1, len(outs), outs, stopAt)
}

// runGrid runs cfg on a tp×dp world of ranks (see dptest.Grid), world
// rank w writing to outs[w]; with stopAt > 0, world rank 0 alone is
// interrupted right after logging that step.
func runGrid(t *testing.T, cfg Config, tp, dp int, outs []string, stopAt int64) ([]*Result, []error) {
	t.Helper()
	return runGridWith(t, cfg, tp, dp, outs, stopAt, nil)
}

// runGridWith is runGrid with mod, when not nil, adjusting each rank's
// options before it runs.
func runGridWith(t *testing.T, cfg Config, tp, dp int, outs []string, stopAt int64, mod func(r dptest.Rank[*dist.TCPComm], o *Options)) ([]*Result, []error) {
	t.Helper()
	return dptest.Grid(t, dist.ConnectLocal, tp, dp, func(ctx context.Context, r dptest.Rank[*dist.TCPComm]) (*Result, error) {
		c := cfg
		c.Out, c.TensorParallel = outs[r.World], tp
		opts := Options{Backend: testCPU()}
		if dp > 1 {
			opts.DP = train.DP{Comm: r.DP}
		}
		if tp > 1 {
			opts.TP = r.TP
		}
		if r.World == 0 && stopAt > 0 {
			opts.Hooks.AfterLog = func(step int64) {
				if step == stopAt {
					r.Cancel()
				}
			}
		}
		if mod != nil {
			mod(r, &opts)
		}
		return Run(ctx, c, opts)
	})
}

// TestDataParallelMatchesSingleProcess: two ranks taking half of each
// step's micro-batches (grad_accum 4, so two each, with a short last step
// at the epoch's end) end 3 AdamW steps with the single process's weights
// within 1e-6 relative on every tensor and its metrics within the same
// tolerance; the ranks hold bit-identical weights (the gradient sums are
// the same bits on every rank), and only rank 0 writes metrics and
// checkpoints.
func TestDataParallelMatchesSingleProcess(t *testing.T) {
	dir := t.TempDir()
	cfg := tinySetup(t, dir)
	cfg.GradAccum, cfg.MaxSteps, cfg.SaveEvery, cfg.EvalEvery = 4, 3, 2, 2

	single := cfg
	single.Out = filepath.Join(dir, "single")
	want, err := Run(context.Background(), single, Options{Backend: testCPU()})
	if err != nil {
		t.Fatal(err)
	}
	outs := []string{filepath.Join(dir, "rank0"), filepath.Join(dir, "rank1")}
	got, errs := runDP(t, cfg, outs, 0)
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}

	if !slices.Equal(got[0].Model.P.Flat, got[1].Model.P.Flat) {
		t.Error("the ranks' weights differ")
	}
	worst := 0.0
	for _, p := range want.Model.P.List {
		q := got[0].Model.P.Get(p.Name)
		e := relErr(q.W.F32, p.W.F32)
		worst = max(worst, e)
		if e > 1e-6 {
			t.Errorf("%s: relative difference %.3g from the single process", p.Name, e)
		}
	}
	t.Logf("largest relative weight difference after %d steps: %.3g", cfg.MaxSteps, worst)
	// On the CPU the step's gradient is an exact sum rounded once, so the
	// grouping of micro-batches over ranks does not change a bit.
	if !slices.Equal(got[0].Model.P.Flat, want.Model.P.Flat) {
		t.Errorf("weights not bit-identical to the single process's (largest relative difference %.3g)", worst)
	}

	if _, err := os.Stat(outs[1]); !os.IsNotExist(err) {
		t.Errorf("rank 1 wrote %s (%v); only rank 0 writes", outs[1], err)
	}
	wantRows, gotRows := readMetrics(t, single.Out), readMetrics(t, outs[0])
	if len(gotRows) != len(wantRows) {
		t.Fatalf("%d metrics rows, single process %d", len(gotRows), len(wantRows))
	}
	for i := range wantRows {
		for _, k := range []string{"step", "epoch", "loss", "lr", "grad_norm", "target_tokens", "tokens", "eval_loss"} {
			w, wok := wantRows[i][k].(float64)
			g, gok := gotRows[i][k].(float64)
			if wok != gok || math.Abs(g-w) > 1e-6*math.Abs(w) {
				t.Errorf("row %d %s: %v, single process %v", i, k, gotRows[i][k], wantRows[i][k])
			}
		}
	}
	for _, step := range []int64{2, 3} {
		if _, err := os.Stat(train.StepDir(outs[0], step)); err != nil {
			t.Errorf("rank 0's checkpoint at step %d: %v", step, err)
		}
	}
}

// TestDataParallelInterruptAndResume: rank 0 alone is interrupted after
// step 2 of 5; both ranks stop there (rank 1 saying a peer stopped it),
// rank 0 saves, and the group resumed from that checkpoint ends with the
// single process's weights, bit for bit, and its metrics.
func TestDataParallelInterruptAndResume(t *testing.T) {
	// With ZeRO-1 the interrupt's save first gathers the sharded optimizer
	// state: that collective must not see the cancelled context either.
	for _, zero := range []int{0, 1} {
		t.Run(fmt.Sprintf("zero%d", zero), func(t *testing.T) { testDataParallelInterruptAndResume(t, zero) })
	}
}

func testDataParallelInterruptAndResume(t *testing.T, zero int) {
	dir := t.TempDir()
	cfg := tinySetup(t, dir)
	cfg.GradAccum, cfg.MaxSteps, cfg.SaveEvery, cfg.EvalEvery = 3, 5, 0, 0
	cfg.EvalData = nil
	cfg.ZeRO = zero

	single := cfg
	single.Out = filepath.Join(dir, "single")
	want, err := Run(context.Background(), single, Options{Backend: testCPU()})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "dp")
	outs := []string{out, out}
	res, errs := runDP(t, cfg, outs, 2)
	if !errors.Is(errs[0], context.Canceled) || !errors.Is(errs[1], train.ErrStoppedByPeer) {
		t.Fatalf("interrupted run: rank 0 %v, rank 1 %v; want context canceled and stopped by a peer", errs[0], errs[1])
	}
	if res[0].Steps != 2 || res[0].Checkpoint != train.StepDir(out, 2) {
		t.Fatalf("rank 0 stopped at step %d with checkpoint %q, want step 2 saved", res[0].Steps, res[0].Checkpoint)
	}
	cfg.Resume = true
	res, errs = runDP(t, cfg, outs, 0)
	for r, err := range errs {
		if err != nil {
			t.Fatalf("resumed rank %d: %v", r, err)
		}
	}
	if !slices.Equal(res[0].Model.P.Flat, want.Model.P.Flat) || !slices.Equal(res[1].Model.P.Flat, want.Model.P.Flat) {
		t.Error("resumed data-parallel weights differ from the single process's")
	}
	w, g := readMetrics(t, single.Out), readMetrics(t, out)
	if len(g) != len(w) {
		t.Fatalf("%d metrics rows, single process %d", len(g), len(w))
	}
	for i := range w {
		for _, k := range []string{"step", "grad_norm", "target_tokens"} {
			if g[i][k] != w[i][k] {
				t.Errorf("row %d %s: %v, single process %v", i, k, g[i][k], w[i][k])
			}
		}
		if wl, ok := w[i]["loss"].(float64); ok && math.Abs(g[i]["loss"].(float64)-wl) > 1e-12*math.Abs(wl) {
			t.Errorf("row %d loss: %v, single process %v", i, g[i]["loss"], wl)
		}
	}
}
