package plan

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"purpcode/internal/testref"
	"purpcode/model/qwen2"
)

func preset(t *testing.T, name string) *qwen2.Config {
	t.Helper()
	cfg, ok, err := Preset(name)
	if err != nil || !ok {
		t.Fatalf("Preset(%q) = %v, %v", name, ok, err)
	}
	return cfg
}

// Qwen2.5-32B: 64 layers, hidden 5120, 40 q / 8 kv heads of 128, FFN
// 27648, vocab 152064, untied head (issue 16's numbers).
func TestPlanPresetShapes(t *testing.T) {
	cfg := preset(t, "qwen2.5-32b")
	got := [...]int{cfg.Layers, cfg.Hidden, cfg.Heads, cfg.KVHeads, cfg.HeadDim, cfg.Intermediate, cfg.Vocab}
	if got != [...]int{64, 5120, 40, 8, 128, 27648, 152064} || cfg.TieEmbeddings {
		t.Fatalf("32B preset shapes %v tied=%v", got, cfg.TieEmbeddings)
	}
	if _, ok, _ := Preset("Qwen2.5-32B-Instruct"); !ok {
		t.Error("the -instruct spelling is not accepted")
	}
	if _, ok, err := Preset("llama-70b"); ok || err != nil {
		t.Errorf("unknown preset: ok=%v err=%v", ok, err)
	}
	if !reflect.DeepEqual(Presets(), []string{"qwen2.5-32b", "qwen2.5-7b"}) {
		t.Errorf("Presets() = %v", Presets())
	}
}

// The presets are the models' real config.json files: their parameter
// counts are PyTorch's (refs/configs/param_counts.json).
func TestPlanPresetsMatchRefs(t *testing.T) {
	dir := testref.Dir(t, "configs")
	data, err := os.ReadFile(filepath.Join(dir, "param_counts.json"))
	if err != nil {
		t.Fatal(err)
	}
	var counts map[string]int64
	if err := json.Unmarshal(data, &counts); err != nil {
		t.Fatal(err)
	}
	for _, name := range Presets() {
		ref, err := qwen2.LoadConfig(filepath.Join(dir, name+"-instruct.config.json"))
		if err != nil {
			t.Fatal(err)
		}
		cfg := preset(t, name)
		if cfg.Hidden != ref.Hidden || cfg.Layers != ref.Layers || cfg.Heads != ref.Heads || cfg.KVHeads != ref.KVHeads ||
			cfg.Intermediate != ref.Intermediate || cfg.Vocab != ref.Vocab || cfg.TieEmbeddings != ref.TieEmbeddings {
			t.Errorf("%s: preset differs from refs' config.json", name)
		}
		l, err := NewLayout(cfg, 1)
		if err != nil {
			t.Fatal(err)
		}
		_, total, err := l.RankParams(0)
		if err != nil {
			t.Fatal(err)
		}
		if want := counts[name+"-instruct"]; total != want {
			t.Errorf("%s: %d parameters, PyTorch counts %d", name, total, want)
		}
	}
}

// TestPlanIssueArithmetic checks the 32B plan on 8 GPUs at TP 8 against
// the numbers issue 16 designs against: bf16 weights 8.2 GB, fp32 master
// 16.4, AdamW 32.8, reference 8.2 per GPU, 32 KiB of KV cache per token
// per GPU; all resident does not fit 80 GB.
func TestPlanIssueArithmetic(t *testing.T) {
	cfg := preset(t, "qwen2.5-32b")
	o := DefaultOptions()
	p, err := New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	// By hand: per layer 2 norms of 5120; q 5120x5120 + bias 5120; k, v
	// 1024x5120 + bias 1024; o 5120x5120; gate, up, down 27648x5120.
	const c, kv, ffn, vocab, layers = 5120, 1024, 27648, 152064, 64
	perLayerSplit := int64(c*c+c) + 2*int64(kv*c+kv) + int64(c*c) + 3*int64(ffn*c)
	norms := int64(2*layers+1) * c
	total := int64(layers)*perLayerSplit + norms + 2*int64(vocab*c)
	if p.Params != total || total != 32_763_876_352 {
		t.Fatalf("parameters %d, by hand %d (PyTorch: 32763876352)", p.Params, total)
	}
	// Every split dimension divides by 8; only the norms are whole.
	rank := (total-norms)/8 + norms
	if p.RankParams != rank {
		t.Fatalf("per-GPU parameters %d, by hand %d", p.RankParams, rank)
	}
	for _, c := range []struct {
		name  string
		got   int64
		bytes int64 // per parameter
		gb    float64
	}{
		{"weights", p.Weights, 2, 8.2}, {"master", p.Master, 4, 16.4}, {"AdamW", p.Optimizer, 8, 32.8},
		{"grads fp32", p.Grads, 4, 16.4}, {"reference", p.RefPolicy, 2, 8.2},
	} {
		if c.got != c.bytes*rank || math.Abs(float64(c.got)/1e9-c.gb) > 0.05 {
			t.Errorf("%s: %d bytes (%.2f GB), want %d x %d = ~%.1f GB", c.name, c.got, float64(c.got)/1e9, c.bytes, rank, c.gb)
		}
	}
	if p.KVBytesPerToken != 32<<10 {
		t.Errorf("KV cache %d bytes per token per GPU, want 32 KiB (2 x 64 layers x 1 kv head x 128 x bf16)", p.KVBytesPerToken)
	}
	// 74-82 GB of weights and optimizer state alone: over 80 GB.
	state := p.Weights + p.Master + p.Optimizer + p.Grads + p.RefPolicy
	if g := float64(state) / 1e9; g < 74 || g > 82 {
		t.Errorf("resident model state %.1f GB, the issue says 74-82", g)
	}
	if err := p.Fit(); err == nil {
		t.Error("8 x 80 GiB without offload fits")
	}
	// With master + AdamW in host memory: ~25 GB of model state stays
	// (bf16 gradients, as in the issue's lower bound).
	o.OptimizerOffload, o.GradBytes = true, 2
	p, err = New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	if g := float64(p.Weights+p.Grads+p.RefPolicy) / 1e9; math.Abs(g-24.6) > 0.1 {
		t.Errorf("resident state with offload %.2f GB, want ~24.6", g)
	}
	if p.HostPerRank != 12*rank || p.HostPerNode != 8*12*rank {
		t.Errorf("host %d per rank, %d per node; want 12 bytes x %d parameters per rank, 8 ranks", p.HostPerRank, p.HostPerNode, rank)
	}
}

// TestPlanActivations checks the activation model per token against the
// saved tensors of model/qwen2, counted by hand for the 32B at TP 8.
func TestPlanActivations(t *testing.T) {
	cfg := preset(t, "qwen2.5-32b")
	l, err := NewLayout(cfg, 8)
	if err != nil {
		t.Fatal(err)
	}
	// Per layer, per token: in, ln1, mid, ln2 (4 x 5120), q and att (2 x 5
	// heads x 128), k and v (2 x 128), gate, up, act (3 x 3456), all bf16;
	// rstd1, rstd2 and 5 log-sum-exps in fp32. After the last layer: out
	// and the final norm in bf16, its rstd and the token loss in fp32.
	// Backward scratch: d(residual) fp32, the rest bf16.
	layer := int64(2*(4*5120+2*640+2*128+3*3456) + 4*(2+5))
	head := int64(2*2*5120 + 4*2)
	scratch := int64(4*5120 + 2*(2*5120+2*640+2*128+3*3456))
	if layer != 64796 {
		t.Fatalf("hand count %d", layer)
	}
	full, re := l.activations(1)
	if full != 64*layer+head+scratch {
		t.Errorf("no recompute: %d bytes per token, want %d", full, 64*layer+head+scratch)
	}
	// Recompute: 64 layer inputs plus one shared set of the rest of a layer.
	if re != 64*2*5120+(layer-2*5120)+head+scratch {
		t.Errorf("recompute: %d bytes per token, want %d", re, 64*2*5120+(layer-2*5120)+head+scratch)
	}
	f2, r2 := l.activations(25600)
	if f2 != 25600*full || r2 != 25600*re {
		t.Errorf("activations do not scale with tokens: %d, %d", f2, r2)
	}
}

func TestPlanZeRO1ShardsOverDP(t *testing.T) {
	cfg := preset(t, "qwen2.5-32b")
	o := DefaultOptions()
	o.GPUs, o.GPUsPerNode = 32, 8
	p, err := New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	if p.DP != 4 || p.ShardElems != (p.RankParams+3)/4 || p.Master != 4*p.ShardElems || p.Optimizer != 8*p.ShardElems {
		t.Errorf("DP %d: shard %d of %d, master %d, AdamW %d", p.DP, p.ShardElems, p.RankParams, p.Master, p.Optimizer)
	}
	if p.Weights != 2*p.RankParams || p.Grads != 4*p.RankParams {
		t.Errorf("weights and grads must stay whole per TP slice: %d, %d", p.Weights, p.Grads)
	}
	// TP 4 on 8 GPUs: DP 2, twice the weights per GPU.
	o.GPUs, o.TP = 8, 4
	q, err := New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	if q.DP != 2 || q.KVBytesPerToken != 64<<10 || math.Abs(float64(q.Weights)/float64(p.Weights)-2) > 1e-3 {
		t.Errorf("TP 4: DP %d, KV %d B/token, weights %d vs %d at TP 8", q.DP, q.KVBytesPerToken, q.Weights, p.Weights)
	}
}

func TestPlanRefusal(t *testing.T) {
	cfg := preset(t, "qwen2.5-32b")
	o := DefaultOptions()
	o.ActivationCheckpointing = true
	p, err := New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Fit()
	if err == nil {
		t.Fatal("32B without offload fits 80 GiB")
	}
	msg := err.Error()
	need := p.Weights + p.Master + p.Optimizer + p.Grads + p.RefPolicy + p.ActRecompute + p.Logits + p.Reserve + 5120*p.KVBytesPerToken
	over := gb(need - o.GPUMem)
	if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "does not fit: needs "+gb(need)+" per GPU") ||
		!strings.Contains(msg, "over by "+over) || !strings.Contains(msg, "--optimizer-offload") || strings.Contains(msg, "--activation-checkpointing") {
		t.Errorf("refusal %q: want one line with the need %s, over by %s, and the unused options", msg, gb(need), over)
	}

	// Offload fits, and what is left is the KV cache.
	o.OptimizerOffload = true
	p, err = New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Fit(); err != nil {
		t.Fatalf("offloaded 32B on 80 GiB: %v", err)
	}
	left := o.GPUMem - (p.Weights + p.Grads + p.RefPolicy + p.ActRecompute + p.Logits + p.Reserve)
	if p.KVBytes != left || p.KVTokens != left/(32<<10) || p.KVTokens < 5120 {
		t.Errorf("KV cache %d bytes = %d tokens, want %d bytes = %d tokens", p.KVBytes, p.KVTokens, left, left/(32<<10))
	}

	// Arenas that fit but leave no KV room for one sequence are refused too.
	o.GPUMem = p.GPUResident + 100*p.KVBytesPerToken
	p, _ = New(cfg, o)
	if err := p.Fit(); err == nil || !strings.Contains(err.Error(), "KV cache of one 5120-token sequence") ||
		!strings.Contains(err.Error(), "over by "+gb(5120*p.KVBytesPerToken-100*p.KVBytesPerToken)) {
		t.Errorf("no KV room: %v", err)
	}

	// Host memory, when given, is checked.
	o.GPUMem, o.HostMem = 80<<30, 256<<30
	p, _ = New(cfg, o)
	if err := p.Fit(); err == nil || !strings.Contains(err.Error(), "over by "+gb(p.HostPerNode-o.HostMem)) {
		t.Errorf("host refusal: %v", err)
	}
}

func TestPlanBadLayouts(t *testing.T) {
	cfg7 := preset(t, "qwen2.5-7b")
	for _, c := range []struct {
		cfg  *qwen2.Config
		mod  func(*Options)
		want string
	}{
		{cfg7, func(o *Options) {}, "--tp 8 does not divide num_attention_heads 28 (whole heads go to a rank; TP can be 1, 2, 4, 7, 14, 28)"},
		{cfg7, func(o *Options) { o.TP = 3; o.GPUs = 8 }, "--tp 3 does not divide --gpus 8"},
		{cfg7, func(o *Options) { o.TP = 4; o.GradBytes = 3 }, "gradient element of 3 bytes"},
		{cfg7, func(o *Options) { o.TP = 4; o.Seq = 0 }, "all must be positive"},
	} {
		o := DefaultOptions()
		c.mod(&o)
		if _, err := New(c.cfg, o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
}

func TestPlanParseBytes(t *testing.T) {
	for in, want := range map[string]int64{
		"80GiB": 80 << 30, "141GB": 141e9, "141 gb": 141e9, "1.5TiB": 3 << 39, "512MiB": 512 << 20,
		"85899345920": 85899345920, "10B": 10, "2KB": 2000,
	} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "-1GB", "80XB", "NaN", "inf", "1e30TB"} {
		if _, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) accepted", in)
		}
	}
}

func TestPlanStringNamesEveryCategory(t *testing.T) {
	o := DefaultOptions()
	o.OptimizerOffload, o.ActivationCheckpointing = true, true
	p, err := New(preset(t, "qwen2.5-32b"), o)
	if err != nil {
		t.Fatal(err)
	}
	s := p.String()
	for _, want := range []string{
		"weights bf16", "master weights fp32", "AdamW m+v fp32", "gradients fp32", "reference policy bf16",
		"activations, recompute per layer", "activations, no recompute", "lm-head logits chunk (4096 x 19008 fp32)",
		"KV cache: ", "32 KiB per token per GPU", gb(p.KVBytes), "host: " + gb(p.HostPerRank) + " pinned per rank",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("plan text lacks %q:\n%s", want, s)
		}
	}
}
