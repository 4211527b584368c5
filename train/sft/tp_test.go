package sft

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"purpcode/dist"
	"purpcode/engine"
	"purpcode/internal/dptest"
	"purpcode/model/qwen2"
	"purpcode/train"
)

// tpTol is the agreement asked of a tensor-parallel run with the unsharded
// one: the shards' partial sums are added in another order than one GEMM
// adds them, so they agree to float32 rounding, not bitwise.
const tpTol = 1e-5

// kBiasTol is tpTol for the k_proj biases after AdamW steps: a bound
// that catches a wrong or missing update (an O(1) difference), not a
// rounding claim. Their gradient is a sum over positions that mostly
// cancels (softmax removes a key bias's position-independent part; only
// what RoPE rotates is left), so its rounding error relative to itself is
// far above other gradients', and Adam, normalising each element by its
// own magnitude, carries that relative error into the update. Measured on
// this test's run: nudging half the starting weights by one ulp moves
// layer 0's k_proj.bias by 1.2e-4 after the 3 steps (every other tensor by
// under 1e-6); TP=2 and 4 move it by at most 4.8e-5, every other tensor by
// under 1e-6 (2.1e-4 in cmd/purpcode's TestLaunchTPSFT).
const kBiasTol = 1e-3

// tpConfig is the TP tests' run: 3 AdamW steps of two micro-batches, with
// clipping active (the tiny model's gradient norm is above 0.5) and an
// evaluation at the end.
func tpConfig(t *testing.T, dir string) Config {
	cfg := tinySetup(t, dir)
	cfg.GradAccum, cfg.MaxSteps, cfg.SaveEvery, cfg.EvalEvery = 2, 3, 0, 3
	cfg.Clip = 0.5
	return cfg
}

// gatherWeights places every rank's slice of each of full's parameters at
// its place in the full shape (split says where: plan's layout); elements
// held by several ranks (norms, KV heads shared by ranks) must be bitwise
// equal on all of them, as every rank applies the same update.
func gatherWeights(t *testing.T, full *qwen2.Model, split qwen2.SplitFunc, ranks []*Result) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for _, p := range full.P.List {
		w := make([]float32, p.W.Numel())
		seen := make([]bool, len(w))
		for r, res := range ranks {
			dim, lo, hi, err := split(p.Name, p.W.Shape, r)
			if err != nil {
				t.Fatal(err)
			}
			src := res.Model.P.Get(p.Name).W.F32
			inner, rows, outer := 1, len(w), 1
			if dim >= 0 {
				inner, rows, outer = engine.Numel(p.W.Shape[dim+1:]), p.W.Shape[dim], engine.Numel(p.W.Shape[:dim])
			} else {
				lo, hi = 0, rows
			}
			run := (hi - lo) * inner
			if len(src) != outer*run {
				t.Fatalf("%s: rank %d holds %d values, its slice [%d, %d) of dimension %d has %d", p.Name, r, len(src), lo, hi, dim, outer*run)
			}
			for o := range outer {
				for k := range run {
					i, v := (o*rows+lo)*inner+k, src[o*run+k]
					if seen[i] && w[i] != v {
						t.Fatalf("%s: element %d differs between the ranks holding it: %g vs %g", p.Name, i, w[i], v)
					}
					w[i], seen[i] = v, true
				}
			}
		}
		if i := slices.Index(seen, false); i >= 0 {
			t.Fatalf("%s: element %d held by no rank", p.Name, i)
		}
		out[p.Name] = w
	}
	return out
}

// compareMetrics requires got's rows to equal want's within tol relative
// on every reproducible field.
func compareMetrics(t *testing.T, got, want []map[string]any, tol float64) (worst float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d metrics rows, reference %d", len(got), len(want))
	}
	for i := range want {
		for _, k := range []string{"step", "epoch", "loss", "lr", "grad_norm", "target_tokens", "tokens", "eval_loss"} {
			w, wok := want[i][k].(float64)
			g, gok := got[i][k].(float64)
			e := math.Abs(g-w) / max(math.Abs(w), 1e-30)
			if wok != gok || e > tol {
				t.Errorf("row %d %s: %v, reference %v", i, k, got[i][k], want[i][k])
			}
			if wok && gok && w != 0 {
				worst = max(worst, e)
			}
		}
	}
	return worst
}

// TestTensorParallelMatchesSingleProcess: TP=2 and TP=4 (the tiny model's
// 2 KV heads then each held by two ranks) end 3 AdamW steps with the
// unsharded run's weights, gathered from the shards, within 1e-5 relative
// on every tensor (the k_proj biases within kBiasTol), and log the same
// loss, gradient norm and eval loss within 1e-5.
func TestTensorParallelMatchesSingleProcess(t *testing.T) {
	dir := t.TempDir()
	cfg := tpConfig(t, dir)
	single := cfg
	single.Out = filepath.Join(dir, "single")
	want, err := Run(context.Background(), single, Options{Backend: testCPU()})
	if err != nil {
		t.Fatal(err)
	}
	wantRows := readMetrics(t, single.Out)
	for _, tp := range []int{2, 4} {
		out := filepath.Join(dir, fmt.Sprintf("tp%d", tp))
		outs := slices.Repeat([]string{out}, tp)
		got, errs := runGrid(t, cfg, tp, 1, outs, 0)
		for r, err := range errs {
			if err != nil {
				t.Fatalf("tp %d rank %d: %v", tp, r, err)
			}
		}
		split, err := train.TPSplit(want.Model.Cfg, tp)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for name, w := range gatherWeights(t, want.Model, split, got) {
			e := relErr(w, want.Model.P.Get(name).W.F32)
			tol := tpTol
			if strings.HasSuffix(name, "k_proj.bias") {
				tol = kBiasTol
			} else {
				worst = max(worst, e)
			}
			if e > tol {
				t.Errorf("tp %d: %s: relative difference %.3g from the single process", tp, name, e)
			}
		}
		mw := compareMetrics(t, readMetrics(t, out), wantRows, tpTol)
		t.Logf("tp %d: largest relative difference after %d steps: weights %.3g (k_proj biases aside), metrics %.3g", tp, cfg.MaxSteps, worst, mw)
	}
}

// TestTensorParallelTimesDataParallel: TP=2 x DP=2 (4 ranks; each replica
// takes one of each step's two micro-batches) ends 3 AdamW steps with the
// weights of TP=2 alone within 1e-6 relative on every tensor, and logs
// its metrics; on the CPU they are bit-identical (the replicas' gradient
// slices are exact sums, see train.GradSum). The replicas hold the same
// shards.
func TestTensorParallelTimesDataParallel(t *testing.T) {
	dir := t.TempDir()
	cfg := tpConfig(t, dir)
	ref := filepath.Join(dir, "tp2")
	want, errs := runGrid(t, cfg, 2, 1, []string{ref, ref}, 0)
	for r, err := range errs {
		if err != nil {
			t.Fatalf("tp 2 rank %d: %v", r, err)
		}
	}
	// ZeRO-1 (optimizer state and master sharded over the two replicas)
	// must not change a bit either.
	for _, zero := range []int{0, 1} {
		c := cfg
		c.ZeRO = zero
		out := filepath.Join(dir, fmt.Sprintf("tp2dp2-zero%d", zero))
		got, errs := runGrid(t, c, 2, 2, slices.Repeat([]string{out}, 4), 0)
		for r, err := range errs {
			if err != nil {
				t.Fatalf("zero %d: tp 2 x dp 2 rank %d: %v", zero, r, err)
			}
		}
		worst := 0.0
		for w, res := range got {
			ref := want[w%2].Model
			for _, p := range ref.P.List {
				e := relErr(res.Model.P.Get(p.Name).W.F32, p.W.F32)
				worst = max(worst, e)
				if e > tpTol {
					t.Errorf("zero %d: rank %d (tp rank %d): %s: relative difference %.3g from tp 2 alone", zero, w, w%2, p.Name, e)
				}
			}
			if !slices.Equal(res.Model.P.Flat, ref.P.Flat) {
				t.Errorf("zero %d: rank %d: shard not bit-identical to tp 2 alone's", zero, w)
			}
		}
		mw := compareMetrics(t, readMetrics(t, out), readMetrics(t, ref), 1e-6)
		t.Logf("zero %d: largest relative difference from tp 2 alone: weights %.3g, metrics %.3g", zero, worst, mw)
	}
}

// TestTensorParallelConfigChecks: tensor_parallel must match the group
// the process is in, and the model must split over it, before anything is
// written.
func TestTensorParallelConfigChecks(t *testing.T) {
	dir := t.TempDir()
	cfg := tpConfig(t, dir)
	cfg.TensorParallel = 2
	if _, err := Run(context.Background(), cfg, Options{Backend: testCPU()}); err == nil || !strings.Contains(err.Error(), "tensor_parallel 2") {
		t.Errorf("tensor_parallel 2 in one process: %v", err)
	}
	// 4 query heads do not split over 3 ranks.
	_, errs := runGrid(t, cfg, 3, 1, slices.Repeat([]string{cfg.Out}, 3), 0)
	for r, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "tensor_parallel 3") {
			t.Errorf("tp 3 rank %d: %v, want the layout refused", r, err)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(cfg.Out, "*")); len(m) > 0 {
		t.Errorf("refused runs wrote %v", m)
	}
}

// TestTensorParallelInterruptAndResume: in a TP=2 x DP=2 run of 5 steps,
// world rank 0 alone is interrupted after step 2; every rank stops there
// (the other three saying a peer stopped them), replica 0's ranks save a
// sharded checkpoint, and the group resumed from it ends with the
// uninterrupted group's shards, bit for bit, and its metrics.
func TestTensorParallelInterruptAndResume(t *testing.T) {
	dir := t.TempDir()
	cfg := tpConfig(t, dir)
	cfg.MaxSteps, cfg.EvalData, cfg.EvalEvery = 5, nil, 0
	ref := filepath.Join(dir, "ref")
	want, errs := runGrid(t, cfg, 2, 2, slices.Repeat([]string{ref}, 4), 0)
	for r, err := range errs {
		if err != nil {
			t.Fatalf("uninterrupted rank %d: %v", r, err)
		}
	}
	out := filepath.Join(dir, "out")
	outs := slices.Repeat([]string{out}, 4)
	res, errs := runGrid(t, cfg, 2, 2, outs, 2)
	if !errors.Is(errs[0], context.Canceled) {
		t.Errorf("rank 0: %v, want context canceled", errs[0])
	}
	for r := 1; r < 4; r++ {
		if !errors.Is(errs[r], train.ErrStoppedByPeer) {
			t.Errorf("rank %d: %v, want stopped by a peer", r, errs[r])
		}
	}
	for r, x := range res {
		if x.Steps != 2 || x.Checkpoint != train.StepDir(out, 2) {
			t.Fatalf("rank %d stopped at step %d with checkpoint %q, want step 2 saved", r, x.Steps, x.Checkpoint)
		}
	}
	if !train.IsSharded(train.StepDir(out, 2)) {
		t.Errorf("%s is not a sharded checkpoint", train.StepDir(out, 2))
	}
	cfg.Resume = true
	res, errs = runGrid(t, cfg, 2, 2, outs, 0)
	for r, err := range errs {
		if err != nil {
			t.Fatalf("resumed rank %d: %v", r, err)
		}
	}
	for r := range res {
		if !slices.Equal(res[r].Model.P.Flat, want[r].Model.P.Flat) {
			t.Errorf("rank %d: resumed shard differs from the uninterrupted run's", r)
		}
	}
	if g, w := stripTiming(t, readMetrics(t, out)), stripTiming(t, readMetrics(t, ref)); !slices.Equal(g, w) {
		t.Errorf("resumed metrics\n%s\nuninterrupted\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
}

// cancelCPU is the CPU backend, cancelling a run's context from inside
// the next SumSquares call once armed: a deterministic interrupt in the
// middle of a step (SumSquares runs in the gradient norm, right before
// its all-reduce over the TP group).
type cancelCPU struct {
	*engine.CPU
	armed  atomic.Bool
	cancel func()
}

func (c *cancelCPU) SumSquares(t *engine.Tensor) float64 {
	if c.armed.CompareAndSwap(true, false) {
		c.cancel()
	}
	return c.CPU.SumSquares(t)
}

// TestTensorParallelInterruptMidStep: an interrupt of one TP rank in the
// middle of step 2 (between its backward and the gradient norm's
// all-reduce) does not break the group's collectives: the step completes
// on both ranks, they agree to stop before step 3, and step 2 is saved,
// equal to the uninterrupted run's shards.
func TestTensorParallelInterruptMidStep(t *testing.T) {
	dir := t.TempDir()
	cfg := tpConfig(t, dir)
	cfg.MaxSteps, cfg.SaveEvery, cfg.EvalData, cfg.EvalEvery = 4, 2, nil, 0
	ref := filepath.Join(dir, "ref")
	want, errs := runGrid(t, cfg, 2, 1, []string{ref, ref}, 0)
	for r, err := range errs {
		if err != nil {
			t.Fatalf("uninterrupted rank %d: %v", r, err)
		}
	}
	out := filepath.Join(dir, "out")
	res, errs := runGridWith(t, cfg, 2, 1, []string{out, out}, 0, func(r dptest.Rank[*dist.TCPComm], o *Options) {
		if r.World != 0 {
			return
		}
		be := &cancelCPU{CPU: testCPU(), cancel: r.Cancel}
		o.Backend = be
		o.Hooks.AfterLog = func(step int64) { be.armed.Store(step == 1) }
	})
	if !errors.Is(errs[0], context.Canceled) || !errors.Is(errs[1], train.ErrStoppedByPeer) {
		t.Fatalf("rank 0: %v; rank 1: %v; want context canceled and stopped by a peer", errs[0], errs[1])
	}
	for r, x := range res {
		if x.Steps != 2 || x.Checkpoint != train.StepDir(out, 2) {
			t.Fatalf("rank %d stopped at step %d with checkpoint %q, want step 2 saved", r, x.Steps, x.Checkpoint)
		}
	}
	cfg.Resume = true
	res, errs = runGrid(t, cfg, 2, 1, []string{out, out}, 0)
	for r, err := range errs {
		if err != nil {
			t.Fatalf("resumed rank %d: %v", r, err)
		}
		if !slices.Equal(res[r].Model.P.Flat, want[r].Model.P.Flat) {
			t.Errorf("rank %d: resumed shard differs from the uninterrupted run's", r)
		}
	}
}
