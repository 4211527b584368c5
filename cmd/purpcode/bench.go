package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"purpcode/engine"
	"purpcode/generate"
	"purpcode/model/qwen2"
	"purpcode/train"
	"purpcode/train/optim"
)

// benchShapes are the model shapes `purpcode bench` knows, as config.json
// content with random weights.
var benchShapes = map[string]string{
	"tiny": `{"model_type":"qwen2","hidden_size":64,"intermediate_size":160,"num_hidden_layers":2,
		"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":256,"max_position_embeddings":128,"rope_theta":1000000.0,
		"tie_word_embeddings":true}`,
	"bench": `{"model_type":"qwen2","hidden_size":512,"intermediate_size":1408,"num_hidden_layers":8,
		"num_attention_heads":8,"num_key_value_heads":2,"vocab_size":8192,"max_position_embeddings":4096,"rope_theta":1000000.0}`,
	"qwen2.5-0.5b": `{"model_type":"qwen2","hidden_size":896,"intermediate_size":4864,"num_hidden_layers":24,
		"num_attention_heads":14,"num_key_value_heads":2,"vocab_size":151936,"max_position_embeddings":32768,
		"rope_theta":1000000.0,"tie_word_embeddings":true}`,
	"qwen2.5-7b": `{"model_type":"qwen2","hidden_size":3584,"intermediate_size":18944,"num_hidden_layers":28,
		"num_attention_heads":28,"num_key_value_heads":4,"vocab_size":152064,"max_position_embeddings":32768,
		"rope_theta":1000000.0,"tie_word_embeddings":false}`,
}

// benchResult is what `purpcode bench` prints (one JSON object with --json).
type benchResult struct {
	Shape         string             `json:"shape"`
	Layers        int                `json:"layers"`
	Device        string             `json:"device"`
	GEMM          string             `json:"gemm"`
	Threads       int                `json:"threads"`
	Params        int                `json:"params"`
	Batch         int                `json:"batch"`
	SeqLen        int                `json:"seq_len"`
	FLOPsPerToken float64            `json:"train_flops_per_token"`
	TrainTokensPS float64            `json:"train_tokens_per_s"`
	TrainTFLOPS   float64            `json:"train_tflops"`
	PeakTFLOPS    float64            `json:"peak_tflops,omitempty"`
	MFU           *float64           `json:"mfu,omitempty"`
	PrefillTokPS  float64            `json:"prefill_tokens_per_s"`
	DecodeTokPS   map[string]float64 `json:"decode_tokens_per_s"`
	WeightsBytes  int64              `json:"weights_bytes"`
	// DevicePeak is the device memory the backend measured at its peak, by
	// category (a device backend only).
	DevicePeak     map[string]int64 `json:"device_peak_bytes,omitempty"`
	TrainStateByte int64            `json:"train_state_bytes"`
}

func runBench(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", stderr)
	shape := fs.String("shape", "bench", "model shape: tiny, bench, qwen2.5-0.5b or qwen2.5-7b (random weights)")
	batch := fs.Int("batch", 4, "training micro-batch rows")
	seq := fs.Int("seq", 256, "training sequence length")
	steps := fs.Int("steps", 3, "timed training steps (after one warm-up step)")
	decodeTokens := fs.Int("decode-tokens", 32, "new tokens per sequence in the decode measurement")
	decodeBatches := fs.String("decode-batches", "1,8,32", "comma-separated decode batch sizes to measure")
	layers := fs.Int("layers", 0, "layers of the shape to build (0: all); fewer make a large shape's layer stack fit one device")
	peak := fs.String("peak-tflops", "auto", "peak TFLOP/s of the device, to report MFU: a number, 0 (not reported) or auto (dense bf16 of a GPU it knows)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	cpuFlags := addCPUFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfgJSON, ok := benchShapes[*shape]
	if !ok {
		return fmt.Errorf("--shape %q: want tiny, bench, qwen2.5-0.5b or qwen2.5-7b", *shape)
	}
	cfg, err := qwen2.ParseConfig([]byte(cfgJSON), *shape)
	if err != nil {
		return err
	}
	if *seq > cfg.MaxPositions || *batch <= 0 || *seq <= 1 || *steps <= 0 || *layers < 0 {
		return fmt.Errorf("need batch > 0, 1 < seq <= %d, steps > 0 and layers >= 0", cfg.MaxPositions)
	}
	if *layers > 0 {
		cfg.Layers = *layers
	}
	be, closeBE, err := cpuFlags.backend(stderr)
	if err != nil {
		return err
	}
	defer closeBE()
	peakTFLOPS, err := parsePeakTFLOPS(*peak, be.Describe())
	if err != nil {
		return err
	}
	m := qwen2.New(cfg, be, 1)
	res := benchResult{Shape: *shape, Layers: cfg.Layers, Device: be.Name(), GEMM: "cuBLASLt", Params: m.P.Count(),
		Batch: *batch, SeqLen: *seq, PeakTFLOPS: peakTFLOPS, DecodeTokPS: map[string]float64{}}
	if cpu := m.CPU(); cpu != nil {
		res.GEMM, res.Threads = cpu.BLASName(), cpu.Workers()
	}
	res.WeightsBytes = int64(m.P.Count()) * 4
	res.TrainStateByte = res.WeightsBytes * 4 // weights, gradients, two AdamW moments
	res.FLOPsPerToken = trainFLOPsPerToken(cfg, *seq)

	// Training: forward, backward and an AdamW update per step.
	b := randomBatch(cfg, *batch, *seq)
	acts := m.NewActs(*batch, *seq)
	opt, err := train.NewOptimizer(train.OptimizerConfig{Name: "adamw", Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}, m)
	if err != nil {
		return err
	}
	trainStep := func() {
		m.P.ZeroGrad()
		m.Forward(acts, b)
		m.Loss(acts, b, true, 1/float32(*batch*(*seq-1)))
		m.Backward(acts, b)
		optim.ClipGradNorm(m.Backend(), m.P.Weights.Grad, 1)
		opt.Step(m.P.Weights, 1e-4)
	}
	trainStep()
	t0 := time.Now()
	for i := 0; i < *steps; i++ {
		trainStep()
	}
	dt := time.Since(t0).Seconds()
	res.TrainTokensPS = float64(*steps**batch**seq) / dt
	res.TrainTFLOPS = res.TrainTokensPS * res.FLOPsPerToken / 1e12
	if peakTFLOPS > 0 {
		mfu := res.TrainTFLOPS / peakTFLOPS
		res.MFU = &mfu
	}

	// Rollouts: one prefill of a seq-token prompt, then batched decoding.
	batches, err := parseBatches(*decodeBatches)
	if err != nil {
		return err
	}
	for _, nb := range batches {
		eng, err := generate.New(m, generate.Options{MaxBatch: nb, KVBlocks: nb * ((*seq + *decodeTokens + 15) / 16)})
		if err != nil {
			return err
		}
		reqs := make([]generate.Request, nb)
		prompt := make([]int, *seq)
		for i := range prompt {
			prompt[i] = int(b.IDs[i])
		}
		for i := range reqs {
			reqs[i] = generate.Request{ID: fmt.Sprint(i), Prompt: prompt[:min(len(prompt), 64)], N: 1, Seed: 1,
				Params: generate.SamplingParams{Temperature: 1, MaxNewTokens: *decodeTokens}}
		}
		t0 := time.Now()
		out, err := eng.Generate(context.Background(), reqs)
		if err != nil {
			eng.Close()
			return err
		}
		n := 0
		for _, s := range out {
			n += len(s[0].Tokens)
		}
		res.DecodeTokPS[fmt.Sprint(nb)] = float64(n) / time.Since(t0).Seconds()
		if nb == batches[0] {
			pre := []generate.Request{{ID: "prefill", Prompt: prompt, N: 1, Params: generate.SamplingParams{Greedy: true, MaxNewTokens: 1}}}
			t0 = time.Now()
			if _, err := eng.Generate(context.Background(), pre); err != nil {
				eng.Close()
				return err
			}
			res.PrefillTokPS = float64(len(prompt)) / time.Since(t0).Seconds()
		}
		eng.Close()
	}

	if mr, ok := be.(engine.MemoryReporter); ok {
		res.DevicePeak = mr.PeakBytes()
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	fmt.Fprintf(stdout, "shape %s (%d layers): %d parameters, device %s, GEMM %s\n", res.Shape, res.Layers, res.Params, res.Device, res.GEMM)
	fmt.Fprintf(stdout, "train step (fwd+bwd+AdamW), batch %d x %d: %.0f tokens/s, %.3f TFLOP/s at %.3g FLOPs/token (6N + 12*L*H*D*T)",
		res.Batch, res.SeqLen, res.TrainTokensPS, res.TrainTFLOPS, res.FLOPsPerToken)
	if res.MFU != nil {
		fmt.Fprintf(stdout, ", MFU %.1f%% of %g TFLOP/s", 100**res.MFU, res.PeakTFLOPS)
	}
	fmt.Fprintf(stdout, "\nprefill %d tokens: %.0f tokens/s\ndecode tokens/s:", res.SeqLen, res.PrefillTokPS)
	for i, nb := range batches {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(stdout, "%s batch %d %.0f", sep, nb, res.DecodeTokPS[fmt.Sprint(nb)])
	}
	fmt.Fprintln(stdout)
	fmt.Fprintf(stdout, "memory: weights %.1f MB, training state (weights, grads, AdamW) %.1f MB\n", float64(res.WeightsBytes)/1e6, float64(res.TrainStateByte)/1e6)
	if res.DevicePeak != nil {
		fmt.Fprintf(stdout, "device memory at its peak: %s\n", formatPeak(res.DevicePeak))
	}
	return nil
}

// gpuPeakTFLOPS is the dense bf16 tensor-core peak of the GPUs --peak-tflops
// auto knows, matched against the device description in order (the
// narrower names first): NVIDIA's datasheet figures without sparsity.
var gpuPeakTFLOPS = []struct {
	name   string
	tflops float64
}{
	{"H100 PCIe", 756},
	{"H100 NVL", 835},
	{"H100", 989},
	{"H200", 989},
}

// parsePeakTFLOPS reads --peak-tflops: a non-negative number, or auto,
// which looks the device's description up in gpuPeakTFLOPS (0, no MFU,
// for anything else: the CPU, the emulator, an unknown GPU).
func parsePeakTFLOPS(flagValue, describe string) (float64, error) {
	if flagValue == "auto" {
		for _, g := range gpuPeakTFLOPS {
			if strings.Contains(describe, g.name) {
				return g.tflops, nil
			}
		}
		return 0, nil
	}
	v, err := strconv.ParseFloat(flagValue, 64)
	if err != nil || !(v >= 0) || math.IsInf(v, 0) { // !(v >= 0) also refuses NaN
		return 0, fmt.Errorf("--peak-tflops %q: want auto or a number >= 0", flagValue)
	}
	return v, nil
}

// trainFLOPsPerToken is 6 x (matmul parameters, lm head included) plus the
// attention score and value products, 12 x layers x heads x head_dim x T
// (forward + backward, no causal discount) — the usual MFU accounting.
func trainFLOPsPerToken(c *qwen2.Config, t int) float64 {
	d := c.HeadDim
	perLayer := c.Hidden*c.Heads*d*2 + c.Hidden*c.KVHeads*d*2 + 3*c.Hidden*c.Intermediate
	n := float64(c.Layers*perLayer + c.Vocab*c.Hidden)
	return 6*n + 12*float64(c.Layers*c.Heads*d*t)
}

func randomBatch(c *qwen2.Config, b, t int) *qwen2.Batch {
	r := rand.New(rand.NewPCG(1, 2))
	ids := make([]int32, b*t)
	for i := range ids {
		ids[i] = int32(r.IntN(c.Vocab))
	}
	targets := make([]int32, b*t)
	for row := 0; row < b; row++ {
		targets[row*t+t-1] = engine.IgnoreIndex
		copy(targets[row*t:row*t+t-1], ids[row*t+1:row*t+t])
	}
	return &qwen2.Batch{B: b, T: t, IDs: ids, Targets: targets}
}

// parseBatches reads --decode-batches: positive sizes, the first one
// measured together with the prefill.
func parseBatches(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("--decode-batches %q: want comma-separated positive batch sizes", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// formatPeak prints a backend's peak bytes per category, total first.
func formatPeak(p map[string]int64) string {
	cats := make([]string, 0, len(p))
	for c := range p {
		if c != "total" {
			cats = append(cats, c)
		}
	}
	sort.Strings(cats)
	out := fmt.Sprintf("total %.1f MB", float64(p["total"])/1e6)
	for _, c := range cats {
		out += fmt.Sprintf(", %s %.1f MB", c, float64(p[c])/1e6)
	}
	return out
}
