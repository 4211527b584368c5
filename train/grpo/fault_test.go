package grpo

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"purpcode/engine"
	"purpcode/train"
	"purpcode/train/faulttest"
)

// TestFaultKillRanksAndResume is must-hold 4 of the many-GPU issue for
// GRPO: TP=2 runs (2 processes, then TP=2 x DP=2 on 4) whose ranks are all
// killed with SIGKILL again and again, each time as one rank reaches a
// randomly drawn point (after a random step, or in the middle of a
// sharded save on one rank), and resumed each time, end with the
// uninterrupted run's metrics (sampled tokens' rewards, losses, KL,
// dynamic-sampling draws: every field but the wall-clock ones, exactly)
// and its checkpoints' shard files byte for byte. After every kill the
// newest complete checkpoint is the one the kill point implies, and the
// half-written save is left only in a hidden staging directory that the
// resumed run removes.
func TestFaultKillRanksAndResume(t *testing.T) {
	modelDir, prompts := writeToyModel(t)
	faulttest.Grids(t, os.Getenv, func(t *testing.T, g faulttest.Grid) {
		dir := t.TempDir()
		cfg := toyConfig(modelDir, prompts, "")
		cfg.Steps, cfg.SaveEvery, cfg.Keep, cfg.Sampling = 8, 2, 2, SamplingSingleStep
		// Short rollouts: under TP every decoded token is a round of
		// collectives, the bulk of the test's time.
		cfg.GroupSize, cfg.MaxResponseLen, cfg.TensorParallel = 4, 12, g.TP
		n := g.N()

		ref := cfg
		ref.Out = filepath.Join(dir, "uninterrupted")
		faulttest.Uninterrupted(t, ref, n)
		wantRows := readMetrics(t, filepath.Join(ref.Out, MetricsFile))
		if len(wantRows) != cfg.Steps {
			t.Fatalf("uninterrupted run logged %d rows, want %d", len(wantRows), cfg.Steps)
		}
		draws := map[int]bool{}
		for _, r := range wantRows {
			draws[r.Drawn] = true
		}
		if len(draws) < 2 {
			t.Fatalf("every step drew the same number of prompts (%v): the test would not see the sampler state", draws)
		}
		for _, r := range wantRows {
			if r.TrainTokens == 0 || r.Loss == 0 {
				t.Fatalf("step %d trained on nothing (%+v): the comparison would mean little", r.Step, r)
			}
		}
		want := stripTiming(wantRows)

		run := cfg
		run.Out, run.Resume = filepath.Join(dir, "killed"), true
		plan := faulttest.PlanKills(g.Seed, int64(cfg.Steps), int64(cfg.SaveEvery), n, g.TP)
		faulttest.Resume(t, run, run.Out, n, g.TP, plan)

		faulttest.SameMetrics(t, stripTiming(readMetrics(t, filepath.Join(run.Out, MetricsFile))), want, len(plan))
		faulttest.CheckResumed(t, run.Out, ref.Out, g.TP)
	})
}

// TestFaultRankProcess is not a test but one rank process of
// TestFaultKillRanksAndResume (faulttest.RunRank): it trains GRPO with
// the any-letter scorer on a two-worker CPU backend.
func TestFaultRankProcess(t *testing.T) {
	faulttest.RunRank(os.LookupEnv, func(cfg Config) int { return cfg.TensorParallel },
		func(ctx context.Context, cfg Config, r faulttest.Rank) error {
			_, err := Run(ctx, cfg, Options{Scorer: anyLetterScorer{}, Backend: engine.NewDefaultCPU(engine.CPUOptions{Workers: 2}),
				TP: r.TP, DP: train.DP{Comm: r.DP}, Hooks: Hooks{AfterLog: r.AfterLog, Save: r.Save}})
			return err
		})
}
