package grpo

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"purpcode/engine"
	"purpcode/train"
)

// dpTestCPU is each rank's backend (and the single process's).
func dpTestCPU() engine.Backend { return engine.NewDefaultCPU(engine.CPUOptions{Workers: 2}) }

// runDP runs cfg as a data-parallel group of len(outs) ranks (goroutines
// of this process, connected over loopback TCP); rank r writes to outs[r].
// With stopAt > 0, rank 0 alone is interrupted right after logging that
// step. It returns each rank's result and error.
func runDP(t *testing.T, cfg Config, outs []string, stopAt int64) ([]*Result, []error) {
	t.Helper()
	return runGrid(t, cfg, 1, len(outs), outs, func(w int, o *Options, cancel func()) {
		if w == 0 && stopAt > 0 {
			o.Hooks.AfterLog = func(step int64) {
				if step == stopAt {
					cancel()
				}
			}
		}
	})
}

// TestDataParallelMatchesSingleProcess: two ranks, each rolling out half
// of every step's prompts and training on half of every mini-batch's
// packed rows, end two GRPO steps (two updates each) with the single
// process's weights and metrics; only rank 0 writes metrics and
// checkpoints.
func TestDataParallelMatchesSingleProcess(t *testing.T) {
	modelDir, prompts := writeToyModel(t)
	dir := t.TempDir()
	cfg := toyConfig(modelDir, prompts, "")
	cfg.Steps, cfg.MiniBatches, cfg.SaveEvery = 2, 2, 1
	single := cfg
	single.Out = filepath.Join(dir, "single")
	want, err := Run(context.Background(), single, Options{Scorer: letterScorer{}, Backend: dpTestCPU()})
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
	for _, p := range want.Model.P.List {
		q := got[0].Model.P.Get(p.Name)
		var d, n float64
		for i, v := range p.W.F32 {
			x := float64(q.W.F32[i]) - float64(v)
			d, n = d+x*x, n+float64(v)*float64(v)
		}
		if math.Sqrt(d) > 1e-6*math.Sqrt(n) {
			t.Errorf("%s: relative difference %.3g from the single process", p.Name, math.Sqrt(d/n))
		}
	}
	// Packed rows are the same in both runs and each row's gradient is
	// added exactly (train.GradSum), so the weights agree to the bit.
	if !slices.Equal(got[0].Model.P.Flat, want.Model.P.Flat) {
		t.Error("weights not bit-identical to the single process's")
	}
	if _, err := os.Stat(outs[1]); !os.IsNotExist(err) {
		t.Errorf("rank 1 wrote %s (%v); only rank 0 writes", outs[1], err)
	}
	wantRows, gotRows := readMetrics(t, filepath.Join(single.Out, MetricsFile)), readMetrics(t, filepath.Join(outs[0], MetricsFile))
	if len(gotRows) != len(wantRows) || len(wantRows) != cfg.Steps {
		t.Fatalf("%d metrics rows, single process %d, want %d", len(gotRows), len(wantRows), cfg.Steps)
	}
	for i, w := range wantRows {
		g := gotRows[i]
		if w.TrainTokens == 0 {
			t.Errorf("step %d trained on nothing: the comparison means nothing", w.Step)
		}
		if g.Drawn != w.Drawn || g.UsableGroups != w.UsableGroups || g.TrainedGroups != w.TrainedGroups || g.TrainTokens != w.TrainTokens || g.Reward != w.Reward {
			t.Errorf("step %d: rollouts differ: %+v\nsingle process %+v", w.Step, g, w)
		}
		for _, f := range [][2]float64{{g.Loss, w.Loss}, {g.KL, w.KL}, {g.PGObj, w.PGObj}, {g.Entropy, w.Entropy}, {g.GradNorm, w.GradNorm}, {g.ClipFrac, w.ClipFrac}} {
			if math.Abs(f[0]-f[1]) > 1e-6*math.Abs(f[1]) {
				t.Errorf("step %d: %v, single process %v", w.Step, f[0], f[1])
			}
		}
	}
	for step := int64(1); step <= int64(cfg.Steps); step++ {
		if _, err := os.Stat(train.StepDir(outs[0], step)); err != nil {
			t.Errorf("rank 0's checkpoint at step %d: %v", step, err)
		}
	}
}

// TestDataParallelInterruptAndResume: rank 0 alone is interrupted after
// step 1 of 3; both ranks stop there, rank 0 saves, and the group resumed
// from that checkpoint ends with the single process's weights, bit for bit.
func TestDataParallelInterruptAndResume(t *testing.T) {
	modelDir, prompts := writeToyModel(t)
	dir := t.TempDir()
	cfg := toyConfig(modelDir, prompts, "")
	cfg.Steps, cfg.SaveEvery = 3, 0

	single := cfg
	single.Out = filepath.Join(dir, "single")
	want, err := Run(context.Background(), single, Options{Scorer: letterScorer{}, Backend: dpTestCPU()})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "dp")
	res, errs := runDP(t, cfg, []string{out, out}, 1)
	if !errors.Is(errs[0], context.Canceled) || !errors.Is(errs[1], train.ErrStoppedByPeer) {
		t.Fatalf("interrupted run: rank 0 %v, rank 1 %v; want context canceled and stopped by a peer", errs[0], errs[1])
	}
	if res[0].Checkpoint != train.StepDir(out, 1) {
		t.Fatalf("rank 0's checkpoint %q, want step 1's", res[0].Checkpoint)
	}
	cfg.Resume = true
	res, errs = runDP(t, cfg, []string{out, out}, 0)
	for r, err := range errs {
		if err != nil {
			t.Fatalf("resumed rank %d: %v", r, err)
		}
	}
	if !slices.Equal(res[0].Model.P.Flat, want.Model.P.Flat) || !slices.Equal(res[1].Model.P.Flat, want.Model.P.Flat) {
		t.Error("resumed data-parallel weights differ from the single process's")
	}
	if w, g := readMetrics(t, filepath.Join(single.Out, MetricsFile)), readMetrics(t, filepath.Join(out, MetricsFile)); len(g) != len(w) || g[2].Reward != w[2].Reward || g[2].GradNorm != w[2].GradNorm {
		t.Errorf("resumed metrics differ from the single process's:\n%+v\n%+v", g, w)
	}
}
