package checkpoint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"purpcode/engine"
	"purpcode/internal/testref"
)

// qwen2Shapes lists the HF tensor names and shapes a Qwen2 config implies,
// so the check does not rely on the reader to say what should be there.
func qwen2Shapes(t *testing.T, configPath string) map[string][]int {
	t.Helper()
	raw, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Hidden, Inter, Layers, Heads, KVHeads, Vocab int
		Tied                                         bool
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", configPath, err)
	}
	num := func(k string) int { return int(m[k].(float64)) }
	c.Hidden, c.Inter, c.Layers = num("hidden_size"), num("intermediate_size"), num("num_hidden_layers")
	c.Heads, c.KVHeads, c.Vocab = num("num_attention_heads"), num("num_key_value_heads"), num("vocab_size")
	c.Tied, _ = m["tie_word_embeddings"].(bool)
	headDim := c.Hidden / c.Heads
	kv := c.KVHeads * headDim
	s := map[string][]int{
		"model.embed_tokens.weight": {c.Vocab, c.Hidden},
		"model.norm.weight":         {c.Hidden},
	}
	if !c.Tied {
		s["lm_head.weight"] = []int{c.Vocab, c.Hidden}
	}
	for i := 0; i < c.Layers; i++ {
		p := fmt.Sprintf("model.layers.%d.", i)
		s[p+"input_layernorm.weight"] = []int{c.Hidden}
		s[p+"post_attention_layernorm.weight"] = []int{c.Hidden}
		s[p+"self_attn.q_proj.weight"] = []int{c.Hidden, c.Hidden}
		s[p+"self_attn.q_proj.bias"] = []int{c.Hidden}
		s[p+"self_attn.k_proj.weight"] = []int{kv, c.Hidden}
		s[p+"self_attn.k_proj.bias"] = []int{kv}
		s[p+"self_attn.v_proj.weight"] = []int{kv, c.Hidden}
		s[p+"self_attn.v_proj.bias"] = []int{kv}
		s[p+"self_attn.o_proj.weight"] = []int{c.Hidden, c.Hidden}
		s[p+"mlp.gate_proj.weight"] = []int{c.Inter, c.Hidden}
		s[p+"mlp.up_proj.weight"] = []int{c.Inter, c.Hidden}
		s[p+"mlp.down_proj.weight"] = []int{c.Hidden, c.Inter}
	}
	return s
}

// readAll loads every tensor of a reader, in name order.
func readAll(t *testing.T, r *Reader) []Named {
	t.Helper()
	var out []Named
	for _, name := range r.Names() {
		tt, err := r.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Named{name, tt})
	}
	return out
}

func TestReadPythonWrittenQwen2Tiny(t *testing.T) {
	dir := filepath.Join(refsDir(t), "qwen2-tiny")
	want := qwen2Shapes(t, filepath.Join(dir, "config.json"))
	for _, open := range []string{dir, filepath.Join(dir, SingleFileName)} {
		r, err := Open(open)
		if err != nil {
			t.Fatal(err)
		}
		names := r.Names()
		if len(names) != len(want) || !sort.StringsAreSorted(names) {
			t.Fatalf("Open(%s): %d names %v, want the %d implied by config.json", open, len(names), names, len(want))
		}
		for _, name := range names {
			info, _ := r.Info(name)
			if !engine.SameShape(info.Shape, want[name]) || info.DType != engine.F32 || !info.Supported {
				t.Fatalf("%s: %s %v, want F32 %v", name, info.RawDType, info.Shape, want[name])
			}
		}
		for _, nt := range readAll(t, r) {
			var sumSq float64
			for _, v := range nt.T.F32 {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("%s holds a non-finite value; decoding is wrong", nt.Name)
				}
				sumSq += float64(v) * float64(v)
			}
			if sumSq == 0 || sumSq/float64(len(nt.T.F32)) > 100 {
				t.Fatalf("%s: mean square %g, not a plausible initialised weight", nt.Name, sumSq/float64(len(nt.T.F32)))
			}
		}
		r.Close()
	}
}

// Re-writing files made by the Python library must reproduce them byte for
// byte: same order, offsets, JSON spelling and padding.
func TestRewriteIsByteIdenticalToPython(t *testing.T) {
	for _, name := range []string{"model.safetensors", "expected_logits.safetensors", "expected_grads.safetensors"} {
		t.Run(name, func(t *testing.T) {
			src := testref.Dir(t, filepath.Join("qwen2-tiny", name))
			orig, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Open(src)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			out := filepath.Join(t.TempDir(), name)
			if err := WriteFile(out, readAll(t, r), r.Metadata()); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, orig) {
				i := 0
				for i < len(got) && i < len(orig) && got[i] == orig[i] {
					i++
				}
				t.Fatalf("rewrite differs from %s at byte %d (len %d vs %d)", src, i, len(got), len(orig))
			}
		})
	}
}
