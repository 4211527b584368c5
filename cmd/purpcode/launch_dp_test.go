package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"purpcode/dist"
	"purpcode/engine/cuda"
	"purpcode/kernels/cudatest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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
func launchMatchesSingle(t *testing.T, nproc int, args, extra []string, keys []string, last int64, tol float64) string {
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
	if code := mainExit([]string{"launch", "--nproc-per-node", strconv.Itoa(nproc), "--master-port", "0", "--log-dir", logDir, "--", "-test.run=^TestCLIChild$"}, &stdout, &stderr); code != 0 {
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
	for r := range nproc {
		log, err := os.ReadFile(filepath.Join(logDir, fmt.Sprintf("rank-%d.log", r)))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(log), fmt.Sprintf("rank %d of %d", r, nproc)) {
			t.Errorf("rank %d's log does not say which rank it is:\n%s", r, log)
		}
		// On the CPU, auto picks the CPU backend and rank 0 says so, once.
		choice := fmt.Sprintf("collectives over the CPU backend (TCP between the %d ranks): --dist-backend auto, and rank 0 cannot use NCCL: the device is cpu, not a CUDA GPU", nproc)
		if c, w := strings.Count(string(log), choice), max(0, 1-r); c != w {
			t.Errorf("rank %d's log says %d times %q, want %d:\n%s", r, c, choice, w, log)
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
	launchMatchesSingle(t, 2, []string{"sft", "--config", sftLaunchConfig(t), "--threads", "1"}, nil, sftLaunchKeys, 3, 1e-6)
}

// TestLaunchTPSFT: `purpcode launch --nproc-per-node 2 -- sft --config
// run.yaml --tensor-parallel 2` (both ranks holding shards of one model,
// the checkpoints sharded) matches the single process within 1e-5.
func TestLaunchTPSFT(t *testing.T) {
	out := launchMatchesSingle(t, 2, []string{"sft", "--config", sftLaunchConfig(t), "--threads", "1"}, []string{"--tensor-parallel", "2"}, sftLaunchKeys, 3, 1e-5)
	if !train.IsSharded(train.StepDir(out, 3)) {
		t.Errorf("%s is not a sharded checkpoint", train.StepDir(out, 3))
	}
}

// TestLaunchTPDPSFT: four ranks, two tensor-parallel replicas with ZeRO-1
// over the two data-parallel ranks (`purpcode launch --nproc-per-node 4 --
// sft ... --tensor-parallel 2 --zero 1`), match the single process.
func TestLaunchTPDPSFT(t *testing.T) {
	out := launchMatchesSingle(t, 4, []string{"sft", "--config", sftLaunchConfig(t), "--threads", "1"}, []string{"--tensor-parallel", "2", "--zero", "1"}, sftLaunchKeys, 3, 1e-5)
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
	launchMatchesSingle(t, 2, []string{"rl", "--config", rlLaunchConfig(t), "--threads", "1"}, nil, rlLaunchKeys, 2, 1e-6)
}

// TestLaunchTPRL: `purpcode launch --nproc-per-node 2 -- rl --config
// run.yaml --tensor-parallel 2` (rollouts decoded and the policy trained
// on the two ranks' shards of one model) matches the single process
// within 1e-5.
func TestLaunchTPRL(t *testing.T) {
	out := launchMatchesSingle(t, 2, []string{"rl", "--config", rlLaunchConfig(t), "--threads", "1"}, []string{"--tensor-parallel", "2"}, rlLaunchKeys, 2, 1e-5)
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

// cudaDevice is the -cuda-device flag of this package's tests (the
// convention of kernels/cudatest): the device TestLaunchDeviceTPSFT's
// ranks compute on, the PTX emulator by default, the GPU (--device cuda)
// with -cuda-device=real (scripts/gpu-check.sh's parallel step).
var cudaDevice = flag.String("cuda-device", cudatest.Emulated, cudatest.FlagUsage)

// TestLaunchDeviceTPSFT: `purpcode launch --nproc-per-node 2 -- sft
// --device cuda-emu --tensor-parallel 2`: two ranks on the emulated device
// (or the GPU, see cudaDevice), each holding a shard, against one process
// on the same device. The collectives' backend is auto's choice, which
// rank 0's log names once: the CPU backend on the emulator (no GPU), NCCL
// on a machine with a GPU per rank, the CPU backend when the two ranks
// share one GPU. Steps and targets must be the same, losses within
// 1e-2 and gradient norms within 3e-2 relative, and the weights' updates
// within 2e-2 relative norm: the shards add their partial sums in another
// order before rounding to bf16, which moves gradients by up to ~3e-2
// (engine/cuda's tolerances). The device runs AdamW only: an epsilon far
// above the gradients keeps its updates about proportional to them
// (lr*g/eps), where its usual per-element normalisation would blow up the
// noise of near-zero gradients into whole-lr steps.
func TestLaunchDeviceTPSFT(t *testing.T) {
	device := cuda.Emulated
	switch *cudaDevice {
	case cudatest.Emulated:
		if testing.Short() {
			t.Skip("the PTX emulator: slow")
		}
	case cudatest.Real:
		device = "cuda"
	default:
		t.Fatalf("-cuda-device %q: want %q or %q", *cudaDevice, cudatest.Emulated, cudatest.Real)
	}
	model, data := writeTinySFT(t)
	// Two KV heads, so that TP 2 splits them rather than sharing one.
	cfg, err := qwen2.ParseConfig([]byte(`{"model_type":"qwen2","hidden_size":16,"intermediate_size":32,"num_hidden_layers":1,
"num_attention_heads":2,"num_key_value_heads":2,"vocab_size":32,"max_position_embeddings":32}`), "tiny-kv2")
	if err != nil {
		t.Fatal(err)
	}
	cpu := engine.NewDefaultCPU(engine.CPUOptions{Workers: 1})
	if err := qwen2.New(cfg, cpu, 1).Save(model, qwen2.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	single, out, logDir := filepath.Join(dir, "single"), filepath.Join(dir, "tp"), filepath.Join(dir, "logs")
	args := []string{"sft", "--model", model, "--data", data, "--seq-len", "8", "--micro-batch", "1", "--grad-accum", "2",
		"--max-steps", "2", "--eps", "10", "--weight-decay", "0", "--lr", "1", "--warmup", "0", "--device", device}
	var stdout, stderr bytes.Buffer
	if code := mainExit(append(args, "--out", single), &stdout, &stderr); code != 0 {
		t.Fatalf("single process: exit %d\n%s", code, &stderr)
	}
	raw, err := json.Marshal(append(args, "--tensor-parallel", "2", "--out", out))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(childArgsEnv, string(raw))
	if code := mainExit([]string{"launch", "--nproc-per-node", "2", "--master-port", "0", "--log-dir", logDir, "--", "-test.run=^TestCLIChild$"}, &stdout, &stderr); code != 0 {
		t.Fatalf("launch: exit %d\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	want, got := readMetricsRows(t, single), readMetricsRows(t, out)
	if len(got) != len(want) {
		t.Fatalf("%d metrics rows, single process %d", len(got), len(want))
	}
	steps := 0
	for i := range want {
		for _, k := range []string{"event", "step", "target_tokens"} {
			if got[i][k] != want[i][k] {
				t.Errorf("row %d %s: %v, single process %v", i, k, got[i][k], want[i][k])
			}
		}
		w, ok := want[i]["loss"].(float64)
		if !ok {
			continue // the data row
		}
		steps++
		for k, tol := range map[string]float64{"loss": 1e-2, "grad_norm": 3e-2} {
			w, _ = want[i][k].(float64)
			g, _ := got[i][k].(float64)
			if math.Abs(g-w) > tol*math.Abs(w) || w == 0 {
				t.Errorf("row %d %s: %v, single process %v (tolerance %g relative)", i, k, g, w, tol)
			}
		}
	}
	if steps != 2 {
		t.Fatalf("%d step rows, want 2", steps)
	}
	init, err := qwen2.Load(model, cpu)
	if err != nil {
		t.Fatal(err)
	}
	ms := loadCheckpointModel(t, train.StepDir(single, 2), cpu)
	mt := loadCheckpointModel(t, train.StepDir(out, 2), cpu)
	var d, n float64
	for _, p := range init.P.List {
		s, q := ms.P.Get(p.Name).W.F32, mt.P.Get(p.Name).W.F32
		for i, w0 := range p.W.F32 {
			us, ut := float64(s[i])-float64(w0), float64(q[i])-float64(w0)
			d, n = d+(ut-us)*(ut-us), n+us*us
		}
	}
	t.Logf("weight updates: relative difference %.3g from the single process's (norm %.3g)", math.Sqrt(d/n), math.Sqrt(n))
	if n == 0 || math.Sqrt(d/n) > 2e-2 {
		t.Errorf("the tensor-parallel run's weight updates differ from the single process's by %.3g relative norm", math.Sqrt(d/n))
	}
	log, err := os.ReadFile(filepath.Join(logDir, "rank-0.log"))
	if err != nil {
		t.Fatal(err)
	}
	choice := regexp.MustCompile(`(?m)^sft: collectives over .*$`).FindAllString(string(log), -1)
	if len(choice) != 1 {
		t.Fatalf("rank 0's log names the collectives' backend %d times, want once:\n%s", len(choice), log)
	}
	t.Log(choice[0])
	if w := "sft: collectives over the CPU backend (TCP between the 2 ranks): --dist-backend auto, and rank 0 cannot use NCCL: the device is cuda-emu, not a CUDA GPU"; device == cuda.Emulated && choice[0] != w {
		t.Errorf("rank 0's log says %q, want %q", choice[0], w)
	}
}

// TestLaunchDistBackendRefusals: --dist-backend nccl on a device that is
// not a GPU (cpu, the emulator, auto falling back to the cpu here) is
// refused in one line naming the device, before the rendezvous (a rank of
// a launch does not wait for its peers first) and before anything is
// written; an unknown backend is a usage error.
func TestLaunchDistBackendRefusals(t *testing.T) {
	yml := sftLaunchConfig(t)
	configs := map[string]string{"sft": yml, "rl": rlLaunchConfig(t)}
	out := filepath.Join(t.TempDir(), "out")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sft", "--device", "cpu"}, "sft --dist-backend nccl: the device is cpu, not a CUDA GPU"},
		{[]string{"sft", "--device", "cuda-emu"}, "sft --dist-backend nccl: the device is cuda-emu, not a CUDA GPU"},
		{[]string{"rl", "--device", "cuda-emu"}, "rl --dist-backend nccl: the device is cuda-emu, not a CUDA GPU"},
	} {
		for _, launched := range []bool{false, true} {
			if launched {
				// Rank 1 of 2, whose rank 0 never comes: the refusal
				// must not wait for it.
				t.Setenv("RANK", "1")
				t.Setenv("WORLD_SIZE", "2")
				t.Setenv("MASTER_ADDR", "127.0.0.1")
				t.Setenv("MASTER_PORT", "1")
			}
			var stdout, stderr bytes.Buffer
			args := append(slices.Clone(tc.args), "--config", configs[tc.args[0]], "--out", out, "--dist-backend", "nccl")
			if code := mainExit(args, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("%q (launched %v): exit %d, want 1 and %q\n%s", args, launched, code, tc.want, &stderr)
			}
			if strings.Contains(stderr.String(), "rendezvous") {
				t.Errorf("%q (launched %v) went to the rendezvous before refusing:\n%s", args, launched, &stderr)
			}
		}
	}
	var stdout, stderr bytes.Buffer
	if code := mainExit([]string{"sft", "--config", yml, "--out", out, "--dist-backend", "gloo"}, &stdout, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), `want auto, cpu or nccl, got "gloo"`) {
		t.Errorf("--dist-backend gloo: exit %d\n%s", code, &stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("refused runs created %s (%v)", out, err)
	}
}

// TestFlagDistBackend: the flag's values, its default and the line that
// logs a CPU choice.
func TestFlagDistBackend(t *testing.T) {
	_, cf, err := sftConfig([]string{"--model", "m", "--data", "d", "--out", "o"}, io.Discard)
	if err != nil || cf.dist == nil || *cf.dist != distAuto {
		t.Fatalf("sft default: %v %v", cf.dist, err)
	}
	_, cf, err = rlConfig([]string{"--model", "m", "--data", "d", "--out", "o", "--dist-backend", "cpu"}, io.Discard)
	if err != nil || cf.dist == nil || *cf.dist != distCPU {
		t.Fatalf("rl --dist-backend cpu: %v %v", cf.dist, err)
	}
}

// TestLaunchAgreeOnNCCL: the ranks' exchange before choosing NCCL, on an
// in-process group of 3: every rank reaches the same decision, naming the
// ranks without NCCL or two sharing a GPU.
func TestLaunchAgreeOnNCCL(t *testing.T) {
	gpuA, gpuB := gpuKey("cuda:0"), gpuKey("cuda:1")
	if gpuA == gpuB || gpuA != gpuKey("cuda:0") {
		t.Fatalf("gpuKey: cuda:0 %v, cuda:1 %v: want distinct and stable", gpuA, gpuB)
	}
	for _, tc := range []struct {
		name string
		why  []string
		keys [][2]float32
		ok   bool
		want string // the reason rank 0 logs
	}{
		{"all able", []string{"", "", ""}, [][2]float32{gpuA, gpuB, gpuKey("cuda:2")}, true, ""},
		{"rank 0 without", []string{"the device is cpu, not a CUDA GPU", "", ""}, [][2]float32{{}, gpuA, gpuB}, false,
			"rank 0 cannot use NCCL: the device is cpu, not a CUDA GPU"},
		{"others without", []string{"", "nccl: not found", "nccl: not found"}, [][2]float32{gpuA, {}, {}}, false,
			"ranks [1 2] cannot use NCCL (their logs say why)"},
		{"shared GPU", []string{"", "", ""}, [][2]float32{gpuA, gpuB, gpuA}, false,
			"ranks 0 and 2 compute on the same GPU, and NCCL needs a GPU per rank"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			comms, err := dist.ConnectLocal(ctx, 3, 20*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]ncclAgreement, 3)
			errs := make([]error, 3)
			var wg sync.WaitGroup
			for r, c := range comms {
				wg.Go(func() {
					defer c.Close()
					got[r], errs[r] = agreeOnNCCL(ctx, c, tc.why[r], tc.keys[r])
				})
			}
			wg.Wait()
			for r := range got {
				if errs[r] != nil {
					t.Fatalf("rank %d: %v", r, errs[r])
				}
				if got[r].ok() != tc.ok || got[r].reason(tc.why[0]) != got[0].reason(tc.why[0]) {
					t.Errorf("rank %d: ok %v (%s), rank 0 %s; want ok %v", r, got[r].ok(), got[r].reason(tc.why[0]), got[0].reason(tc.why[0]), tc.ok)
				}
			}
			if r := got[0].reason(tc.why[0]); !tc.ok && !strings.HasPrefix(r, tc.want) {
				t.Errorf("reason %q, want it to start %q", r, tc.want)
			}
		})
	}
}
