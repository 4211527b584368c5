package generate

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"purpcode/engine"
	"purpcode/model/qwen2"
)

// benchModel is the `make bench` configuration with random weights.
func benchModel(b *testing.B) *qwen2.Model {
	cfg, err := qwen2.ParseConfig([]byte(`{"model_type":"qwen2","hidden_size":512,"intermediate_size":1408,
		"num_hidden_layers":8,"num_attention_heads":8,"num_key_value_heads":2,"vocab_size":8192,
		"max_position_embeddings":2048,"rope_theta":1000000,"tie_word_embeddings":false}`), "bench")
	if err != nil {
		b.Fatal(err)
	}
	return qwen2.New(cfg, engine.NewDefaultCPU(engine.CPUOptions{}), 1)
}

// BenchmarkDecode measures decode throughput: batch sequences with a
// 128-token prompt (prefilled outside the timer) each decode 64 tokens per
// iteration, drawing at temperature 1 (no top-p: with random weights the
// distribution is nearly flat and a nucleus would sort most of the vocab,
// which real models never ask for); tokens/s counts
// every generated token.
func BenchmarkDecode(b *testing.B) {
	m := benchModel(b)
	const prompt, gen = 128, 64
	for _, batch := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			kv := m.NewKVCache(16, batch*(prompt+gen)/16+batch)
			dec := m.NewDecoder(kv)
			defer dec.Close()
			r := rand.New(rand.NewPCG(1, 2))
			sp := SamplingParams{Temperature: 1}
			var samp sampler
			seqs := make([]*qwen2.SeqCache, batch)
			in := make([]qwen2.StepSeq, batch)
			next := make([]int32, batch)
			v := m.Cfg.Vocab
			tokens := 0
			for b.Loop() {
				b.StopTimer()
				for i := range seqs {
					if seqs[i] != nil {
						kv.Free(seqs[i])
					}
					seqs[i] = kv.NewSeq()
					p := make([]int32, prompt)
					for j := range p {
						p[j] = int32(r.IntN(v))
					}
					if _, err := dec.Step([]qwen2.StepSeq{{Seq: seqs[i], Tokens: p}}, false); err != nil {
						b.Fatal(err)
					}
					next[i] = int32(r.IntN(v))
				}
				b.StartTimer()
				for range gen {
					for i := range in {
						in[i] = qwen2.StepSeq{Seq: seqs[i], Tokens: next[i : i+1]}
					}
					logits, err := dec.Step(in, false)
					if err != nil {
						b.Fatal(err)
					}
					for i := range in {
						tok, _, _ := samp.draw(logits.F32[i*v:(i+1)*v], &sp, r)
						next[i] = int32(tok)
					}
					tokens += batch
				}
			}
			b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// BenchmarkPrefill measures prefill throughput on one 512-token prompt.
func BenchmarkPrefill(b *testing.B) {
	m := benchModel(b)
	const prompt = 512
	kv := m.NewKVCache(16, prompt/16)
	dec := m.NewDecoder(kv)
	defer dec.Close()
	r := rand.New(rand.NewPCG(1, 2))
	p := make([]int32, prompt)
	for j := range p {
		p[j] = int32(r.IntN(m.Cfg.Vocab))
	}
	tokens := 0
	for b.Loop() {
		s := kv.NewSeq()
		if _, err := dec.Step([]qwen2.StepSeq{{Seq: s, Tokens: p}}, false); err != nil {
			b.Fatal(err)
		}
		kv.Free(s)
		tokens += prompt
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkEngine is end to end: 8 prompts of 64 tokens, 8 samples each,
// 64 new tokens, batch 32 (prefill, forks, sampling and scheduling).
func BenchmarkEngine(b *testing.B) {
	m := benchModel(b)
	e, err := New(m, Options{MaxBatch: 32})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	r := rand.New(rand.NewPCG(3, 4))
	var reqs []Request
	for i := 0; i < 8; i++ {
		p := make([]int, 64)
		for j := range p {
			p[j] = r.IntN(m.Cfg.Vocab)
		}
		reqs = append(reqs, Request{ID: fmt.Sprint(i), Prompt: p, N: 8, Params: SamplingParams{Temperature: 1, MaxNewTokens: 64}})
	}
	tokens := 0
	for b.Loop() {
		out, err := e.Generate(b.Context(), reqs)
		if err != nil {
			b.Fatal(err)
		}
		for _, ss := range out {
			for _, s := range ss {
				tokens += len(s.Tokens)
			}
		}
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
}
