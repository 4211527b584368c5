package grpo

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"purpcode/engine"
	"purpcode/engine/cuda"
	"purpcode/generate"
	"purpcode/internal/testref"
	"purpcode/model/qwen2"
	"purpcode/train"
	"purpcode/train/optim"
)

// TestInferenceReferenceKeepsKLOnDevice runs one GRPO update on the CUDA
// backend (the PTX emulator) twice over the same sampled groups and the
// same perturbed policy: once with the frozen reference loaded as a whole
// trainable model (fp32 master, bf16 compute copy, gradients), as the
// trainer used to, and once inference-only (qwen2.LoadInference: the bf16
// compute copy alone), as it does now. The reference's forward pass reads
// only the compute copy, which is the same bf16 rounding of the same
// weights either way, so KL and loss must agree within float rounding,
// while the inference-only reference holds a fifth of the device bytes.
func TestInferenceReferenceKeepsKLOnDevice(t *testing.T) {
	base := filepath.Join("..", "..", "testdata", "base-model")
	cpu := engine.NewDefaultCPU(engine.CPUOptions{Workers: 2})

	cfg := DefaultConfig()
	cfg.MaxPromptLen, cfg.MaxResponseLen = 8, 8
	cfg.KLCoef, cfg.EntropyCoef, cfg.LR = 0.05, 0.001, 1e-4

	mc := load(t, base, cpu)
	eng, err := generate.New(mc, generate.Options{MaxBatch: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	out, err := eng.Generate(t.Context(), []generate.Request{{ID: "p", Prompt: []int{1533, 17, 230, 940}, N: 4, Seed: 7,
		Params: generate.SamplingParams{Temperature: 1, MaxNewTokens: cfg.MaxResponseLen}}})
	if err != nil {
		t.Fatal(err)
	}
	groups := []*group{{p: &prompt{ids: []int{1533, 17, 230, 940}}, samples: out[0], rewards: []float64{1, 0, 0.5, 0.8}}}

	run := func(inference bool) (Metrics, int64) {
		dev, err := cuda.Open(cuda.Emulated, cuda.Options{})
		if err != nil {
			testref.Missing(t, testref.NeedNVRTC, err.Error())
			t.Fatal(err)
		}
		defer dev.Close()
		var ref *qwen2.Model
		if inference {
			ref, err = qwen2.LoadInference(base, dev)
		} else {
			ref, err = qwen2.Load(base, dev)
		}
		if err != nil {
			t.Fatal(err)
		}
		if inference && ref.P.Flat != nil {
			t.Errorf("the inference-only reference keeps a host copy of its %d weights", ref.P.Count())
		}
		refBytes := dev.PeakBytes()[engine.MemWeights] + dev.PeakBytes()[engine.MemGrads]
		m := load(t, base, dev)
		r := rand.New(rand.NewPCG(3, 3))
		for i := range m.P.Flat {
			m.P.Flat[i] += float32(r.NormFloat64() * 0.01)
		}
		m.P.Push()
		opt, err := train.NewOptimizer(train.OptimizerConfig{Name: "adamw", Beta1: cfg.Beta1, Beta2: cfg.Beta2, Eps: cfg.Eps}, m)
		if err != nil {
			t.Fatal(err)
		}
		rn := &runner{cfg: cfg, m: m, ref: ref, opt: opt,
			sched: optim.Schedule{Kind: optim.Constant, LR: cfg.LR, Total: 1}, acts: m.NewActs(1, cfg.packLen())}
		var row Metrics
		if err := rn.update(context.Background(), groups, &row); err != nil {
			t.Fatal(err)
		}
		return row, refBytes
	}
	full, fullBytes := run(false)
	inf, infBytes := run(true)
	t.Logf("full reference (%d bytes):           loss %.9g kl %.9g", fullBytes, full.Loss, full.KL)
	t.Logf("inference-only reference (%d bytes): loss %.9g kl %.9g", infBytes, inf.Loss, inf.KL)
	if full.KL < 1e-3 {
		t.Fatalf("KL %.3g: the perturbed policy is too close to the reference for the comparison to mean anything", full.KL)
	}
	for _, q := range []struct {
		name      string
		got, want float64
	}{{"kl", inf.KL, full.KL}, {"loss", inf.Loss, full.Loss}} {
		if rel := math.Abs(q.got-q.want) / math.Abs(q.want); rel > 1e-6 {
			t.Errorf("%s: inference-only reference %.9g, full %.9g (%.3g relative)", q.name, q.got, q.want, rel)
		}
	}
	if 5*infBytes != fullBytes {
		t.Errorf("reference device bytes: inference-only %d, full %d; want 2 and 10 bytes a parameter", infBytes, fullBytes)
	}
}
