package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"purpcode/engine"
	"purpcode/internal/testref"
	"purpcode/model/qwen2"
	"purpcode/train"
)

// readMetricsRows parses a metrics.jsonl.
func readMetricsRows(t *testing.T, out string) []map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	return rows
}

// launchMatchesSingle runs the command line args (a trainer writing to
// --out) as one process and as `purpcode launch --nproc-per-node 2 -- args`
// (this test binary as the program, see TestLaunch), and requires the
// metrics named by keys and the final checkpoint's weights (step last) to
// agree within 1e-6 relative, and each rank's log to name its rank.
func launchMatchesSingle(t *testing.T, args []string, keys []string, last int64) {
	dir := t.TempDir()
	single, out, logDir := filepath.Join(dir, "single"), filepath.Join(dir, "dp"), filepath.Join(dir, "logs")
	var stdout, stderr bytes.Buffer
	if code := mainExit(append(args, "--out", single), &stdout, &stderr); code != 0 {
		t.Fatalf("single process: exit %d\n%s", code, &stderr)
	}
	raw, err := json.Marshal(append(args, "--out", out))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(childArgsEnv, string(raw))
	stdout.Reset()
	stderr.Reset()
	if code := mainExit([]string{"launch", "--nproc-per-node", "2", "--master-port", "0", "--log-dir", logDir, "--", "-test.run=^TestCLIChild$"}, &stdout, &stderr); code != 0 {
		t.Fatalf("launch: exit %d\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}

	want, got := readMetricsRows(t, single), readMetricsRows(t, out)
	if len(got) != len(want) {
		t.Fatalf("%d metrics rows, single process %d", len(got), len(want))
	}
	for i := range want {
		for _, k := range keys {
			w, wok := want[i][k].(float64)
			g, gok := got[i][k].(float64)
			if wok != gok || math.Abs(g-w) > 1e-6*math.Abs(w) {
				t.Errorf("row %d %s: %v, single process %v", i, k, got[i][k], want[i][k])
			}
		}
	}
	cpu := engine.NewDefaultCPU(engine.CPUOptions{Workers: 1})
	ms, err := qwen2.Load(train.StepDir(single, last), cpu)
	if err != nil {
		t.Fatal(err)
	}
	md, err := qwen2.Load(train.StepDir(out, last), cpu)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ms.P.List {
		q := md.P.Get(p.Name)
		var d, n float64
		for i, v := range p.W.F32 {
			x := float64(q.W.F32[i]) - float64(v)
			d, n = d+x*x, n+float64(v)*float64(v)
		}
		if math.Sqrt(d) > 1e-6*math.Sqrt(n) {
			t.Errorf("%s: relative difference %.3g", p.Name, math.Sqrt(d/n))
		}
	}
	for r := range 2 {
		log, err := os.ReadFile(filepath.Join(logDir, fmt.Sprintf("rank-%d.log", r)))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(log), fmt.Sprintf("rank %d of 2", r)) {
			t.Errorf("rank %d's log does not say which rank it is:\n%s", r, log)
		}
	}
}

// TestLaunchDPSFT: `purpcode launch --nproc-per-node 2 -- sft --config
// run.yaml` (two micro-batches per rank and step, one each in the epoch's
// short last step) matches the single process.
func TestLaunchDPSFT(t *testing.T) {
	model, data := writeTinySFT(t)
	yml := filepath.Join(t.TempDir(), "run.yaml")
	os.WriteFile(yml, []byte(fmt.Sprintf("model: %s\ndata: [%s]\nseq_len: 8\nmicro_batch: 1\ngrad_accum: 4\nmax_steps: 3\nlr: 0.01\nwarmup: 1\nsave_every: 2\n", model, data)), 0o644)
	launchMatchesSingle(t, []string{"sft", "--config", yml, "--threads", "1"},
		[]string{"step", "epoch", "loss", "lr", "grad_norm", "target_tokens", "tokens"}, 3)
}

// TestLaunchDPRL: `purpcode launch --nproc-per-node 2 -- rl --config
// run.yaml` on the embedded base model (each rank rolls out two of the
// four prompts) matches the single process.
func TestLaunchDPRL(t *testing.T) {
	root, err := testref.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	prompts := filepath.Join(dir, "prompts.jsonl")
	var b strings.Builder
	for i, p := range []string{"Write a function that adds two numbers.", "How do I read a file?", "Say hello.", "What is a list?"} {
		fmt.Fprintf(&b, `{"id":"p%d","prompt":%q,"oracle":"noreject"}`+"\n", i, p)
	}
	os.WriteFile(prompts, []byte(b.String()), 0o644)
	yml := filepath.Join(dir, "run.yaml")
	os.WriteFile(yml, []byte(fmt.Sprintf("model: %s\ndata: [%s]\nsteps: 2\nprompts_per_step: 4\ngroup_size: 4\nsampling: none\n"+
		"max_prompt_len: 64\nmax_response_len: 8\nprefix: \"\"\nlr: 0.001\nkl_coef: 0.01\nentropy_coef: 0.01\nsave_every: 1\nseed: 3\n",
		filepath.Join(root, "testdata", "base-model"), prompts)), 0o644)
	launchMatchesSingle(t, []string{"rl", "--config", yml, "--threads", "1"},
		[]string{"step", "lr", "drawn", "trained_groups", "reward", "response_len", "train_tokens", "loss", "pg_obj", "kl", "entropy", "grad_norm"}, 2)
}
