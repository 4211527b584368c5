package recipe

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"purpcode/internal/progress"
)

func testRecipe(t *testing.T, resume bool) *recipe {
	t.Helper()
	cfg := Default()
	cfg.Out = filepath.Join(t.TempDir(), "run")
	if err := prepareDir(cfg, resume); err != nil {
		t.Fatal(err)
	}
	return &recipe{cfg: cfg, opts: Options{Resume: resume}, out: progress.New(nil)}
}

// TestStageMarkers: a stage's marker is written after it succeeds and
// holds its result; a second run of the stage reads the marker instead of
// running; a failed or interrupted stage leaves no marker.
func TestStageMarkers(t *testing.T) {
	r := testRecipe(t, false)
	ctx := context.Background()
	runs := 0
	var got trainMarker
	run := func() error { runs++; got = trainMarker{Checkpoint: "sft/checkpoint-4", Steps: 4}; return nil }
	if err := r.stage(ctx, "sft", &got, run); err != nil {
		t.Fatal(err)
	}
	var again trainMarker
	if err := r.stage(ctx, "sft", &again, run); err != nil {
		t.Fatal(err)
	}
	if runs != 1 || again != (trainMarker{Checkpoint: "sft/checkpoint-4", Steps: 4}) {
		t.Errorf("second call ran the stage (%d runs) or lost its result: %+v", runs, again)
	}

	boom := errors.New("boom")
	var x distillMarker
	if err := r.stage(ctx, "distill", &x, func() error { return boom }); !errors.Is(err, boom) {
		t.Errorf("failed stage returned %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	err := r.stage(cctx, "rl", &x, func() error { cancel(); return cctx.Err() })
	var ie *InterruptedError
	if !errors.As(err, &ie) || ie.Stage != "rl" || !errors.Is(err, context.Canceled) {
		t.Errorf("interrupted stage returned %v, want an InterruptedError for rl", err)
	}
	// A cancelled context stops the next stage before it starts.
	started := false
	if err := r.stage(cctx, "validation-rl", &x, func() error { started = true; return nil }); !errors.As(err, &ie) || ie.Stage != "validation-rl" || started {
		t.Errorf("stage after the interrupt: %v (started %v)", err, started)
	}
	for _, name := range []string{"distill", "rl", "validation-rl"} {
		if _, err := os.Stat(markerPath(r.cfg.Out, name)); !os.IsNotExist(err) {
			t.Errorf("stage %s left a marker (stat: %v)", name, err)
		}
	}
}

// TestResumeNeedsTheSameRun: a new run refuses a used directory; a resume
// refuses a directory of another config or without a recipe run in it.
func TestResumeNeedsTheSameRun(t *testing.T) {
	r := testRecipe(t, false)
	cfg := r.cfg
	if err := prepareDir(cfg, false); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("new run over a used directory: %v", err)
	}
	if err := prepareDir(cfg, true); err != nil {
		t.Errorf("resume with the same config: %v", err)
	}
	if !Resumable(cfg.Out) {
		t.Error("Resumable is false for a started run")
	}
	other := cfg
	other.SFT.LR *= 2
	if err := prepareDir(other, true); err == nil || !strings.Contains(err.Error(), "config differs") {
		t.Errorf("resume with another config: %v", err)
	}
	stray := t.TempDir()
	os.WriteFile(filepath.Join(stray, "notes.txt"), []byte("x"), 0o644)
	other.Out = stray
	if err := prepareDir(other, true); err == nil || !strings.Contains(err.Error(), "no run to resume") {
		t.Errorf("resume in a directory without a run: %v", err)
	}
	other.Out = filepath.Join(t.TempDir(), "absent")
	if err := prepareDir(other, true); err != nil || !Resumable(other.Out) {
		t.Errorf("resume into an absent directory must start a run: %v", err)
	}
}
