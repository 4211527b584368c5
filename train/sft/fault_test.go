package sft

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"purpcode/train"
	"purpcode/train/faulttest"
)

// TestFaultKillRanksAndResume is must-hold 4 of the many-GPU issue for
// SFT: a TP=2 run (2 processes) and a TP=2 x DP=2 run (4) whose ranks are
// all killed with SIGKILL again and again, each time as one rank reaches a
// randomly drawn point (after a random step, or in the middle of a
// sharded save on one rank), and resumed each time, end with the
// uninterrupted run's metrics.jsonl (every field but the wall-clock ones,
// exactly: JSON keeps a float64's bits) and its checkpoints' shard files
// byte for byte. After every kill the newest complete checkpoint is the
// one the kill point implies, and the half-written save is left only in a
// hidden staging directory that the resumed run removes.
func TestFaultKillRanksAndResume(t *testing.T) {
	faulttest.Grids(t, os.Getenv, func(t *testing.T, g faulttest.Grid) {
		dir := t.TempDir()
		cfg := tinySetup(t, dir)
		// Clipping active and an evaluation every 4 steps: the run
		// uses every collective a step has.
		cfg.GradAccum, cfg.MaxSteps, cfg.SaveEvery, cfg.Keep, cfg.EvalEvery = 2, 18, 3, 2, 4
		cfg.Clip, cfg.TensorParallel = 0.5, g.TP
		n := g.N()

		ref := cfg
		ref.Out = filepath.Join(dir, "uninterrupted")
		faulttest.Uninterrupted(t, ref, n)
		want := stripTiming(t, readMetrics(t, ref.Out))
		if len(want) != cfg.MaxSteps+1 {
			t.Fatalf("uninterrupted run logged %d rows, want %d steps and the data row", len(want), cfg.MaxSteps)
		}

		run := cfg
		run.Out, run.Resume = filepath.Join(dir, "killed"), true
		plan := faulttest.PlanKills(g.Seed, int64(cfg.MaxSteps), int64(cfg.SaveEvery), n, g.TP)
		faulttest.Resume(t, run, run.Out, n, g.TP, plan)

		faulttest.SameMetrics(t, stripTiming(t, readMetrics(t, run.Out)), want, len(plan))
		faulttest.CheckResumed(t, run.Out, ref.Out, g.TP)
	})
}

// TestFaultRankProcess is not a test but one rank process of
// TestFaultKillRanksAndResume (faulttest.RunRank): it trains SFT on the
// test CPU backend.
func TestFaultRankProcess(t *testing.T) {
	faulttest.RunRank(os.LookupEnv, func(cfg Config) int { return cfg.TensorParallel },
		func(ctx context.Context, cfg Config, r faulttest.Rank) error {
			_, err := Run(ctx, cfg, Options{Backend: testCPU(), TP: r.TP, DP: train.DP{Comm: r.DP},
				Hooks: Hooks{AfterLog: r.AfterLog, Save: r.Save}})
			return err
		})
}
