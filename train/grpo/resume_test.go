package grpo

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"purpcode/engine"
	"purpcode/internal/crashtest"
	"purpcode/model/qwen2"
	"purpcode/oracle"
	"purpcode/train"
)

// TestCrashChild is not a test: the resume test runs it as a subprocess
// that trains and blocks at the requested kill point.
func TestCrashChild(t *testing.T) {
	raw, ok := crashtest.Config()
	if !ok {
		return
	}
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	afterLog, save := crashtest.Hooks()
	_, err := Run(context.Background(), cfg, Options{Scorer: anyLetterScorer{}, Backend: engine.NewDefaultCPU(engine.CPUOptions{Workers: 2}),
		Hooks: Hooks{AfterLog: afterLog, Save: save}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// anyLetterScorer gives 1 when the response has at least three 'a': a
// binary reward, so some groups have no variance and the dynamic sampler's
// carried fraction changes the draw sizes that must survive a resume.
type anyLetterScorer struct{}

func (anyLetterScorer) Score(_ context.Context, row oracle.Row) (oracle.Score, error) {
	r := 0.0
	if strings.Count(row.Response, "a") >= 3 {
		r = 1
	}
	return oracle.Score{ID: row.ID, Reward: r, OracleScore: r, Format: true, OracleRan: true}, nil
}

// stripTiming drops the wall-clock fields of metrics rows.
func stripTiming(rows []Metrics) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		r.RolloutS, r.ScoreWaitS, r.UpdateS, r.TokensPerS, r.ElapsedS = 0, 0, 0, 0, 0
		b, _ := json.Marshal(r)
		out[i] = string(b)
	}
	return out
}

// TestKillAndResumeExact kills a GRPO run with SIGKILL after steps and in
// the middle of a checkpoint save, resumes each time, and requires the
// metrics (sampled tokens, rewards, losses, dynamic-sampling state) and the
// final weights to equal an uninterrupted run's exactly.
func TestKillAndResumeExact(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns subprocesses")
	}
	modelDir, prompts := writeToyModel(t)
	dir := t.TempDir()
	ref := toyConfig(modelDir, prompts, filepath.Join(dir, "uninterrupted"))
	ref.Steps, ref.SaveEvery, ref.Sampling = 9, 3, SamplingSingleStep
	if _, err := Run(context.Background(), ref, Options{Scorer: anyLetterScorer{}, Backend: engine.NewDefaultCPU(engine.CPUOptions{Workers: 2})}); err != nil {
		t.Fatal(err)
	}
	want := stripTiming(readMetrics(t, filepath.Join(ref.Out, MetricsFile)))
	draws := map[int]bool{}
	for _, r := range readMetrics(t, filepath.Join(ref.Out, MetricsFile)) {
		draws[r.Drawn] = true
	}
	if len(draws) < 2 {
		t.Fatalf("every step drew the same number of prompts (%v): the test would not see the sampler state", draws)
	}

	cfg := ref
	cfg.Out, cfg.Resume = filepath.Join(dir, "killed"), true
	for _, env := range []string{
		crashtest.AfterStep + "=2", // before any checkpoint
		crashtest.AfterStep + "=4", // between checkpoints
		crashtest.InSave + "=6:state",
		crashtest.AfterStep + "=8",
	} {
		crashtest.Run(t, "TestCrashChild", cfg, env)
		if ck, ok, err := train.Latest(cfg.Out); err != nil {
			t.Fatal(err)
		} else if ok {
			if _, err := qwen2.Load(ck.Dir, engine.NewDefaultCPU(engine.CPUOptions{})); err != nil {
				t.Fatalf("after %s: newest checkpoint unusable: %v", env, err)
			}
		}
	}
	crashtest.Run(t, "TestCrashChild", cfg)
	got := stripTiming(readMetrics(t, filepath.Join(cfg.Out, MetricsFile)))
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("resumed metrics differ:\nresumed:\n%s\nuninterrupted:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	a, err := qwen2.Load(train.StepDir(ref.Out, int64(ref.Steps)), engine.NewDefaultCPU(engine.CPUOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := qwen2.Load(train.StepDir(cfg.Out, int64(cfg.Steps)), engine.NewDefaultCPU(engine.CPUOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.P.Flat {
		if math.Float32bits(a.P.Flat[i]) != math.Float32bits(b.P.Flat[i]) {
			t.Fatalf("final weights differ at %d", i)
		}
	}
}
