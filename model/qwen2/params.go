package qwen2

import (
	"fmt"
	"math"
	"math/rand/v2"

	"purpcode/engine"
)

// Param is one named parameter with its gradient. W and G view slices of
// the model's flat weight and gradient buffers, so optimizers and gradient
// reductions can work on one contiguous array.
type Param struct {
	Name  string // Hugging Face tensor name
	W, G  *engine.Tensor
	Decay bool // false for biases and norm weights (no weight decay)
	// cw and cg are the views the ops use, on the model's backend: W and G
	// themselves on the CPU, views of the device weights (ActDType) and
	// gradients (F32) on a device.
	cw, cg *engine.Tensor
}

type layerParams struct {
	ln1, q, qb, k, kb, v, vb, o *Param
	ln2, gate, up, down         *Param
}

// Params is the parameter table in HF order: embeddings, layers, final norm,
// then the lm head when it is not tied.
type Params struct {
	List []*Param
	// Flat and Grad hold every weight and gradient in List order. On the
	// CPU they are the weights; on a device they are host copies that
	// Pull refreshes and Push sends back (checkpoints read and write them).
	Flat []float32
	Grad []float32
	// Weights is the flat storage on the backend the ops and the optimizer
	// use (over Flat and Grad themselves on the CPU).
	Weights *engine.Weights
	be      engine.Backend
	embed   *Param
	layers  []layerParams
	norm    *Param
	head    *Param // == embed when tied
}

// ParamSpec is one entry of the parameter table without storage: what a
// memory planner or a sharded loader needs without allocating a model.
type ParamSpec struct {
	Name  string // Hugging Face tensor name
	Shape []int
	Decay bool // false for biases and norm weights
}

// ParamSpecs lists cfg's parameters in HF order: embeddings, layers, final
// norm, then the lm head when it is not tied.
func ParamSpecs(cfg *Config) []ParamSpec {
	c, i, d := cfg.Hidden, cfg.Intermediate, cfg.HeadDim
	q, kv := cfg.Heads*d, cfg.KVHeads*d
	var specs []ParamSpec
	add := func(name string, decay bool, shape ...int) { specs = append(specs, ParamSpec{name, shape, decay}) }
	add("model.embed_tokens.weight", true, cfg.Vocab, c)
	for l := 0; l < cfg.Layers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		add(p+"input_layernorm.weight", false, c)
		add(p+"self_attn.q_proj.weight", true, q, c)
		if cfg.AttentionBias {
			add(p+"self_attn.q_proj.bias", false, q)
		}
		add(p+"self_attn.k_proj.weight", true, kv, c)
		if cfg.AttentionBias {
			add(p+"self_attn.k_proj.bias", false, kv)
		}
		add(p+"self_attn.v_proj.weight", true, kv, c)
		if cfg.AttentionBias {
			add(p+"self_attn.v_proj.bias", false, kv)
		}
		add(p+"self_attn.o_proj.weight", true, c, q)
		add(p+"post_attention_layernorm.weight", false, c)
		add(p+"mlp.gate_proj.weight", true, i, c)
		add(p+"mlp.up_proj.weight", true, i, c)
		add(p+"mlp.down_proj.weight", true, c, i)
	}
	add("model.norm.weight", false, c)
	if !cfg.TieEmbeddings {
		add("lm_head.weight", true, cfg.Vocab, c)
	}
	return specs
}

// newParams lays out the parameter table for cfg with zeroed storage.
func newParams(cfg *Config) *Params {
	specs := ParamSpecs(cfg)
	total := 0
	for _, s := range specs {
		total += engine.Numel(s.Shape)
	}
	ps := &Params{Flat: make([]float32, total), Grad: make([]float32, total)}
	byName := map[string]*Param{}
	off := 0
	for _, s := range specs {
		n := engine.Numel(s.Shape)
		p := &Param{
			Name:  s.Name,
			W:     engine.FromF32(ps.Flat[off:off+n:off+n], s.Shape...),
			G:     engine.FromF32(ps.Grad[off:off+n:off+n], s.Shape...),
			Decay: s.Decay,
		}
		off += n
		ps.List = append(ps.List, p)
		byName[s.Name] = p
	}
	ps.embed = byName["model.embed_tokens.weight"]
	ps.norm = byName["model.norm.weight"]
	ps.head = ps.embed
	if !cfg.TieEmbeddings {
		ps.head = byName["lm_head.weight"]
	}
	for l := 0; l < cfg.Layers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		ps.layers = append(ps.layers, layerParams{
			ln1: byName[p+"input_layernorm.weight"],
			q:   byName[p+"self_attn.q_proj.weight"], qb: byName[p+"self_attn.q_proj.bias"],
			k: byName[p+"self_attn.k_proj.weight"], kb: byName[p+"self_attn.k_proj.bias"],
			v: byName[p+"self_attn.v_proj.weight"], vb: byName[p+"self_attn.v_proj.bias"],
			o:    byName[p+"self_attn.o_proj.weight"],
			ln2:  byName[p+"post_attention_layernorm.weight"],
			gate: byName[p+"mlp.gate_proj.weight"], up: byName[p+"mlp.up_proj.weight"], down: byName[p+"mlp.down_proj.weight"],
		})
	}
	return ps
}

// Get returns the parameter with an HF name, or nil.
func (ps *Params) Get(name string) *Param {
	for _, p := range ps.List {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// bind puts the parameters on be: the backend's weights are made from the
// host buffers, and every parameter gets its compute views into them.
func (ps *Params) bind(be engine.Backend) {
	ps.be = be
	ps.Weights = be.NewWeights(ps.Flat, ps.Grad)
	off := 0
	for _, p := range ps.List {
		n := p.W.Numel()
		p.cw = ps.Weights.Compute.View(off, p.W.Shape...)
		p.cg = ps.Weights.Grad.View(off, p.W.Shape...)
		off += n
	}
}

// Pull copies the backend's master weights and gradients into Flat and
// Grad (a no-op on the CPU, where they are the same memory).
func (ps *Params) Pull() {
	if ps.Weights.Master.OnDevice() {
		ps.be.Download(ps.Flat, ps.Weights.Master)
		ps.be.Download(ps.Grad, ps.Weights.Grad)
	}
}

// Push copies Flat into the backend's master and compute weights (after
// the host copy was changed, e.g. restored from a checkpoint).
func (ps *Params) Push() {
	if ps.Weights.Master.OnDevice() {
		ps.be.Upload(ps.Weights.Master, ps.Flat)
		ps.be.Upload(ps.Weights.Compute, ps.Flat)
	}
}

// ZeroGrad clears every gradient.
func (ps *Params) ZeroGrad() { ps.be.Zero(ps.Weights.Grad) }

// Count is the number of scalar parameters.
func (ps *Params) Count() int { return len(ps.Flat) }

// initRandom fills weights like HF's _init_weights: normal(0, std) for
// matrices and embeddings, ones for norms, zeros for biases.
func (ps *Params) initRandom(std float64, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	for _, p := range ps.List {
		switch {
		case !p.Decay && len(p.W.Shape) == 1 && isNorm(p.Name):
			for i := range p.W.F32 {
				p.W.F32[i] = 1
			}
		case !p.Decay:
			clear(p.W.F32)
		default:
			for i := range p.W.F32 {
				p.W.F32[i] = float32(r.NormFloat64() * std)
			}
		}
	}
}

func isNorm(name string) bool {
	return name == "model.norm.weight" || hasSuffix(name, "layernorm.weight")
}

func hasSuffix(s, suf string) bool { return len(s) >= len(suf) && s[len(s)-len(suf):] == suf }

// GradNorm returns the L2 norm of all gradients, accumulated in float64.
func (ps *Params) GradNorm() float64 { return math.Sqrt(ps.be.SumSquares(ps.Weights.Grad)) }
