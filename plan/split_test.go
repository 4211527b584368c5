package plan

import (
	"fmt"
	"strings"
	"testing"

	"purpcode/model/qwen2"
)

// tinyConfig is a small Qwen2 config; vocab and intermediate sizes are
// chosen by the caller to make uneven splits.
func tinyConfig(t *testing.T, hidden, heads, kvHeads, inter, vocab, layers int) *qwen2.Config {
	t.Helper()
	js := fmt.Sprintf(`{"model_type":"qwen2","hidden_size":%d,"num_attention_heads":%d,"num_key_value_heads":%d,
		"intermediate_size":%d,"vocab_size":%d,"num_hidden_layers":%d,"max_position_embeddings":64}`,
		hidden, heads, kvHeads, inter, vocab, layers)
	cfg, err := qwen2.ParseConfig([]byte(js), "tiny")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestPlanSplitTiles checks, element by element, that the ranks' slices of
// every parameter cover the whole tensor: split parameters exactly once,
// KV projections a uniform number of times (TP/KVHeads when heads are
// fewer than ranks, TP when neither divides the other), norms on every
// rank; and that the slices agree with each other the way the Megatron
// split needs (o_proj columns = q rows, down columns = gate/up rows, a
// rank's query heads read only its KV heads).
func TestPlanSplitTiles(t *testing.T) {
	for _, c := range []struct {
		heads, kv, inter, vocab, tp int
		kvCover                     int // how often each KV row is held
	}{
		{8, 4, 24, 40, 1, 1},
		{8, 4, 24, 40, 2, 1},
		{8, 4, 24, 40, 4, 1},
		{8, 2, 22, 37, 4, 2}, // kv heads replicated per pair of ranks; uneven FFN and vocab
		{8, 4, 21, 37, 8, 2},
		{6, 3, 20, 11, 2, 2}, // 3 kv heads over 2 ranks: every rank holds all
		{12, 4, 30, 50, 6, 6},
	} {
		name := fmt.Sprintf("hq%d-hk%d-tp%d", c.heads, c.kv, c.tp)
		t.Run(name, func(t *testing.T) {
			cfg := tinyConfig(t, 4*c.heads, c.heads, c.kv, c.inter, c.vocab, 2)
			l, err := NewLayout(cfg, c.tp)
			if err != nil {
				t.Fatal(err)
			}
			var sumHeld int64
			for _, p := range qwen2.ParamSpecs(cfg) {
				split, err := SplitOf(p.Name)
				if err != nil {
					t.Fatal(err)
				}
				numel := 1
				for _, v := range p.Shape {
					numel *= v
				}
				cover := make([]int, numel)
				for r := 0; r < c.tp; r++ {
					s, err := l.Shard(p.Name, p.Shape, r)
					if err != nil {
						t.Fatal(err)
					}
					sumHeld += s.Numel(p.Shape)
					markSlice(cover, p.Shape, s)
				}
				want := 1
				switch {
				case split == Replicated:
					want = c.tp
				case strings.Contains(p.Name, "k_proj") || strings.Contains(p.Name, "v_proj"):
					want = c.kvCover
				}
				for i, n := range cover {
					if n != want {
						t.Fatalf("%s %v: element %d held by %d ranks, want %d", p.Name, p.Shape, i, n, want)
					}
				}
			}
			var held int64
			for r := 0; r < c.tp; r++ {
				h, _, err := l.RankParams(r)
				if err != nil {
					t.Fatal(err)
				}
				held += h
			}
			if held != sumHeld {
				t.Errorf("RankParams sums to %d, slices to %d", held, sumHeld)
			}
			checkConsistent(t, l)
		})
	}
}

// markSlice adds one to every element of a row-major tensor of shape that
// slice s covers, walking all indices (no range arithmetic shared with
// the code under test).
func markSlice(cover []int, shape []int, s Slice) {
	idx := make([]int, len(shape))
	for flat := range cover {
		rem := flat
		for d := len(shape) - 1; d >= 0; d-- {
			idx[d] = rem % shape[d]
			rem /= shape[d]
		}
		if s.Dim < 0 || (idx[s.Dim] >= s.Lo && idx[s.Dim] < s.Hi) {
			cover[flat]++
		}
	}
}

func checkConsistent(t *testing.T, l *Layout) {
	t.Helper()
	cfg := l.Cfg
	d := cfg.HeadDim
	c, i, q, kv := cfg.Hidden, cfg.Intermediate, cfg.Heads*d, cfg.KVHeads*d
	shard := func(name string, shape []int, r int) Slice {
		s, err := l.Shard("model.layers.0."+name, shape, r)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for r := 0; r < l.TP; r++ {
		qs, os := shard("self_attn.q_proj.weight", []int{q, c}, r), shard("self_attn.o_proj.weight", []int{c, q}, r)
		ks := shard("self_attn.k_proj.weight", []int{kv, c}, r)
		gs, us, ds := shard("mlp.gate_proj.weight", []int{i, c}, r), shard("mlp.up_proj.weight", []int{i, c}, r), shard("mlp.down_proj.weight", []int{c, i}, r)
		if qs.Dim != 0 || os.Dim != 1 || qs.Lo != os.Lo || qs.Hi != os.Hi {
			t.Errorf("rank %d: q rows %+v, o columns %+v", r, qs, os)
		}
		if gs != us || ds.Dim != 1 || ds.Lo != gs.Lo || ds.Hi != gs.Hi {
			t.Errorf("rank %d: gate %+v, up %+v, down %+v", r, gs, us, ds)
		}
		if (ks.Hi-ks.Lo)/d != l.KVHeadsPerRank {
			t.Errorf("rank %d holds %d kv heads, layout says %d", r, (ks.Hi-ks.Lo)/d, l.KVHeadsPerRank)
		}
		group := cfg.Heads / cfg.KVHeads
		for h := qs.Lo / d; h < qs.Hi/d; h++ {
			if k := h / group; k < ks.Lo/d || k >= ks.Hi/d {
				t.Errorf("rank %d: query head %d reads kv head %d, rank holds [%d, %d)", r, h, k, ks.Lo/d, ks.Hi/d)
			}
		}
	}
}

func TestPlanSplitRules(t *testing.T) {
	if _, err := SplitOf("model.layers.0.self_attn.q_norm.weight"); err == nil {
		t.Error("a parameter without a rule was given one")
	}
	cfg := tinyConfig(t, 16, 4, 2, 24, 40, 1)
	if _, err := NewLayout(cfg, 3); err == nil || !strings.Contains(err.Error(), "TP can be 1, 2, 4") {
		t.Errorf("TP 3 of 4 heads: %v", err)
	}
	l, err := NewLayout(cfg, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Shard("model.norm.weight", []int{16}, 2); err == nil {
		t.Error("rank outside TP accepted")
	}
}
