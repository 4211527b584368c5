package sft

import (
	"math/rand/v2"
	"testing"

	"purpcode/engine"
	"purpcode/model/qwen2"
	"purpcode/train"
	"purpcode/train/optim"
)

// benchModelConfig is the `make bench` model; bench/torch_sft.py builds the
// same one in PyTorch.
const benchModelConfig = `{"model_type":"qwen2","hidden_size":512,"intermediate_size":1408,"num_hidden_layers":8,
"num_attention_heads":8,"num_key_value_heads":2,"vocab_size":8192,"max_position_embeddings":2048,
"rope_theta":1000000.0,"rms_norm_eps":1e-6,"tie_word_embeddings":false}`

// BenchmarkSFTStep times one full optimizer step (forward, loss, backward,
// grad-norm clipping, AdamW) on a 4 x 256 batch, reporting tokens/s.
func BenchmarkSFTStep(b *testing.B) {
	cfg, err := qwen2.ParseConfig([]byte(benchModelConfig), "bench")
	if err != nil {
		b.Fatal(err)
	}
	cpu := engine.NewDefaultCPU(engine.CPUOptions{})
	m := qwen2.New(cfg, cpu, 1)
	const bs, t = 4, 256
	r := rand.New(rand.NewPCG(1, 2))
	batch := &qwen2.Batch{B: bs, T: t, IDs: make([]int32, bs*t), Targets: make([]int32, bs*t)}
	for i := range batch.IDs {
		batch.IDs[i] = int32(r.IntN(cfg.Vocab))
	}
	for i := range batch.Targets {
		batch.Targets[i] = engine.IgnoreIndex
		if (i+1)%t != 0 {
			batch.Targets[i] = batch.IDs[i+1]
		}
	}
	opt := optim.NewAdamW(m.Backend(), train.Segments(m.P), m.P.Count(), optim.AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01})
	tr := NewTrainer(m, opt, bs, t, 1.0)
	micro := []*qwen2.Batch{batch}
	tr.Step(micro, 1e-4) // warm-up: first-touch of buffers and pools
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tr.Step(micro, 1e-4)
	}
	b.ReportMetric(float64(bs*t*b.N)/b.Elapsed().Seconds(), "tokens/s")
	b.Logf("%s, %d workers, %d parameters", cpu.BLASName(), cpu.Workers(), m.P.Count())
}
