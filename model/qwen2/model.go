package qwen2

import (
	"fmt"

	"purpcode/engine"
)

// Model is a Qwen2 causal LM on a compute backend.
type Model struct {
	Cfg    *Config
	P      *Params
	be     engine.Backend
	ropeC  *engine.Tensor // (MaxPositions, HeadDim/2) F32, on the backend
	ropeS  *engine.Tensor
	attDim int // Heads*HeadDim
	kvDim  int // KVHeads*HeadDim
	// lc is the configuration the ops compute with: Cfg itself, or on a
	// tensor-parallel shard Cfg with the rank's heads, KV heads,
	// intermediate size and vocabulary slice (see Shard).
	lc *Config
	tp *tpState // nil: not sharded
}

// New returns a model on be with HF-style random initialisation from seed.
func New(cfg *Config, be engine.Backend, seed uint64) *Model {
	m := newEmpty(cfg)
	m.P.initRandom(cfg.InitializerRange, seed)
	m.bind(be)
	return m
}

// newEmpty lays out a model's host parameters; bind puts it on a backend
// once the weights are filled in.
func newEmpty(cfg *Config) *Model {
	return &Model{Cfg: cfg, lc: cfg, P: newParams(cfg), attDim: cfg.Heads * cfg.HeadDim, kvDim: cfg.KVHeads * cfg.HeadDim}
}

// bind makes be the model's backend: the parameters move to it (a no-op
// on the CPU, where the host buffers are the weights) and so do the RoPE
// tables.
func (m *Model) bind(be engine.Backend) {
	var st Storage
	if s, ok := be.(storedOn); ok {
		be, st = s.Backend, s.st
	}
	o, err := st.options(m.P.Count())
	if err != nil {
		// Loaders validate the storage before reading a byte.
		panic(err)
	}
	m.be = be
	m.P.bindWith(be, o)
	cos, sin := engine.RoPETable(m.Cfg.MaxPositions, m.Cfg.HeadDim, m.Cfg.RopeTheta)
	m.ropeC, m.ropeS = toBackend(be, cos), toBackend(be, sin)
}

// storedOn is a backend with the Storage a model bound to it keeps:
// how the loaders pass a storage through NewShard, which binds the shard
// it builds. bind unwraps it; nothing keeps it.
type storedOn struct {
	engine.Backend
	st Storage
}

// Inference reports whether the model was loaded inference-only (see
// Storage): it computes forward passes and token statistics, not
// gradients, and cannot be saved.
func (m *Model) Inference() bool { return m.P.Inference() }

// toBackend returns a copy of host F32 tensor t on be.
func toBackend(be engine.Backend, t *engine.Tensor) *engine.Tensor {
	d := be.Alloc(engine.F32, t.Shape...)
	be.Upload(d, t.F32)
	return d
}

// Backend returns the backend the model computes on.
func (m *Model) Backend() engine.Backend { return m.be }

// CPU returns the model's backend when it is the CPU one, else nil: the
// decoder (KV cache, paged attention) runs on the CPU backend only.
func (m *Model) CPU() *engine.CPU {
	c, _ := m.be.(*engine.CPU)
	return c
}

// Batch is one micro-batch of B rows of T tokens, flattened to N = B*T.
type Batch struct {
	B, T int
	IDs  []int32 // (N) token ids
	Pos  []int32 // (N) position ids; nil means 0..T-1 in every row
	// Seg (N) gives each token's document id within its row; attention is
	// blocked between different consecutive ids (packing). nil: one document
	// per row.
	Seg []int32
	// Targets (N): the token each position should predict (already shifted,
	// see ShiftLabels), engine.IgnoreIndex where no loss applies. nil when
	// only the forward pass is wanted.
	Targets []int32
}

// ShiftLabels turns HF-style labels (the token at each position, -100 to
// ignore) of one row into next-token targets: targets[t] = labels[t+1].
func ShiftLabels(labels []int32) []int32 {
	out := make([]int32, len(labels))
	for t := range out {
		if t+1 < len(labels) {
			out[t] = labels[t+1]
		} else {
			out[t] = engine.IgnoreIndex
		}
	}
	return out
}

// Validate checks a batch against the model: lengths, id ranges and
// positions. It returns an error (user data reaches here) rather than
// letting an op panic.
func (m *Model) Validate(b *Batch) error {
	n := b.B * b.T
	if b.B <= 0 || b.T <= 0 || len(b.IDs) != n {
		return fmt.Errorf("batch: %d ids for B=%d T=%d", len(b.IDs), b.B, b.T)
	}
	for i, id := range b.IDs {
		if id < 0 || int(id) >= m.Cfg.Vocab {
			return fmt.Errorf("batch: token id %d at row %d position %d outside vocab_size %d", id, i/b.T, i%b.T, m.Cfg.Vocab)
		}
	}
	if b.Pos != nil && len(b.Pos) != n {
		return fmt.Errorf("batch: %d position ids for %d tokens", len(b.Pos), n)
	}
	maxPos := int32(b.T - 1)
	for _, p := range b.Pos {
		if p < 0 {
			return fmt.Errorf("batch: negative position id %d", p)
		}
		maxPos = max(maxPos, p)
	}
	if int(maxPos) >= m.Cfg.MaxPositions {
		return fmt.Errorf("batch: position %d beyond max_position_embeddings %d", maxPos, m.Cfg.MaxPositions)
	}
	if b.Seg != nil && len(b.Seg) != n {
		return fmt.Errorf("batch: %d segment ids for %d tokens", len(b.Seg), n)
	}
	if b.Targets != nil {
		if len(b.Targets) != n {
			return fmt.Errorf("batch: %d targets for %d tokens", len(b.Targets), n)
		}
		for i, t := range b.Targets {
			if t != engine.IgnoreIndex && (t < 0 || int(t) >= m.Cfg.Vocab) {
				return fmt.Errorf("batch: target %d at row %d position %d outside vocab_size %d", t, i/b.T, i%b.T, m.Cfg.Vocab)
			}
		}
	}
	return nil
}

// layerActs are the saved activations of one layer.
type layerActs struct {
	in         *engine.Tensor // (N, C) residual stream entering the layer
	ln1, rstd1 *engine.Tensor // (N, C), (N)
	q, k, v    *engine.Tensor // (N, Hq*D), (N, Hk*D) x2; q, k after RoPE
	att, lse   *engine.Tensor // (N, Hq*D), (B*Hq*T)
	mid        *engine.Tensor // (N, C) residual after attention
	ln2, rstd2 *engine.Tensor
	gate, up   *engine.Tensor // (N, I)
	act        *engine.Tensor // (N, I) silu(gate)*up
}

// Acts is the activation arena for one micro-batch shape (B, T): allocated
// once, reused every step, so the steady state does not allocate.
type Acts struct {
	B, T int
	// Recompute is activation checkpointing: only each layer's input is
	// kept per layer, the rest of a layer's activations live in one shared
	// set and Backward recomputes them layer by layer (one more forward
	// pass of compute for ~1/L of the activation memory). Gradients are
	// bit-identical either way: every op is deterministic.
	Recompute bool
	be        engine.Backend
	layers    []layerActs
	out       *engine.Tensor // (N, C) residual after the last layer
	lnf       *engine.Tensor // (N, C) final norm output
	rstdf     *engine.Tensor
	tokLoss   *engine.Tensor // (N) per-position loss
	pos       []int32        // default positions 0..T-1 per row
	// Backward scratch.
	dres, dln, dmid *engine.Tensor
	dq, dk, dv, dat *engine.Tensor
	dgate, dup, dac *engine.Tensor
}

// NewActs allocates activations for micro-batches of shape (B, T) on the
// model's backend: activations in its ActDType; norms' rstd, attention's
// lse, token losses and the residual stream's gradient (to which every
// layer adds its branch) in F32.
func (m *Model) NewActs(b, t int) *Acts { return m.newActs(b, t, false) }

// NewActsRecompute is NewActs with activation checkpointing (see
// Acts.Recompute).
func (m *Model) NewActsRecompute(b, t int) *Acts { return m.newActs(b, t, true) }

func (m *Model) newActs(b, t int, recompute bool) *Acts {
	n, c, i := b*t, m.lc.Hidden, m.lc.Intermediate
	be := engine.Tagged(m.be, engine.MemActivations)
	act := func(shape ...int) *engine.Tensor { return be.Alloc(be.ActDType(), shape...) }
	f32 := func(shape ...int) *engine.Tensor { return be.Alloc(engine.F32, shape...) }
	a := &Acts{B: b, T: t, be: m.be, Recompute: recompute}
	var shared layerActs
	for l := 0; l < m.Cfg.Layers; l++ {
		la := shared
		if l == 0 || !recompute {
			la = layerActs{
				ln1: act(n, c), rstd1: f32(n),
				q: act(n, m.attDim), k: act(n, m.kvDim), v: act(n, m.kvDim),
				att: act(n, m.attDim), lse: f32(b * m.lc.Heads * t),
				mid: act(n, c), ln2: act(n, c), rstd2: f32(n),
				gate: act(n, i), up: act(n, i), act: act(n, i),
			}
			shared = la
		}
		la.in = act(n, c)
		a.layers = append(a.layers, la)
	}
	a.out, a.lnf, a.rstdf, a.tokLoss = act(n, c), act(n, c), f32(n), f32(n)
	a.pos = make([]int32, n)
	for r := 0; r < n; r++ {
		a.pos[r] = int32(r % t)
	}
	a.dres, a.dln, a.dmid = f32(n, c), act(n, c), act(n, c)
	a.dq, a.dk, a.dv, a.dat = act(n, m.attDim), act(n, m.kvDim), act(n, m.kvDim), act(n, m.attDim)
	a.dgate, a.dup, a.dac = act(n, i), act(n, i), act(n, i)
	return a
}

// Free returns the arena's memory to its backend (device memory is freed
// explicitly, never by the collector); a must not be used after.
func (a *Acts) Free() {
	seen := map[*engine.Tensor]bool{}
	free := func(ts ...*engine.Tensor) {
		for _, t := range ts {
			if t != nil && !seen[t] { // a recompute arena's layers share tensors
				seen[t] = true
				a.be.Free(t)
			}
		}
	}
	for i := range a.layers {
		la := &a.layers[i]
		free(la.in, la.ln1, la.rstd1, la.q, la.k, la.v, la.att, la.lse, la.mid, la.ln2, la.rstd2, la.gate, la.up, la.act)
	}
	free(a.out, a.lnf, a.rstdf, a.tokLoss, a.dres, a.dln, a.dmid, a.dq, a.dk, a.dv, a.dat, a.dgate, a.dup, a.dac)
	a.layers = nil
}

func (m *Model) attnShape(a *Acts) engine.AttnShape {
	return engine.AttnShape{B: a.B, T: a.T, Hq: m.lc.Heads, Hk: m.lc.KVHeads, D: m.lc.HeadDim}
}

func (a *Acts) positions(b *Batch) []int32 {
	if b.Pos != nil {
		return b.Pos
	}
	return a.pos
}

// Forward runs the network up to the final norm, saving what Backward
// needs. The batch must have passed Validate and match the arena's shape.
func (m *Model) Forward(a *Acts, b *Batch) {
	if a.B != b.B || a.T != b.T {
		panic(fmt.Sprintf("qwen2.Forward: batch (%d, %d) in activations for (%d, %d)", b.B, b.T, a.B, a.T))
	}
	c, ps := m.be, m.P
	m.embedForward(a.layers[0].in, b.IDs)
	for l := range a.layers {
		next := a.out
		if l+1 < len(a.layers) {
			next = a.layers[l+1].in
		}
		m.layerForward(a, b, l, next)
	}
	c.RMSNormForward(a.lnf, a.rstdf, a.out, ps.norm.cw, m.Cfg.RMSNormEps)
}

// layerForward runs layer l from its saved input a.layers[l].in, filling
// the layer's activations; next (the following layer's input), when not
// nil, receives the layer's output. Backward calls it with next nil to
// recompute a layer's activations under activation checkpointing.
func (m *Model) layerForward(a *Acts, b *Batch, l int, next *engine.Tensor) {
	c, lp, la := m.be, &m.P.layers[l], &a.layers[l]
	pos := a.positions(b)
	c.RMSNormForward(la.ln1, la.rstd1, la.in, lp.ln1.cw, m.Cfg.RMSNormEps)
	c.LinearForward(la.q, la.ln1, lp.q.cw, weightOrNil(lp.qb))
	c.LinearForward(la.k, la.ln1, lp.k.cw, weightOrNil(lp.kb))
	c.LinearForward(la.v, la.ln1, lp.v.cw, weightOrNil(lp.vb))
	c.RoPE(la.q, pos, m.lc.Heads, m.ropeC, m.ropeS, false)
	c.RoPE(la.k, pos, m.lc.KVHeads, m.ropeC, m.ropeS, false)
	c.AttentionForward(la.att, la.lse, la.q, la.k, la.v, b.Seg, m.attnShape(a))
	c.LinearForward(la.mid, la.att, lp.o.cw, nil)
	m.tp.allReduce(la.mid) // o is row-parallel: each rank holds a partial sum
	c.Add(la.mid, la.mid, la.in)
	c.RMSNormForward(la.ln2, la.rstd2, la.mid, lp.ln2.cw, m.Cfg.RMSNormEps)
	c.LinearForward(la.gate, la.ln2, lp.gate.cw, nil)
	c.LinearForward(la.up, la.ln2, lp.up.cw, nil)
	// sigmoid(gate) is not kept: backward recomputes it, which costs one
	// exp per element and saves an (N, I) activation per layer (the
	// largest one; the CUDA kernels never had a use for it).
	c.SwiGLUForward(la.act, nil, la.gate, la.up)
	if next != nil {
		c.LinearForward(next, la.act, lp.down.cw, nil)
		m.tp.allReduce(next)
		c.Add(next, next, la.mid)
	}
}

func weightOrNil(p *Param) *engine.Tensor {
	if p == nil {
		return nil
	}
	return p.cw
}

func gradOrNil(p *Param) *engine.Tensor {
	if p == nil {
		return nil
	}
	return p.cg
}

// Loss computes next-token cross-entropy over b.Targets after Forward. It
// returns the loss sum and the number of counted targets; TokenLoss then
// holds each position's loss. With grad, it also seeds the backward pass
// with d(scale * sum)/d(final norm output) and accumulates the lm head
// gradient; scale is 1/(target tokens of the whole optimizer step).
func (m *Model) Loss(a *Acts, b *Batch, grad bool, scale float32) (float64, int) {
	if b.Targets == nil {
		panic("qwen2.Loss: batch without targets")
	}
	if grad {
		m.P.mustTrain("Loss")
	}
	if m.tp != nil {
		return m.tpLoss(a, b, grad, scale)
	}
	if grad {
		return m.be.LMHeadLoss(a.lnf, m.P.head.cw, b.Targets, a.tokLoss, a.dln, m.P.head.cg, scale)
	}
	return m.be.LMHeadLoss(a.lnf, m.P.head.cw, b.Targets, a.tokLoss, nil, nil, 0)
}

// TokenLoss is the per-position loss (N) of the last Loss call (a host
// copy when the activations live on a device).
func (a *Acts) TokenLoss() []float32 {
	if !a.tokLoss.OnDevice() {
		return a.tokLoss.F32
	}
	out := make([]float32, a.tokLoss.Numel())
	a.be.Download(out, a.tokLoss)
	return out
}

// Hidden is the final-norm output (N, C) of the last Forward.
func (a *Acts) Hidden() *engine.Tensor { return a.lnf }

// Logits writes the logits (len(rows), V) of the given flattened positions
// after Forward into out, a host F32 tensor.
func (m *Model) Logits(a *Acts, rows []int, out *engine.Tensor) {
	if m.tp != nil {
		m.tpLogits(a, rows, out)
		return
	}
	be := m.be
	h := be.Alloc(be.ActDType(), len(rows), m.Cfg.Hidden)
	defer be.Free(h)
	be.GatherRows(h, a.lnf, rows)
	z := be.Alloc(engine.F32, len(rows), m.Cfg.Vocab)
	defer be.Free(z)
	be.LinearForward(z, h, m.P.head.cw, nil)
	be.Download(out.F32, z)
}

// Backward accumulates parameter gradients after Forward and Loss(grad).
func (m *Model) Backward(a *Acts, b *Batch) {
	m.P.mustTrain("Backward")
	c, ps := m.be, m.P
	pos := a.positions(b)
	s := m.attnShape(a)
	c.Zero(a.dres)
	c.RMSNormBackward(a.dres, ps.norm.cg, a.dln, a.out, ps.norm.cw, a.rstdf)
	for l := len(a.layers) - 1; l >= 0; l-- {
		la, lp := &a.layers[l], &ps.layers[l]
		if a.Recompute && l < len(a.layers)-1 {
			// The layers share one set of activation buffers, last
			// written by the last layer's forward: rebuild this layer's.
			m.layerForward(a, b, l, nil)
		}
		// MLP: dres is the gradient of the layer output.
		c.LinearBackward(a.dac, lp.down.cg, nil, a.dres, la.act, lp.down.cw, false)
		c.SwiGLUBackward(a.dgate, a.dup, a.dac, la.gate, la.up, nil)
		c.LinearBackward(a.dln, lp.gate.cg, nil, a.dgate, la.ln2, lp.gate.cw, false)
		c.LinearBackward(a.dln, lp.up.cg, nil, a.dup, la.ln2, lp.up.cw, true)
		// Gate and up are column-parallel: each rank's input gradient is partial.
		m.tp.allReduce(a.dln)
		c.RMSNormBackward(a.dres, lp.ln2.cg, a.dln, la.mid, lp.ln2.cw, la.rstd2) // dres is now d(mid)
		// Attention.
		c.LinearBackward(a.dat, lp.o.cg, nil, a.dres, la.att, lp.o.cw, false)
		c.AttentionBackward(a.dq, a.dk, a.dv, a.dat, la.att, la.lse, la.q, la.k, la.v, b.Seg, s)
		c.RoPE(a.dq, pos, m.lc.Heads, m.ropeC, m.ropeS, true)
		c.RoPE(a.dk, pos, m.lc.KVHeads, m.ropeC, m.ropeS, true)
		c.LinearBackward(a.dln, lp.q.cg, gradOrNil(lp.qb), a.dq, la.ln1, lp.q.cw, false)
		m.kvBackward(a.dln, lp.k, lp.kb, a.dk, la.ln1)
		m.kvBackward(a.dln, lp.v, lp.vb, a.dv, la.ln1)
		m.tp.allReduce(a.dln)
		c.RMSNormBackward(a.dres, lp.ln1.cg, a.dln, la.in, lp.ln1.cw, la.rstd1) // dres is now d(in)
	}
	m.embedBackward(a.dres, b.IDs)
}

// TokenStats fills st with the log-probability of each position's target
// (and the entropy of its distribution when st.Entropy is set) after
// Forward; positions with IgnoreIndex targets get 0.
func (m *Model) TokenStats(a *Acts, b *Batch, st engine.TokenStats) {
	if m.tp != nil {
		m.tpTokenStats(a, b, st)
		return
	}
	m.be.LMHeadTokenStats(a.lnf, m.P.head.cw, b.Targets, st)
}

// TokenGrad seeds the backward pass with the gradient of
// sum_t coefLogp[t]*logp_t + coefEnt[t]*H_t (coefEnt may be nil) and
// accumulates the lm head gradient; call Backward next. Policy-gradient
// losses (GRPO) are expressed through these per-token coefficients.
func (m *Model) TokenGrad(a *Acts, b *Batch, coefLogp, coefEnt []float32) {
	m.P.mustTrain("TokenGrad")
	if m.tp != nil {
		m.tpTokenGrad(a, b, coefLogp, coefEnt)
		return
	}
	m.be.LMHeadTokenGrad(a.lnf, m.P.head.cw, b.Targets, coefLogp, coefEnt, a.dln, m.P.head.cg)
}
