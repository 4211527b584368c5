package sft

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"purpcode/internal/crashtest"
	"purpcode/model/qwen2"
	"purpcode/train"
)

// TestHelperProcess is not a test: run as a subprocess by the resume tests,
// it trains with the config the parent passed and blocks at the requested
// kill point until the parent kills it with SIGKILL.
func TestHelperProcess(t *testing.T) {
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
	if _, err := Run(context.Background(), cfg, Options{Backend: testCPU(), Hooks: Hooks{AfterLog: afterLog, Save: save}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runHelper trains in a subprocess, killed with SIGKILL at the kill point
// env names (if any).
func runHelper(t *testing.T, cfg Config, env ...string) bool {
	t.Helper()
	return crashtest.Run(t, "TestHelperProcess", cfg, env...)
}

// TestKillAndResumeBitExact kills training with SIGKILL at several points,
// including twice in the middle of a checkpoint save, resumes each time,
// and requires the final metrics (all non-timing fields) and weights to
// equal an uninterrupted run's bit for bit.
func TestKillAndResumeBitExact(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns subprocesses")
	}
	dir := t.TempDir()
	base := tinySetup(t, dir)

	ref := base
	ref.Out = filepath.Join(dir, "uninterrupted")
	res, err := Run(context.Background(), ref, Options{Backend: testCPU()})
	if err != nil {
		t.Fatal(err)
	}
	total := res.Steps
	if total < 14 || base.SaveEvery != 3 {
		t.Fatalf("uninterrupted run took %d steps saving every %d; the kill points below assume >= 14 and 3", total, base.SaveEvery)
	}
	want := stripTiming(t, readMetrics(t, ref.Out))

	// A random extra kill point, logged so a failure can be replayed.
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	randomStep := 10 + rnd.IntN(int(total)-10)
	t.Logf("random kill after step %d", randomStep)
	cfg := base
	cfg.Resume = true
	steps := []struct {
		env     string
		resumed int64 // newest checkpoint after the kill
	}{
		{crashtest.AfterStep + "=2", -1},     // before any checkpoint
		{crashtest.AfterStep + "=5", 3},      // between checkpoints
		{crashtest.InSave + "=6:model", 3},   // model files written, no state yet
		{crashtest.InSave + "=9:state", 6},   // complete in staging, not yet renamed
		{crashtest.InSave + "=9:renamed", 9}, // visible, old one not yet pruned
		{crashtest.AfterStep + "=" + strconv.Itoa(randomStep), int64((randomStep - 1) / 3 * 3)}, // random late step (killed before that step's save)
	}
	for _, s := range steps {
		runHelper(t, cfg, s.env)
		ck, ok, err := train.Latest(cfg.Out)
		if err != nil {
			t.Fatal(err)
		}
		got := int64(-1)
		if ok {
			got = ck.Step
			// The newest checkpoint must be usable after any crash.
			if _, err := qwen2.Load(ck.Dir, testCPU()); err != nil {
				t.Fatalf("after kill %s: newest checkpoint unusable: %v", s.env, err)
			}
		}
		if got != s.resumed {
			t.Errorf("after kill %s: newest checkpoint is step %d, want %d", s.env, got, s.resumed)
		}
	}
	runHelper(t, cfg) // to the end

	got := stripTiming(t, readMetrics(t, cfg.Out))
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("resumed metrics differ from the uninterrupted run:\nresumed:\n%s\nuninterrupted:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	a, err := qwen2.Load(train.StepDir(ref.Out, total), testCPU())
	if err != nil {
		t.Fatal(err)
	}
	b, err := qwen2.Load(train.StepDir(cfg.Out, total), testCPU())
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.P.Flat {
		if math.Float32bits(a.P.Flat[i]) != math.Float32bits(b.P.Flat[i]) {
			t.Fatalf("final weights differ at flat index %d: %v vs %v", i, a.P.Flat[i], b.P.Flat[i])
		}
	}
	cks, _ := train.List(cfg.Out)
	if lastEvery := total - 1 - (total-1)%3; len(cks) != 2 || cks[0].Step != lastEvery || cks[1].Step != total {
		t.Errorf("keep=2 left checkpoints %v, want steps %d and %d", cks, lastEvery, total)
	}
	entries, _ := os.ReadDir(cfg.Out)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("leftover %s in the output dir", e.Name())
		}
	}
}
