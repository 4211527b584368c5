package plan

import (
	"strings"
	"testing"

	"purpcode/engine"
	"purpcode/model/qwen2"
)

// tinyCfg is a model small enough to count by hand: hidden 8, 2 layers, 4
// query / 2 KV heads of 2, FFN 6, vocab 10, untied (norms 8 x 5).
func tinyCfg(t *testing.T) *qwen2.Config {
	t.Helper()
	cfg, err := qwen2.ParseConfig([]byte(`{"model_type":"qwen2","hidden_size":8,"intermediate_size":6,
		"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":10,
		"max_position_embeddings":16,"tie_word_embeddings":false}`), "tiny")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// The run's categories by hand, on a device (bf16) and on the CPU (fp32,
// one weight copy), with and without ZeRO-1.
func TestForRunCountsByHand(t *testing.T) {
	cfg := tinyCfg(t)
	// Per layer: 2 norms 16; q 8x8 + bias 8; k, v 4x8 + bias 4 each; o
	// 8x8; gate, up, down 6x8 each = 16+72+72+64+144 = 368. Embedding and
	// head 10x8 each, final norm 8.
	const n = 2*368 + 2*80 + 8
	p, err := ForRun(cfg, Run{TP: 1, DP: 1, B: 2, T: 3, ActDType: engine.BF16})
	if err != nil {
		t.Fatal(err)
	}
	if p.RankParams != n || p.Weights != 2*n || p.Master != 4*n || p.Grads != 4*n || p.Optimizer != 8*n || p.RefPolicy != 0 {
		t.Errorf("device: params %d weights %d master %d grads %d AdamW %d ref %d; want %d and 2, 4, 4, 8, 0 bytes each",
			p.RankParams, p.Weights, p.Master, p.Grads, p.Optimizer, p.RefPolicy, n)
	}
	// Activations per token, bf16: layer 2*(4*8+2*8+2*4+3*6) + 4*(2+4),
	// head 2*2*8 + 4*2, scratch 4*8 + 2*(2*8+2*8+2*4+3*6); 6 tokens.
	layer, head, scratch := int64(2*(32+16+8+18)+4*6), int64(32+8), int64(32+2*(16+16+8+18))
	if want := 6 * (2*layer + head + scratch); p.Activations != want || p.ActFull != want {
		t.Errorf("activations %d, want %d", p.Activations, want)
	}
	if want := 6 * (2*2*8 + layer - 2*8 + head + scratch); p.ActRecompute != want {
		t.Errorf("recompute activations %d, want %d", p.ActRecompute, want)
	}
	// Logits: min(6, 256) positions x 10 x (fp32 + bf16); RoPE 16 x 2 fp32.
	if p.Logits != 6*10*6 || p.Tables != 16*2*4 || p.Opts.LogitsChunkTokens != 6 {
		t.Errorf("logits %d (chunk %d), tables %d", p.Logits, p.Opts.LogitsChunkTokens, p.Tables)
	}
	if sum := p.Weights + p.Master + p.Grads + p.Optimizer + p.Activations + p.Logits + p.Tables; p.GPUResident != sum {
		t.Errorf("resident %d, parts sum to %d", p.GPUResident, sum)
	}

	cpu, err := ForRun(cfg, Run{TP: 1, DP: 1, B: 2, T: 3, ActDType: engine.F32, Optimizer: "sgd", Momentum: true, Recompute: true})
	if err != nil {
		t.Fatal(err)
	}
	if cpu.Weights != 4*n || cpu.Master != 0 || cpu.Optimizer != 4*n || cpu.Logits != 6*10*8 {
		t.Errorf("cpu: weights %d master %d sgd %d logits %d; want %d, 0, %d, 480", cpu.Weights, cpu.Master, cpu.Optimizer, cpu.Logits, 4*n, 4*n)
	}
	if _, re := cpu.Layout.activationsOf(6, 4, 0); cpu.Activations != re || re <= p.ActRecompute {
		t.Errorf("cpu recompute activations %d (fp32 %d, bf16 %d)", cpu.Activations, re, p.ActRecompute)
	}
	if s, _ := ForRun(cfg, Run{TP: 1, DP: 1, B: 1, T: 1, ActDType: engine.F32, Optimizer: "sgd"}); s.Optimizer != 0 {
		t.Errorf("sgd without momentum keeps %d bytes", s.Optimizer)
	}

	// ZeRO-1 over 4 DP ranks: master and moments a quarter (rounded up),
	// weights and gradients whole; without it all whole.
	z, err := ForRun(cfg, Run{TP: 1, DP: 4, B: 2, T: 3, ActDType: engine.BF16, ZeRO: true, Reference: true})
	if err != nil {
		t.Fatal(err)
	}
	shard := int64((n + 3) / 4)
	if z.Master != 4*shard || z.Optimizer != 8*shard || z.Weights != 2*n || z.Grads != 4*n || z.RefPolicy != 2*n {
		t.Errorf("ZeRO-1: master %d AdamW %d weights %d grads %d ref %d (shard %d of %d)", z.Master, z.Optimizer, z.Weights, z.Grads, z.RefPolicy, shard, n)
	}
	if w, _ := ForRun(cfg, Run{TP: 1, DP: 4, B: 2, T: 3, ActDType: engine.BF16}); w.Master != 4*n {
		t.Errorf("DP without ZeRO: master %d, want whole %d", w.Master, 4*n)
	}
}

// Uneven splits: each TP rank is planned for its own slices.
func TestForRunTPRanks(t *testing.T) {
	cfg := tinyCfg(t)
	cfg.Intermediate, cfg.Vocab = 7, 11 // rank 0 holds 4 and 6, rank 1 3 and 5
	var got [2]*Plan
	for r := range 2 {
		p, err := ForRun(cfg, Run{TP: 2, DP: 1, TPRank: r, B: 1, T: 4, ActDType: engine.BF16})
		if err != nil {
			t.Fatal(err)
		}
		held, _, err := p.Layout.RankParams(r)
		if err != nil {
			t.Fatal(err)
		}
		if p.RankParams != held || p.Weights != 2*held {
			t.Errorf("rank %d: %d parameters planned, the layout gives %d", r, p.RankParams, held)
		}
		got[r] = p
	}
	if got[0].Logits != 4*6*6 || got[1].Logits != 4*5*6 {
		t.Errorf("vocab-parallel logits %d, %d; want 144, 120", got[0].Logits, got[1].Logits)
	}
	// One FFN column fewer on rank 1: 3 bf16 tensors (gate, up, act) per
	// layer plus 3 backward ones, 4 tokens, 2 layers.
	if d := got[0].Activations - got[1].Activations; d != 4*(2*3*2+3*2) {
		t.Errorf("rank 0 - rank 1 activations %d, want %d", d, 4*(2*3*2+3*2))
	}
}

func TestForRunRefusesBadRuns(t *testing.T) {
	cfg := tinyCfg(t)
	for _, c := range []struct {
		r    Run
		want string
	}{
		{Run{TP: 0, DP: 1, B: 1, T: 1, ActDType: engine.BF16}, "degrees must be at least 1"},
		{Run{TP: 2, DP: 1, TPRank: 2, B: 1, T: 1, ActDType: engine.BF16}, "rank below TP"},
		{Run{TP: 1, DP: 1, B: 0, T: 1, ActDType: engine.BF16}, "micro-batch 0 x 1"},
		{Run{TP: 1, DP: 1, B: 1, T: 1, ActDType: engine.F16}, "activation dtype"},
		{Run{TP: 1, DP: 1, B: 1, T: 1, ActDType: engine.BF16, Optimizer: "lion"}, `optimizer "lion"`},
		{Run{TP: 3, DP: 1, B: 1, T: 1, ActDType: engine.BF16}, "--tp 3 does not divide num_attention_heads 4"},
	} {
		if _, err := ForRun(cfg, c.r); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.r, err, c.want)
		}
	}
}

// Compare's verdicts: exact categories fail on one byte, the lm-head row
// outside its factor either way, categories the plan does not size are
// reported, and a backend without accounting gives no checks.
func TestCompareVerdicts(t *testing.T) {
	p, err := ForRun(tinyCfg(t), Run{TP: 1, DP: 1, B: 2, T: 3, ActDType: engine.BF16})
	if err != nil {
		t.Fatal(err)
	}
	good := func() map[string]int64 {
		return map[string]int64{
			engine.MemWeights: p.Weights + p.Master, engine.MemGrads: p.Grads, engine.MemOptimizer: p.Optimizer,
			engine.MemActivations: p.Activations, engine.MemScratch: p.Logits, engine.MemOther: p.Tables,
		}
	}
	checks := Compare(p, good())
	if err := Verify(checks); err != nil || len(checks) != 5 {
		t.Fatalf("%d checks, %v", len(checks), err)
	}
	if line := CheckLine(checks); !strings.HasPrefix(line, "measured: weights+master ") || strings.Contains(line, "MISMATCH") {
		t.Errorf("line %q", line)
	}
	for cat, name := range map[string]string{engine.MemWeights: "weights+master", engine.MemGrads: "grads",
		engine.MemOptimizer: "optimizer", engine.MemActivations: "activations"} {
		m := good()
		m[cat]++
		err := Verify(Compare(p, m))
		if err == nil || !strings.Contains(err.Error(), name+" ") || !strings.Contains(err.Error(), "(+1 bytes)") {
			t.Errorf("%s one byte over: %v", cat, err)
		}
	}
	planned := p.Logits + p.Tables
	for _, c := range []struct {
		scratch int64
		ok      bool
	}{{2*planned - p.Tables, true}, {2*planned - p.Tables + 1, false}, {planned/2 - p.Tables, true}, {planned/2 - p.Tables - 1, false}} {
		m := good()
		m[engine.MemScratch] = c.scratch
		if err := Verify(Compare(p, m)); (err == nil) != c.ok {
			t.Errorf("logits+scratch %d of plan %d: %v, want ok=%v", c.scratch+p.Tables, planned, err, c.ok)
		}
	}
	m := good()
	m[engine.MemKVCache] = 1234
	checks = Compare(p, m)
	if last := checks[len(checks)-1]; last.Name != engine.MemKVCache || last.Planned != -1 || !last.OK || !strings.Contains(last.String(), "not planned") {
		t.Errorf("kv cache check %+v", last)
	}
	if Compare(p, nil) != nil || !strings.Contains(CheckLine(nil), "does not account memory") {
		t.Error("a backend without accounting got checks")
	}
	if line := p.RunLine(); !strings.HasPrefix(line, "plan: TP 1 x DP 1, micro-batch 6 tokens, no recompute: weights ") {
		t.Errorf("run line %q", line)
	}
}
