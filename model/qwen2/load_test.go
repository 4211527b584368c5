package qwen2

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"purpcode/checkpoint"
	"purpcode/engine"
	"purpcode/internal/testref"
)

func tinyConfigJSON(extra string) string {
	return `{"model_type":"qwen2","hidden_size":16,"intermediate_size":24,"num_hidden_layers":2,
	"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":40,"max_position_embeddings":32,
	"rope_theta":10000.0,"rms_norm_eps":1e-6,"tie_word_embeddings":false` + extra + `}`
}

func tinyModel(t *testing.T, extra string) *Model {
	t.Helper()
	cfg, err := ParseConfig([]byte(tinyConfigJSON(extra)), "test config")
	if err != nil {
		t.Fatal(err)
	}
	return New(cfg, engine.NewDefaultCPU(engine.CPUOptions{}), 1)
}

// meanLoss scores a batch and returns the token-mean loss.
func meanLoss(m *Model, b *Batch) float64 {
	a := m.NewActs(b.B, b.T)
	m.Forward(a, b)
	s, n := m.Loss(a, b, false, 0)
	return s / float64(n)
}

func TestBF16CopyLoadsAndScores(t *testing.T) {
	dir := testref.Dir(t, "qwen2-tiny")
	cpu := engine.NewDefaultCPU(engine.CPUOptions{})
	m, err := Load(dir, cpu)
	if err != nil {
		t.Fatal(err)
	}
	b := refBatch(t, dir)
	exp := readExpected(t, dir)
	out := filepath.Join(t.TempDir(), "bf16")
	if err := m.Save(out, SaveOptions{DType: engine.BF16, MaxShardBytes: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "model.safetensors.index.json")); err != nil {
		t.Fatalf("expected a sharded checkpoint: %v", err)
	}
	r, err := checkpoint.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := r.Info("lm_head.weight"); info.DType != engine.BF16 {
		t.Fatalf("saved dtype %s, want BF16", info.DType)
	}
	r.Close()
	m2, err := Load(out, cpu)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Cfg.TorchDType != "bfloat16" {
		t.Errorf("config torch_dtype %q, want bfloat16", m2.Cfg.TorchDType)
	}
	loss := meanLoss(m2, b)
	// bf16 keeps ~3 significant digits per weight: the loss moves a little
	// but must stay close to the float32 model's.
	if rel := math.Abs(loss-exp.Loss) / exp.Loss; rel > 1e-2 || rel == 0 {
		t.Fatalf("bf16 loss %.6f vs float32 reference %.6f (relative %.3g)", loss, exp.Loss, rel)
	}
}

func TestSaveLoadRoundTripIsExact(t *testing.T) {
	m := tinyModel(t, "")
	dir := filepath.Join(t.TempDir(), "m")
	if err := m.Save(dir, SaveOptions{DType: engine.F32}); err != nil {
		t.Fatal(err)
	}
	m2, err := Load(dir, m.Backend())
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.P.Flat {
		if m.P.Flat[i] != m2.P.Flat[i] {
			t.Fatalf("weight %d changed on round trip", i)
		}
	}
}

func TestTiedEmbeddingsShareHead(t *testing.T) {
	m := tinyModel(t, `,"tie_word_embeddings":true`)
	if m.P.Get("lm_head.weight") != nil {
		t.Fatal("tied model has an lm_head parameter")
	}
	b := &Batch{B: 1, T: 5, IDs: []int32{1, 2, 3, 4, 5}, Targets: []int32{2, 3, 4, 5, engine.IgnoreIndex}}
	a := m.NewActs(1, 5)
	m.Forward(a, b)
	m.Loss(a, b, true, 0.25)
	m.Backward(a, b)
	// The embedding gradient gets both the input (rows 1..5) and the head
	// contribution (every vocab row through the softmax).
	g := m.P.Get("model.embed_tokens.weight").G.F32
	row39 := g[39*16 : 40*16]
	var s float64
	for _, v := range row39 {
		s += math.Abs(float64(v))
	}
	if s == 0 {
		t.Fatal("tied head did not accumulate into the embedding gradient")
	}
}

// writeModelDir saves m, then lets mutate edit the tensors and config
// before writing them into a directory for Load.
func writeModelDir(t *testing.T, m *Model, config string, mutate func(ts []checkpoint.Named) []checkpoint.Named) string {
	t.Helper()
	var ts []checkpoint.Named
	for _, p := range m.P.List {
		ts = append(ts, checkpoint.Named{Name: p.Name, T: p.W})
	}
	ts = mutate(ts)
	dir := filepath.Join(t.TempDir(), "model")
	if err := checkpoint.WriteDir(dir, ts, checkpoint.WriteOptions{Files: map[string][]byte{"config.json": []byte(config)}}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoadErrorsNameTensors(t *testing.T) {
	m := tinyModel(t, "")
	cfg := tinyConfigJSON("")
	cases := []struct {
		name   string
		mutate func([]checkpoint.Named) []checkpoint.Named
		want   []string
	}{
		{"missing", func(ts []checkpoint.Named) []checkpoint.Named {
			var out []checkpoint.Named
			for _, t := range ts {
				if t.Name != "model.layers.1.mlp.up_proj.weight" && t.Name != "model.norm.weight" {
					out = append(out, t)
				}
			}
			return out
		}, []string{"2 missing tensors", "model.layers.1.mlp.up_proj.weight", "model.norm.weight"}},
		{"unexpected", func(ts []checkpoint.Named) []checkpoint.Named {
			return append(ts, checkpoint.Named{Name: "model.layers.7.extra.weight", T: engine.New(3)})
		}, []string{"1 unexpected tensors", "model.layers.7.extra.weight"}},
		{"shape", func(ts []checkpoint.Named) []checkpoint.Named {
			for i := range ts {
				if ts[i].Name == "model.layers.0.self_attn.k_proj.weight" {
					ts[i].T = engine.New(16, 16)
				}
			}
			return ts
		}, []string{"model.layers.0.self_attn.k_proj.weight", "shape (16, 16)", "config wants (8, 16)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeModelDir(t, m, cfg, tc.mutate)
			_, err := Load(dir, m.Backend())
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name the directory", err)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	cases := []struct{ json, want string }{
		{`not json`, "not a JSON object"},
		{`[]`, "not a JSON object"},
		{`{"hidden_size":16}`, `"model_type": missing`},
		{strings.Replace(tinyConfigJSON(""), `"qwen2"`, `"gpt2"`, 1), `"model_type": "gpt2" is not supported`},
		{strings.Replace(tinyConfigJSON(""), `"hidden_size":16,`, ``, 1), `"hidden_size": missing`},
		{strings.Replace(tinyConfigJSON(""), `"hidden_size":16`, `"hidden_size":"16"`, 1), `"hidden_size": want a number`},
		{strings.Replace(tinyConfigJSON(""), `"hidden_size":16`, `"hidden_size":-16`, 1), `"hidden_size": -16 must be a positive integer`},
		{strings.Replace(tinyConfigJSON(""), `"num_key_value_heads":2`, `"num_key_value_heads":3`, 1), `"num_key_value_heads": 3 must be positive and divide`},
		{strings.Replace(tinyConfigJSON(""), `"rope_theta":10000.0`, `"rope_theta":0`, 1), `"rope_theta"`},
		{tinyConfigJSON(`,"hidden_act":"gelu"`), `"hidden_act": "gelu" is not supported`},
		{tinyConfigJSON(`,"use_sliding_window":true`), `"use_sliding_window"`},
		{tinyConfigJSON(`,"torch_dtype":"int8"`), `"torch_dtype"`},
		{tinyConfigJSON(`,"eos_token_id":[1,"x"]`), `"eos_token_id"`},
		{tinyConfigJSON(`,"tie_word_embeddings":1`), `"tie_word_embeddings"`},
	}
	for _, tc := range cases {
		_, err := ParseConfig([]byte(tc.json), "dir/config.json")
		if err == nil {
			t.Errorf("config %s: accepted", tc.json)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "dir/config.json") {
			t.Errorf("config %s: error %q, want it to name the file and contain %q", tc.json, err, tc.want)
		}
	}
	c, err := ParseConfig([]byte(tinyConfigJSON(`,"eos_token_id":[7,8],"bos_token_id":3`)), "x")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.EOS) != 2 || c.EOS[1] != 8 || c.BOS != 3 || c.HeadDim != 4 || !c.AttentionBias {
		t.Fatalf("parsed %+v", c)
	}
}

func TestLoadMalformedConfigFile(t *testing.T) {
	m := tinyModel(t, "")
	dir := writeModelDir(t, m, `{"model_type": "qwen2",`, func(ts []checkpoint.Named) []checkpoint.Named { return ts })
	_, err := Load(dir, m.Backend())
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "config.json")) {
		t.Fatalf("error %v does not name config.json", err)
	}
}

func TestValidateRejectsBadBatches(t *testing.T) {
	m := tinyModel(t, "")
	good := func() *Batch {
		return &Batch{B: 1, T: 3, IDs: []int32{1, 2, 3}, Targets: []int32{2, 3, engine.IgnoreIndex}}
	}
	for name, tc := range map[string]struct {
		edit func(*Batch)
		want string
	}{
		"id":        {func(b *Batch) { b.IDs[1] = 40 }, "token id 40"},
		"target":    {func(b *Batch) { b.Targets[0] = -5 }, "target -5"},
		"length":    {func(b *Batch) { b.IDs = b.IDs[:2] }, "2 ids"},
		"positions": {func(b *Batch) { b.Pos = []int32{0, 1, 99} }, "position 99"},
	} {
		b := good()
		tc.edit(b)
		if err := m.Validate(b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
	if err := m.Validate(good()); err != nil {
		t.Fatal(err)
	}
}

// TestPackedRowsEqualSeparateRows checks that packing two documents into
// one row with restarting positions and segment ids gives the same
// per-token losses as scoring them separately.
func TestPackedRowsEqualSeparateRows(t *testing.T) {
	m := tinyModel(t, "")
	d1, d2 := []int32{5, 9, 3, 7}, []int32{11, 2, 8}
	score := func(b *Batch) []float32 {
		a := m.NewActs(b.B, b.T)
		m.Forward(a, b)
		m.Loss(a, b, false, 0)
		return append([]float32(nil), a.TokenLoss()...)
	}
	l1 := score(&Batch{B: 1, T: 4, IDs: d1, Targets: ShiftLabels(d1)})
	l2 := score(&Batch{B: 1, T: 3, IDs: d2, Targets: ShiftLabels(d2)})
	packed := &Batch{B: 1, T: 7, IDs: append(append([]int32{}, d1...), d2...),
		Pos: []int32{0, 1, 2, 3, 0, 1, 2}, Seg: []int32{0, 0, 0, 0, 1, 1, 1},
		Targets: append(ShiftLabels(d1), ShiftLabels(d2)...)}
	lp := score(packed)
	want := append(l1, l2...)
	for i := range want {
		if math.Abs(float64(lp[i]-want[i])) > 1e-5 {
			t.Fatalf("token %d: packed loss %v, separate %v", i, lp[i], want[i])
		}
	}
}

// TestTokenGradMatchesLossGrad: with coefficients -scale on every target,
// the policy-gradient path must reproduce the cross-entropy gradients.
func TestTokenGradMatchesLossGrad(t *testing.T) {
	m := tinyModel(t, "")
	ids := []int32{3, 9, 14, 1, 22, 7, 30, 5}
	b := &Batch{B: 2, T: 4, IDs: ids, Targets: []int32{9, 14, 1, engine.IgnoreIndex, 7, 30, 5, engine.IgnoreIndex}}
	a := m.NewActs(2, 4)
	m.Forward(a, b)
	m.Loss(a, b, true, 1.0/6)
	m.Backward(a, b)
	want := append([]float32(nil), m.P.Grad...)
	m.P.ZeroGrad()
	coef := make([]float32, 8)
	for i := range coef {
		coef[i] = -1.0 / 6
	}
	m.Forward(a, b)
	m.TokenGrad(a, b, coef, nil)
	m.Backward(a, b)
	var d, n float64
	for i := range want {
		x := float64(m.P.Grad[i] - want[i])
		d += x * x
		n += float64(want[i]) * float64(want[i])
	}
	if math.Sqrt(d/n) > 1e-5 {
		t.Fatalf("token-grad path differs from loss path: relative %.3g", math.Sqrt(d/n))
	}
}
