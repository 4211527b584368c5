package cuda_test

import (
	"context"
	"math"
	"testing"

	"purpcode/generate"
	"purpcode/model/qwen2"
)

// TestRolloutEngineMatchesCPU runs the rollout engine (paged KV cache,
// prefill through the flash attention kernels, decode through paged_attn,
// a forked sequence) on the device and on the CPU: greedy tokens must be
// identical for 32 new tokens, or first differ where the CPU's own top-2
// logits are within the forward tolerance (a near-tie, logged), and the
// chosen tokens' log-probs (z_t - logsumexp z) must agree within 0.2 nats:
// each of the two terms moves by at most the forward tolerance, 2e-2 of
// max |logit| (~15 for this model), and bf16 rounding of the hidden state
// is what moves them.
func TestRolloutEngineMatchesCPU(t *testing.T) {
	mc, md, _ := models(t)
	prompts := [][]int{{1533, 17, 230, 940, 12}, {1533, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417}, {1533}}
	run := func(m *qwen2.Model) [][]generate.Sample {
		// Block size 4 and a prompt of 19 tokens: the prefill crosses
		// blocks and the fork copies a partly filled block.
		e, err := generate.New(m, generate.Options{MaxBatch: 4, BlockSize: 4, KVBlocks: 64, MaxStepTokens: 8})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		var reqs []generate.Request
		for i, p := range prompts {
			n := 1
			if i == 1 {
				n = 2 // two greedy samples of one prompt: a forked KV sequence
			}
			reqs = append(reqs, generate.Request{ID: string(rune('a' + i)), Prompt: p, N: n,
				Params: generate.SamplingParams{Greedy: true, MaxNewTokens: 32}})
		}
		out, err := e.Generate(context.Background(), reqs)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	oc, od := run(mc), run(md)
	worst := 0.0
	for i := range oc {
		for j := range oc[i] {
			sc, sd := oc[i][j], od[i][j]
			n := min(len(sc.Tokens), len(sd.Tokens))
			for k := 0; k < n; k++ {
				if sc.Tokens[k] != sd.Tokens[k] {
					t.Logf("prompt %d sample %d: first divergence at token %d (cpu %d, device %d)", i, j, k, sc.Tokens[k], sd.Tokens[k])
					if gap := logGap(t, mc, prompts[i], sc.Tokens[:k]); gap > 0.05 {
						t.Errorf("prompt %d sample %d: token %d differs with a clear cpu margin %.4g", i, j, k, gap)
					}
					n = k
					break
				}
				worst = math.Max(worst, math.Abs(float64(sc.RawLogProbs[k]-sd.RawLogProbs[k])))
			}
			if n == len(sc.Tokens) && len(sc.Tokens) != len(sd.Tokens) {
				t.Errorf("prompt %d sample %d: %d tokens on the cpu, %d on the device", i, j, len(sc.Tokens), len(sd.Tokens))
			}
		}
	}
	t.Logf("max |Δ log-prob| of the chosen tokens: %.3g", worst)
	if worst > 0.2 {
		t.Errorf("chosen-token log-probs differ by %.3g, above 0.2", worst)
	}
}

// logGap is the CPU's top-1 minus top-2 logit after prompt+prefix.
func logGap(t *testing.T, m *qwen2.Model, prompt, prefix []int) float64 {
	seq := make([]int32, 0, len(prompt)+len(prefix))
	for _, v := range append(append([]int(nil), prompt...), prefix...) {
		seq = append(seq, int32(v))
	}
	_, gaps := greedy(m, seq, 1)
	return gaps[0]
}
