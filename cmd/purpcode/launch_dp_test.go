package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"purpcode/checkpoint"
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
// --out) as one process and as `purpcode launch --nproc-per-node 2 -- args
// extra` (this test binary as the program, see TestLaunch), and requires
// the metrics named by keys and the final checkpoint's weights (step last;
// assembled from its shards when sharded) to agree within tol relative
// (the k_proj biases within kBiasTol when tol is looser than 1e-6: see
// there), and each rank's log to name its rank.
// It returns the launched run's output directory.
func launchMatchesSingle(t *testing.T, args, extra []string, keys []string, last int64, tol float64) string {
	dir := t.TempDir()
	single, out, logDir := filepath.Join(dir, "single"), filepath.Join(dir, "dp"), filepath.Join(dir, "logs")
	var stdout, stderr bytes.Buffer
	if code := mainExit(append(args, "--out", single), &stdout, &stderr); code != 0 {
		t.Fatalf("single process: exit %d\n%s", code, &stderr)
	}
	raw, err := json.Marshal(append(slices.Concat(args, extra), "--out", out))
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
			if wok != gok || math.Abs(g-w) > tol*math.Abs(w) {
				t.Errorf("row %d %s: %v, single process %v", i, k, got[i][k], want[i][k])
			}
		}
	}
	cpu := engine.NewDefaultCPU(engine.CPUOptions{Workers: 1})
	ms := loadCheckpointModel(t, train.StepDir(single, last), cpu)
	md := loadCheckpointModel(t, train.StepDir(out, last), cpu)
	worst := 0.0
	for _, p := range ms.P.List {
		q := md.P.Get(p.Name)
		var d, n float64
		for i, v := range p.W.F32 {
			x := float64(q.W.F32[i]) - float64(v)
			d, n = d+x*x, n+float64(v)*float64(v)
		}
		e, ptol := math.Sqrt(d/n), tol
		if tol > 1e-6 && strings.HasSuffix(p.Name, "k_proj.bias") {
			ptol = kBiasTol
		} else {
			worst = max(worst, e)
		}
		if math.Sqrt(d) > ptol*math.Sqrt(n) {
			t.Errorf("%s: relative difference %.3g", p.Name, e)
		}
	}
	t.Logf("largest relative weight difference from the single process: %.3g", worst)
	for r := range 2 {
		log, err := os.ReadFile(filepath.Join(logDir, fmt.Sprintf("rank-%d.log", r)))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(log), fmt.Sprintf("rank %d of 2", r)) {
			t.Errorf("rank %d's log does not say which rank it is:\n%s", r, log)
		}
	}
	return out
}

// kBiasTol bounds the k_proj biases' difference after AdamW steps under
// tensor parallelism (measured here: 2.1e-4), which agrees with one
// process to float32 rounding only: their gradient mostly cancels (softmax
// removes a key bias's position-independent part), so its rounding is
// large relative to itself, and Adam's per-element normalisation carries
// it into the update. It catches a wrong or missing update; see
// train/sft's kBiasTol for the measurements behind it.
const kBiasTol = 1e-3

// loadCheckpointModel loads a checkpoint's model, assembling a sharded
// checkpoint's tensors from its shards.
func loadCheckpointModel(t *testing.T, dir string, be engine.Backend) *qwen2.Model {
	t.Helper()
	if !train.IsSharded(dir) {
		m, err := qwen2.Load(dir, be)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	cfg, err := qwen2.LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	sr, err := checkpoint.OpenSharded(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	m, err := qwen2.LoadFrom(cfg, sr, be)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestLaunchDPSFT: `purpcode launch --nproc-per-node 2 -- sft --config
// run.yaml` (two micro-batches per rank and step, one each in the epoch's
// short last step) matches the single process.
func TestLaunchDPSFT(t *testing.T) {
	launchMatchesSingle(t, []string{"sft", "--config", sftLaunchConfig(t), "--threads", "1"}, nil, sftLaunchKeys, 3, 1e-6)
}

// TestLaunchTPSFT: `purpcode launch --nproc-per-node 2 -- sft --config
// run.yaml --tensor-parallel 2` (both ranks holding shards of one model,
// the checkpoints sharded) matches the single process within 1e-5.
func TestLaunchTPSFT(t *testing.T) {
	out := launchMatchesSingle(t, []string{"sft", "--config", sftLaunchConfig(t), "--threads", "1"}, []string{"--tensor-parallel", "2"}, sftLaunchKeys, 3, 1e-5)
	if !train.IsSharded(train.StepDir(out, 3)) {
		t.Errorf("%s is not a sharded checkpoint", train.StepDir(out, 3))
	}
}

// TestLaunchTPRefusesBadWorld: tensor_parallel that does not divide the
// launch's ranks, or asks for ranks in a single process, is refused with
// a message saying so, before anything connects or is written.
func TestLaunchTPRefusesBadWorld(t *testing.T) {
	yml := sftLaunchConfig(t)
	out := filepath.Join(t.TempDir(), "out")
	var stdout, stderr bytes.Buffer
	if code := mainExit([]string{"sft", "--config", yml, "--out", out, "--tensor-parallel", "2"}, &stdout, &stderr); code == 0 ||
		!strings.Contains(stderr.String(), "tensor_parallel 2 needs a multiple of 2 ranks") {
		t.Errorf("one process with --tensor-parallel 2: exit %d\n%s", code, &stderr)
	}
	// Rank 1 of 2 would wait for rank 0 at the rendezvous: the check
	// comes first.
	t.Setenv("RANK", "1")
	t.Setenv("WORLD_SIZE", "2")
	t.Setenv("MASTER_ADDR", "127.0.0.1")
	t.Setenv("MASTER_PORT", "1")
	stderr.Reset()
	if code := mainExit([]string{"sft", "--config", yml, "--out", out, "--tensor-parallel", "3"}, &stdout, &stderr); code == 0 ||
		!strings.Contains(stderr.String(), "tensor_parallel 3 needs a multiple of 3 ranks: the launch has 2 (WORLD_SIZE)") {
		t.Errorf("2 ranks with --tensor-parallel 3: exit %d\n%s", code, &stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("refused runs created %s (%v)", out, err)
	}
}

// sftLaunchKeys are the metrics the SFT launch tests compare.
var sftLaunchKeys = []string{"step", "epoch", "loss", "lr", "grad_norm", "target_tokens", "tokens"}

// sftLaunchConfig writes the SFT launch tests' run config: 3 steps of 4
// micro-batches (two per rank and step under DP, one each in the epoch's
// short last step).
func sftLaunchConfig(t *testing.T) string {
	model, data := writeTinySFT(t)
	yml := filepath.Join(t.TempDir(), "run.yaml")
	os.WriteFile(yml, []byte(fmt.Sprintf("model: %s\ndata: [%s]\nseq_len: 8\nmicro_batch: 1\ngrad_accum: 4\nmax_steps: 3\nlr: 0.01\nwarmup: 1\nsave_every: 2\n", model, data)), 0o644)
	return yml
}

// TestLaunchDPRL: `purpcode launch --nproc-per-node 2 -- rl --config
// run.yaml` on the embedded base model (each rank rolls out two of the
// four prompts) matches the single process.
func TestLaunchDPRL(t *testing.T) {
	launchMatchesSingle(t, []string{"rl", "--config", rlLaunchConfig(t), "--threads", "1"}, nil, rlLaunchKeys, 2, 1e-6)
}

// TestLaunchTPRL: `purpcode launch --nproc-per-node 2 -- rl --config
// run.yaml --tensor-parallel 2` (rollouts decoded and the policy trained
// on the two ranks' shards of one model) matches the single process
// within 1e-5.
func TestLaunchTPRL(t *testing.T) {
	out := launchMatchesSingle(t, []string{"rl", "--config", rlLaunchConfig(t), "--threads", "1"}, []string{"--tensor-parallel", "2"}, rlLaunchKeys, 2, 1e-5)
	if !train.IsSharded(train.StepDir(out, 2)) {
		t.Errorf("%s is not a sharded checkpoint", train.StepDir(out, 2))
	}
}

// rlLaunchKeys are the metrics the RL launch tests compare.
var rlLaunchKeys = []string{"step", "lr", "drawn", "trained_groups", "reward", "response_len", "train_tokens", "loss", "pg_obj", "kl", "entropy", "grad_norm"}

// rlLaunchConfig writes the RL launch tests' run config: 2 steps on the
// embedded base model, four prompts per step (two per rank under DP).
func rlLaunchConfig(t *testing.T) string {
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
	return yml
}
