package grpo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"purpcode/engine"
	"purpcode/oracle"
	"purpcode/train"
)

// cancellingScorer cancels the run's context at its after-th call, as a
// Ctrl-C in the middle of a step's rollouts would.
type cancellingScorer struct {
	Scorer
	after  int64
	calls  atomic.Int64
	cancel context.CancelFunc
}

func (c *cancellingScorer) Score(ctx context.Context, row oracle.Row) (oracle.Score, error) {
	if c.calls.Add(1) == c.after {
		c.cancel()
		return oracle.Score{}, fmt.Errorf("scorer: %w", context.Canceled)
	}
	return c.Scorer.Score(ctx, row)
}

// TestInterruptMidRolloutResumesExact interrupts a run in the middle of
// step 3's rollouts, with no checkpoint due before the end: the run must
// save the policy of step 2 with step 2's prompt position, and the resumed
// run must log the same metrics and end with the same weights as an
// uninterrupted one.
func TestInterruptMidRolloutResumesExact(t *testing.T) {
	modelDir, prompts := writeToyModel(t)
	dir := t.TempDir()
	ref := toyConfig(modelDir, prompts, filepath.Join(dir, "uninterrupted"))
	ref.Steps, ref.SaveEvery, ref.Sampling = 5, 0, SamplingSingleStep
	cpu := engine.NewDefaultCPU(engine.CPUOptions{Workers: 2})
	if _, err := Run(context.Background(), ref, Options{Scorer: anyLetterScorer{}, Backend: cpu}); err != nil {
		t.Fatal(err)
	}
	want := readMetrics(t, filepath.Join(ref.Out, MetricsFile))
	// The first scoring call of step 3: every sample of steps 1 and 2 is
	// scored once.
	after := int64((want[0].Drawn+want[1].Drawn)*ref.GroupSize) + 1

	cfg := ref
	cfg.Out = filepath.Join(dir, "interrupted")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var starts []int64
	_, err := Run(ctx, cfg, Options{Scorer: &cancellingScorer{Scorer: anyLetterScorer{}, after: after, cancel: cancel}, Backend: cpu,
		OnStart: func(step, total int64) { starts = append(starts, step, total) }})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run returned %v, want context.Canceled", err)
	}
	ck, ok, err := train.LastIntact(cfg.Out)
	if err != nil || !ok || ck.Step != 2 {
		t.Fatalf("last intact checkpoint %+v (found %v, %v), want step 2", ck, ok, err)
	}

	cfg.Resume = true
	rolled := map[int64]int{} // groups reported done per step
	if _, err := Run(context.Background(), cfg, Options{Scorer: anyLetterScorer{}, Backend: cpu,
		OnStart: func(step, total int64) { starts = append(starts, step, total) },
		OnRollout: func(step int64, done, total int) {
			if done != rolled[step]+1 || total != want[step-1].Drawn {
				t.Errorf("step %d: rollout progress %d/%d after %d, want the next of %d", step, done, total, rolled[step], want[step-1].Drawn)
			}
			rolled[step] = done
		}}); err != nil {
		t.Fatal(err)
	}
	if len(rolled) != 3 || rolled[3] != want[2].Drawn || rolled[5] != want[4].Drawn {
		t.Errorf("rollout progress of the resumed steps %v, want steps 3-5 complete", rolled)
	}
	if fmt.Sprint(starts) != "[0 5 2 5]" {
		t.Errorf("OnStart calls (step, total) %v, want [0 5 2 5]", starts)
	}
	got := stripTiming(readMetrics(t, filepath.Join(cfg.Out, MetricsFile)))
	if w := stripTiming(want); strings.Join(got, "\n") != strings.Join(w, "\n") {
		t.Fatalf("resumed metrics differ:\nresumed:\n%s\nuninterrupted:\n%s", strings.Join(got, "\n"), strings.Join(w, "\n"))
	}
	a, err := os.ReadFile(filepath.Join(train.StepDir(ref.Out, 5), "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(train.StepDir(cfg.Out, 5), "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("final weights differ from the uninterrupted run's")
	}
}
