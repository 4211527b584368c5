package generate

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"purpcode/engine"
	"purpcode/model/qwen2"
)

// refLogits returns the model's logits before sample token i, from one
// full forward pass over prompt+sample (no KV cache, no batching).
func refLogits(m *qwen2.Model, prompt []int, s Sample, i int) []float32 {
	ids := make([]int32, 0, len(prompt)+i)
	for _, id := range prompt {
		ids = append(ids, int32(id))
	}
	for _, id := range s.Tokens[:i] {
		ids = append(ids, int32(id))
	}
	a := m.NewActs(1, len(ids))
	m.Forward(a, &qwen2.Batch{B: 1, T: len(ids), IDs: ids})
	v := m.Cfg.Vocab
	logits := engine.New(1, v)
	m.Logits(a, []int{len(ids) - 1}, logits)
	return logits.F32[:v]
}

// bruteTop is the k most likely tokens of softmax(row) by sorting the whole
// vocabulary in float64: the definition topRaw must meet.
func bruteTop(row []float32, k int) []TokenLogProb {
	maxLogit := math.Inf(-1)
	for _, x := range row {
		maxLogit = math.Max(maxLogit, float64(x))
	}
	var z float64
	for _, x := range row {
		z += math.Exp(float64(x) - maxLogit)
	}
	all := make([]TokenLogProb, len(row))
	for i, x := range row {
		all[i] = TokenLogProb{ID: i, LogProb: float32(math.Log(math.Exp(float64(x)-maxLogit) / z))}
	}
	slices.SortStableFunc(all, func(a, b TokenLogProb) int {
		switch {
		case row[a.ID] > row[b.ID]:
			return -1
		case row[a.ID] < row[b.ID]:
			return 1
		}
		return 0
	})
	return all[:k]
}

// TestTopLogProbsMatchBruteForce checks the alternatives recorded at every
// step of greedy and sampled requests against a brute-force softmax over
// the logits of a full forward pass: same tokens in the same order, same
// log-probs, and the sampled token's raw log-prob among them when it is
// one of the most likely.
func TestTopLogProbsMatchBruteForce(t *testing.T) {
	m := testModel(t)
	v := m.Cfg.Vocab
	reqs := []Request{
		{ID: "greedy", Prompt: []int{5, 9, 77, 3}, Params: SamplingParams{Greedy: true, MaxNewTokens: 10, TopLogProbs: 5}},
		{ID: "sampled", Prompt: []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}, N: 3, Seed: 4,
			Params: SamplingParams{Temperature: 1.3, TopP: 0.9, MaxNewTokens: 12, TopLogProbs: 3}},
		{ID: "whole-vocab", Prompt: []int{100}, Params: SamplingParams{Temperature: 0.7, MaxNewTokens: 4, TopLogProbs: v}},
		{ID: "none", Prompt: []int{42, 43}, Params: SamplingParams{Greedy: true, MaxNewTokens: 4}},
	}
	e := newEngine(t, m, Options{MaxBatch: 3, BlockSize: 8})
	out, err := e.Generate(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for r, samples := range out {
		k := reqs[r].Params.TopLogProbs
		for _, s := range samples {
			if k == 0 {
				if s.TopLogProbs != nil {
					t.Fatalf("%s: top log-probs recorded without being asked for", s.RequestID)
				}
				continue
			}
			if len(s.TopLogProbs) != len(s.Tokens) {
				t.Fatalf("%s/%d: %d rows of alternatives for %d tokens", s.RequestID, s.Index, len(s.TopLogProbs), len(s.Tokens))
			}
			for i, got := range s.TopLogProbs {
				want := bruteTop(refLogits(m, reqs[r].Prompt, s, i), k)
				if len(got) != k {
					t.Fatalf("%s/%d token %d: %d alternatives, want %d", s.RequestID, s.Index, i, len(got), k)
				}
				for j := range want {
					d := math.Abs(float64(got[j].LogProb - want[j].LogProb))
					worst = math.Max(worst, d)
					// The KV-cached logits differ from the full pass by
					// rounding, so ids may swap only between near-equal
					// log-probs.
					if d > 1e-4 || (got[j].ID != want[j].ID && math.Abs(float64(want[j].LogProb-got[j].LogProb)) > 1e-4) {
						t.Fatalf("%s/%d token %d rank %d: got %+v, brute force %+v", s.RequestID, s.Index, i, j, got[j], want[j])
					}
					if j > 0 && got[j].LogProb > got[j-1].LogProb {
						t.Fatalf("%s/%d token %d: alternatives out of order: %+v", s.RequestID, s.Index, i, got)
					}
				}
				if reqs[r].Params.Greedy && (got[0].ID != s.Tokens[i] || got[0].LogProb != s.RawLogProbs[i]) {
					t.Fatalf("%s token %d: greedy token %d (%v) is not the top alternative %+v", s.RequestID, i, s.Tokens[i], s.RawLogProbs[i], got[0])
				}
			}
		}
	}
	t.Logf("worst top log-prob difference %.2g", worst)
}

// TestTopRawTies: equal logits rank by the smaller id, like the sampler.
func TestTopRawTies(t *testing.T) {
	var sm sampler
	row := []float32{1, 3, 3, 0, 3}
	got := sm.topRaw(row, 4, logSumExp(row))
	ids := []int{got[0].ID, got[1].ID, got[2].ID, got[3].ID}
	if !slices.Equal(ids, []int{1, 2, 4, 0}) {
		t.Fatalf("order %v, want [1 2 4 0]", ids)
	}
	if got[0].LogProb != got[2].LogProb || got[3].LogProb >= got[2].LogProb {
		t.Fatalf("log-probs %+v", got)
	}
}

// BenchmarkTopRaw measures the per-step cost of recording alternatives
// over Qwen2.5's vocabulary (the log-sum-exp comes from the draw), next to
// the draw it accompanies.
func BenchmarkTopRaw(b *testing.B) {
	const vocab = 151936
	r := rand.New(rand.NewPCG(3, 4))
	logits := make([]float32, vocab)
	for i := range logits {
		logits[i] = float32(r.NormFloat64() * 3)
	}
	var sm sampler
	lse := logSumExp(logits)
	b.Run("draw", func(b *testing.B) {
		sp := SamplingParams{Temperature: 1}
		for b.Loop() {
			sm.draw(logits, &sp, r)
		}
	})
	for _, k := range []int{5, 20} {
		b.Run(fmt.Sprintf("top=%d", k), func(b *testing.B) {
			for b.Loop() {
				sm.topRaw(logits, k, lse)
			}
		})
	}
}
