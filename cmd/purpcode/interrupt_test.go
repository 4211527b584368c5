package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"purpcode/engine"
	"purpcode/internal/testref"
	"purpcode/model/qwen2"
	"purpcode/sandbox"
	"purpcode/train"
)

// childArgsEnv carries the command line of TestCLIChild as JSON.
const childArgsEnv = "PURPCODE_TEST_CLI_ARGS"

// TestCLIChild is not a test: the interrupt tests run it as a separate
// `purpcode` process (this test binary, running mainExit) so that they can
// send it real signals.
func TestCLIChild(t *testing.T) {
	raw := os.Getenv(childArgsEnv)
	if raw == "" {
		return
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	os.Exit(mainExit(args, os.Stdout, os.Stderr))
}

// child is a running `purpcode` process.
type child struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer // every line read so far
	lines  *bufio.Scanner
}

func startCLI(t *testing.T, args ...string) *child {
	t.Helper()
	raw, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: exec.Command(os.Args[0], "-test.run=^TestCLIChild$")}
	c.cmd.Env = append(os.Environ(), childArgsEnv+"="+string(raw))
	c.cmd.Stdout = &c.stdout
	pipe, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.cmd.Process.Kill(); c.cmd.Wait() })
	c.lines = bufio.NewScanner(pipe)
	return c
}

// waitLine reads stderr until a line matches re and returns it; it fails
// the test if the process ends first.
func (c *child) waitLine(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	for c.lines.Scan() {
		line := c.lines.Text()
		c.stderr.WriteString(line + "\n")
		if re.MatchString(line) {
			return line
		}
	}
	t.Fatalf("the process ended without a line matching %s; stderr:\n%s", re, c.stderr.String())
	return ""
}

// interrupt sends SIGINT, reads the rest of stderr and returns the exit
// status.
func (c *child) interrupt(t *testing.T) int {
	t.Helper()
	if err := c.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	return c.finish(t)
}

func (c *child) finish(t *testing.T) int {
	t.Helper()
	for c.lines.Scan() {
		c.stderr.WriteString(c.lines.Text() + "\n")
	}
	err := c.cmd.Wait()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return c.cmd.ProcessState.ExitCode()
}

func TestResumeCommand(t *testing.T) {
	got := resumeCommand("run", []string{"--config", "my run.yaml", "--force", "-resume=true", "--out", "runs/x", "--seeds", "2"})
	if want := "purpcode run --config 'my run.yaml' --out runs/x --seeds 2 --resume"; got != want {
		t.Errorf("resumeCommand = %q, want %q", got, want)
	}
}

// writeTinySFT writes a tiny random model and six pre-tokenized rows.
func writeTinySFT(t *testing.T) (model, data string) {
	t.Helper()
	dir := t.TempDir()
	cfg, err := qwen2.ParseConfig([]byte(`{"model_type":"qwen2","hidden_size":16,"intermediate_size":32,"num_hidden_layers":1,
"num_attention_heads":2,"num_key_value_heads":1,"vocab_size":32,"max_position_embeddings":32}`), "tiny")
	if err != nil {
		t.Fatal(err)
	}
	model = filepath.Join(dir, "model")
	if err := qwen2.New(cfg, engine.NewDefaultCPU(engine.CPUOptions{}), 1).Save(model, qwen2.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	var rows []string
	for i := 0; i < 6; i++ {
		rows = append(rows, fmt.Sprintf(`{"input_ids":[1,%d,3,%d,5],"labels":[-100,%d,3,%d,5]}`, i+2, i+6, i+2, i+6))
	}
	data = filepath.Join(dir, "d.jsonl")
	if err := os.WriteFile(data, []byte(strings.Join(rows, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return model, data
}

// TestSFTInterruptNamesTheCheckpoint: Ctrl-C during `purpcode sft` saves
// the step reached, names that checkpoint (read back) and the command that
// resumes, exits 130, and that command finishes the run.
func TestSFTInterruptNamesTheCheckpoint(t *testing.T) {
	model, data := writeTinySFT(t)
	out := filepath.Join(t.TempDir(), "out")
	// Far more steps than run before the signal lands; save only at the
	// end, so the checkpoint named is the one the interrupt wrote.
	args := []string{"sft", "--model", model, "--data", data, "--out", out, "--seq-len", "16", "--micro-batch", "2",
		"--max-steps", "1000000", "--save-every", "0", "--lr", "1e-3"}
	c := startCLI(t, args...)
	c.waitLine(t, regexp.MustCompile(`^sft: 1/1000000 steps`))
	if code := c.interrupt(t); code != 130 {
		t.Fatalf("exit status %d, want 130; stderr:\n%s", code, c.stderr.String())
	}
	ck, ok, err := train.LastIntact(out)
	if err != nil || !ok {
		t.Fatalf("no intact checkpoint after the interrupt (%v); stderr:\n%s", err, c.stderr.String())
	}
	want := fmt.Sprintf("purpcode sft: interrupted; the last intact checkpoint is %s (step %d; its state and weights were read back)\n"+
		"`purpcode sft --model %s --data %s --out %s --seq-len 16 --micro-batch 2 --max-steps 1000000 --save-every 0 --lr 1e-3 --resume` continues\n",
		ck.Dir, ck.Step, model, data, out)
	if !strings.HasSuffix(c.stderr.String(), want) {
		t.Errorf("stderr ends\n%s\nwant\n%s", tail(c.stderr.String(), 3), want)
	}
	if strings.Contains(c.stderr.String(), "context canceled") {
		t.Errorf("stderr reports the cancellation as an error:\n%s", c.stderr.String())
	}
	// The printed command continues from that step (and is interrupted
	// again once it has trained one more).
	r := startCLI(t, append(args, "--resume")...)
	r.waitLine(t, regexp.MustCompile(regexp.QuoteMeta(fmt.Sprintf("resuming from %s (step %d of 1000000", ck.Dir, ck.Step))))
	r.waitLine(t, regexp.MustCompile(fmt.Sprintf(`^sft: %d/1000000 steps`, ck.Step+1)))
	if code := r.interrupt(t); code != 130 {
		t.Fatalf("resumed run: exit status %d, want 130; stderr:\n%s", code, r.stderr.String())
	}
	if ck2, ok, err := train.LastIntact(out); err != nil || !ok || ck2.Step <= ck.Step {
		t.Errorf("after the second interrupt the last checkpoint is %+v (%v, %v), want one past step %d", ck2, ok, err, ck.Step)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestSFTDivergenceTellsTheTruth: with a learning rate that makes the
// loss overflow, the message names the checkpoint that exists (after
// reading it back) or says that none was written — never a checkpoint
// that is not there.
func TestSFTDivergenceTellsTheTruth(t *testing.T) {
	model, data := writeTinySFT(t)
	for _, saveEvery := range []string{"0", "1"} {
		out := filepath.Join(t.TempDir(), "out")
		code, _, stderr := runCLI("sft", "--model", model, "--data", data, "--out", out, "--seq-len", "16", "--micro-batch", "2",
			"--max-steps", "20", "--save-every", saveEvery, "--lr", "1e9", "--schedule", "constant", "--warmup", "0", "--clip", "0")
		if code != 1 || !regexp.MustCompile(`step \d+: (loss|gradient norm) is (NaN|[+-]Inf); stopping`).MatchString(stderr) {
			t.Fatalf("save-every %s: exit %d, want a divergence error; stderr:\n%s", saveEvery, code, stderr)
		}
		ck, ok, err := train.LastIntact(out)
		if err != nil {
			t.Fatal(err)
		}
		want := "no checkpoint was written to " + out
		if ok {
			want = fmt.Sprintf("the last intact checkpoint is %s (step %d;", ck.Dir, ck.Step)
		}
		if !strings.Contains(stderr, want) {
			t.Errorf("save-every %s: stderr %q lacks %q", saveEvery, stderr, want)
		}
		if ok != (saveEvery == "1") {
			t.Errorf("save-every %s: checkpoint found %v", saveEvery, ok)
		}
	}
}

// TestRunInterruptAndResume drives `purpcode run` on the smoke test's
// tiny recipe as a separate process: SIGINT once the SFT stage has logged
// its first step, then `purpcode run --resume` with the printed command.
// It asserts the interrupt message and exit status 130; that the stages
// finished before the interrupt have markers and the interrupted one has
// not; that the resumed run skips the finished stages, continues SFT from
// the checkpoint the interrupt saved, and prints the same final table as
// the uninterrupted run of recipe's TestSmokeRecipe (its golden file; the
// run is seeded and greedy-evaluated, and SFT and GRPO resume bit-exactly).
func TestRunInterruptAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole tiny recipe")
	}
	root, err := testref.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "testdata", "base-model", "model.safetensors")); err != nil {
		t.Skipf("no embedded base model (run `make base-model`): %v", err)
	}
	if _, err := sandbox.New(sandbox.Options{Workers: 1}); err != nil {
		t.Skipf("sandbox unavailable, the recipe needs it for the correctness oracle: %v", err)
	}
	yml, err := os.ReadFile(filepath.Join(root, "recipe", "testdata", "smoke.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile(filepath.Join(root, "recipe", "testdata", "smoke.golden"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "smoke.yaml")
	yml = bytes.Replace(yml, []byte("base_model: ../testdata/base-model"), []byte("base_model: "+filepath.Join(root, "testdata", "base-model")), 1)
	if err := os.WriteFile(cfgPath, yml, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run")

	c := startCLI(t, "run", "--config", cfgPath, "--out", out)
	c.waitLine(t, regexp.MustCompile(`^sft: 1/\d+ steps`))
	if code := c.interrupt(t); code != 130 {
		t.Fatalf("exit status %d, want 130; stderr:\n%s", code, c.stderr.String())
	}
	resume := fmt.Sprintf("purpcode run --config %s --out %s --resume", cfgPath, out)
	if want := "interrupted during sft; `" + resume + "` continues\n"; !strings.HasSuffix(c.stderr.String(), want) {
		t.Fatalf("stderr ends\n%s\nwant\n%s", tail(c.stderr.String(), 3), want)
	}
	for _, stage := range []string{"world", "validation-base", "distill"} {
		if _, err := os.Stat(filepath.Join(out, "done", stage+".json")); err != nil {
			t.Errorf("finished stage %s has no marker: %v", stage, err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "done", "sft.json")); !os.IsNotExist(err) {
		t.Errorf("the interrupted stage has a marker (stat: %v)", err)
	}
	ck, ok, err := train.LastIntact(filepath.Join(out, "sft"))
	if err != nil || !ok {
		t.Fatalf("the interrupt saved no SFT checkpoint (%v)", err)
	}

	args := strings.Fields(resume)[1:]
	r := startCLI(t, args...)
	if code := r.finish(t); code != 0 {
		t.Fatalf("resume: exit %d; stderr:\n%s", code, r.stderr.String())
	}
	log := r.stderr.String()
	t.Logf("interrupted run's stderr:\n%s\nresumed run's stderr:\n%s", c.stderr.String(), log)
	for _, stage := range []string{"world", "validation-base", "distill"} {
		if !strings.Contains(log, stage+": complete (") {
			t.Errorf("the resumed run did not skip %s:\n%s", stage, log)
		}
	}
	if !strings.Contains(log, fmt.Sprintf("resuming from %s (step %d of", ck.Dir, ck.Step)) {
		t.Errorf("the resumed SFT did not continue from %s:\n%s", ck.Dir, log)
	}
	if !strings.Contains(r.stdout.String(), string(golden)) {
		t.Errorf("the resumed run's table differs from the uninterrupted run's (recipe/testdata/smoke.golden):\n--- got\n%s\n--- want\n%s", r.stdout.String(), golden)
	}
}
