package qwen2

import (
	"fmt"
	"math"
	"math/rand/v2"

	"purpcode/dist"
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
	// An inference-only model (Storage) has no Grad, and on a device no
	// Flat either (its parameters' W keep their shapes, not their values):
	// nothing reads a host copy of weights that never change.
	Flat  []float32
	Grad  []float32
	count int // parameters, which len(Flat) no longer tells when Flat is dropped
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

// Storage is what a model keeps of its parameters on a device backend
// besides the compute copy the ops read (engine.WeightsOptions). The zero
// value is everything a trainer needs: the whole fp32 master and the
// gradients. The CPU backend's compute copy is its master, so there only
// Inference makes a difference (no gradient buffers).
type Storage struct {
	// Inference keeps the compute copy only: no master, no gradients (a
	// frozen GRPO reference, a model that only generates). Backward and
	// the gradient ops panic on such a model; Save and Pull return an
	// error.
	Inference bool
	// ZeRO keeps only this data-parallel rank's chunk of the fp32 master,
	// dist.ChunkRange(n, Ranks, Rank) of the n parameters: the chunk
	// optim.ZeRO1 over a group of Ranks updates on rank Rank, the rest
	// living on the other ranks until optim.PrepareSave gathers it. With
	// Offload none of it is on the device: the optimizer keeps the chunk
	// in host memory.
	ZeRO        bool
	Ranks, Rank int
	Offload     bool
}

// options is s as the backend's weights options for n parameters.
func (s Storage) options(n int) (engine.WeightsOptions, error) {
	switch {
	case s.Inference && s.ZeRO:
		return engine.WeightsOptions{}, fmt.Errorf("qwen2: storage both inference-only and a ZeRO-1 shard")
	case s.Inference:
		return engine.WeightsOptions{Inference: true}, nil
	case !s.ZeRO:
		if s.Offload {
			return engine.WeightsOptions{}, fmt.Errorf("qwen2: optimizer offload without ZeRO-1")
		}
		return engine.WeightsOptions{}, nil
	case s.Ranks < 1 || s.Rank < 0 || s.Rank >= s.Ranks:
		return engine.WeightsOptions{}, fmt.Errorf("qwen2: ZeRO-1 rank %d of %d", s.Rank, s.Ranks)
	}
	lo, hi := dist.ChunkRange(n, s.Ranks, s.Rank)
	if s.Offload {
		hi = lo
	}
	return engine.WeightsOptions{Partial: true, Lo: lo, Hi: hi}, nil
}

// bind puts the parameters on be: the backend's weights are made from the
// host buffers, and every parameter gets its compute views into them.
func (ps *Params) bind(be engine.Backend) { ps.bindWith(be, engine.WeightsOptions{}) }

// bindWith is bind keeping what o says on the device. Inference-only
// parameters have no gradient buffers, host or device.
func (ps *Params) bindWith(be engine.Backend, o engine.WeightsOptions) {
	ps.be = be
	if o.Inference {
		ps.Grad = nil
		for _, p := range ps.List {
			p.G = nil
		}
	}
	ps.count = len(ps.Flat)
	ps.Weights = engine.NewWeightsWith(be, ps.Flat, ps.Grad, o)
	off := 0
	for _, p := range ps.List {
		n := p.W.Numel()
		p.cw = ps.Weights.Compute.View(off, p.W.Shape...)
		if !o.Inference {
			p.cg = ps.Weights.Grad.View(off, p.W.Shape...)
		}
		off += n
	}
	if o.Inference && ps.Weights.Compute.OnDevice() {
		// The device holds the only copy the model reads: a 32B reference
		// sharded over 8 GPUs would otherwise keep 16 GB per rank on the host.
		ps.Flat, ps.Weights.Host = nil, nil
		for _, p := range ps.List {
			p.W.F32 = nil
		}
	}
}

// Inference reports whether the parameters are inference-only (no master
// weights, no gradients: see Storage).
func (ps *Params) Inference() bool { return ps.Weights.Inference() }

// mustTrain panics when the parameters are inference-only: a caller that
// computes gradients of a frozen model is a programming error, not a data
// error.
func (ps *Params) mustTrain(op string) {
	if ps.Weights.Inference() {
		panic(fmt.Sprintf("qwen2.%s: the model was loaded inference-only (no gradients, no master weights); load it with training storage to train it", op))
	}
}

// Pull makes Flat and Grad hold the backend's master weights and
// gradients (on the CPU they are the same memory: nothing to copy). It
// fails on inference-only parameters, which have neither, and on a ZeRO-1
// rank whose master holds only its chunk, unless the chunks were gathered
// into Flat since the last update (optim.PrepareSave does that).
func (ps *Params) Pull() error {
	w := ps.Weights
	if w.Inference() {
		return fmt.Errorf("qwen2: the model was loaded inference-only: it has no master weights or gradients to read")
	}
	if !w.Compute.OnDevice() {
		return nil
	}
	switch {
	case w.MasterWhole():
		ps.be.Download(ps.Flat, w.Master)
	case !w.HostCurrent && w.Master == nil:
		return fmt.Errorf("qwen2: the device holds none of the %d fp32 master weights (ZeRO-1 with offload keeps this rank's chunk in host memory) and they changed since they were last gathered: gather them first (optim.PrepareSave)", w.Len())
	case !w.HostCurrent:
		return fmt.Errorf("qwen2: this rank holds only the ZeRO-1 chunk [%d, %d) of the %d fp32 master weights and they changed since they were last gathered: gather them first (optim.PrepareSave)", w.MasterLo, w.MasterLo+w.Master.Numel(), w.Len())
	}
	ps.be.Download(ps.Grad, w.Grad)
	return nil
}

// Push copies Flat into the backend's master (the part of it the backend
// holds) and compute weights, after the host copy was changed (e.g.
// restored from a checkpoint); Flat is then the current master. An
// offloading ZeRO-1 optimizer keeps its own host copy of its chunk, which
// it reloads only after its PushState (a restore calls both).
func (ps *Params) Push() {
	w := ps.Weights
	ps.mustTrain("Push")
	if w.Compute.OnDevice() {
		if w.Master != nil {
			ps.be.Upload(w.Master, ps.Flat[w.MasterLo:w.MasterLo+w.Master.Numel()])
		}
		ps.be.Upload(w.Compute, ps.Flat)
	}
	w.HostCurrent = true
}

// ZeroGrad clears every gradient.
func (ps *Params) ZeroGrad() {
	ps.mustTrain("ZeroGrad")
	ps.be.Zero(ps.Weights.Grad)
}

// Count is the number of scalar parameters.
func (ps *Params) Count() int {
	if ps.Weights == nil { // not bound yet
		return len(ps.Flat)
	}
	return ps.count
}

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
func (ps *Params) GradNorm() float64 {
	ps.mustTrain("GradNorm")
	return math.Sqrt(ps.be.SumSquares(ps.Weights.Grad))
}
