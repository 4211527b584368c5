package sft

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"purpcode/model/qwen2"
	"purpcode/train"
)

// Environment of the helper subprocess (the standard re-exec pattern).
const (
	helperEnv   = "PURPCODE_SFT_TEST_HELPER" // JSON Config
	killStepEnv = "PURPCODE_SFT_TEST_BLOCK_AFTER_STEP"
	killSaveEnv = "PURPCODE_SFT_TEST_BLOCK_IN_SAVE" // "STEP:STAGE"
	blockedMsg  = "HELPER-BLOCKED"
)

// TestHelperProcess is not a test: run as a subprocess by the resume tests,
// it trains with the config in its environment and, at the requested
// point, announces itself on stdout and blocks until the parent kills it
// with SIGKILL.
func TestHelperProcess(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		return
	}
	var cfg Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	block := func() {
		fmt.Println(blockedMsg)
		os.Stdout.Sync()
		select {} // wait for SIGKILL
	}
	var h Hooks
	if s := os.Getenv(killStepEnv); s != "" {
		k, _ := strconv.ParseInt(s, 10, 64)
		h.AfterLog = func(step int64) {
			if step == k {
				block()
			}
		}
	}
	if s := os.Getenv(killSaveEnv); s != "" {
		parts := strings.SplitN(s, ":", 2)
		k, _ := strconv.ParseInt(parts[0], 10, 64)
		var saving int64
		prev := h.AfterLog
		h.AfterLog = func(step int64) {
			saving = step
			if prev != nil {
				prev(step)
			}
		}
		h.Save = func(stage string) {
			if saving == k && stage == parts[1] {
				block()
			}
		}
	}
	_, err := Run(context.Background(), cfg, Options{CPU: testCPU(), Hooks: h})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runHelper trains in a subprocess; with a kill point it waits for the
// helper to block there and kills it with SIGKILL (kill -9). It reports
// whether the process was killed.
func runHelper(t *testing.T, cfg Config, env ...string) bool {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(raw))
	cmd.Env = append(cmd.Env, env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	killed := false
	for sc.Scan() {
		if sc.Text() == blockedMsg {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
			break
		}
	}
	err = cmd.Wait()
	if !killed && err != nil {
		t.Fatalf("helper failed: %v\n%s", err, stderr.String())
	}
	if len(env) > 0 && !killed {
		t.Fatalf("helper with %v finished without reaching its kill point", env)
	}
	return killed
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
	res, err := Run(context.Background(), ref, Options{CPU: testCPU()})
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
		{killStepEnv + "=2", -1},        // before any checkpoint
		{killStepEnv + "=5", 3},         // between checkpoints
		{killSaveEnv + "=6:model", 3},   // model files written, no state yet
		{killSaveEnv + "=9:state", 6},   // complete in staging, not yet renamed
		{killSaveEnv + "=9:renamed", 9}, // visible, old one not yet pruned
		{killStepEnv + "=" + strconv.Itoa(randomStep), int64((randomStep - 1) / 3 * 3)}, // random late step (killed before that step's save)
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
