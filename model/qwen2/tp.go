package qwen2

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"purpcode/dist"
	"purpcode/engine"
)

// Tensor parallelism, Megatron style. A shard (see Shard) holds, per layer,
// whole query heads of q (and its bias) and the matching input columns of
// o, a slice of the KV heads, a slice of the intermediate features of
// gate/up (rows) and down (columns), and a slice of the vocabulary of the
// embedding and the lm head. The same Forward, Loss and Backward run on
// every rank with these collectives, all on the rank's TP communicator:
//
//   - forward: one all-reduce of the output of o and of down (row-parallel:
//     each rank holds a partial sum) and of the embedding (a token outside a
//     rank's vocabulary slice looks up zeros);
//   - backward: one all-reduce of the input gradient of the column-parallel
//     projections (gate/up, q/k/v), and of the lm head's (the mirror image);
//   - loss, log-probabilities and entropies (Loss, TokenStats, TokenGrad):
//     vocab-parallel: per-row maxima all-gathered, then sum-exp, the target
//     logit (from the rank that owns it) and for entropies sum-exp*logit
//     all-reduced in one float64 call; no rank ever holds a row's full
//     logits. Only Logits and the decoder's Step, which return whole rows
//     for the caller to sample from, all-gather the rows asked for.
//
// Norm weights are replicated and need no reduction: a norm's input and
// its output gradient are whole and identical on every rank (they come out
// of an all-reduce), so every rank computes the same, complete gradient.
// When there are fewer KV heads than ranks, a KV head is held by several
// ranks and each sees only its own query heads' share of its gradient;
// Backward sums those shares over the ranks that hold the head, so after
// Backward every parameter's gradient on every rank is the exact slice of
// the unsharded model's gradient.

// SplitFunc says which rows rank holds of a parameter (its HF name and
// full shape): indices [lo, hi) of dimension dim, or the whole tensor when
// dim is -1. plan.Layout.Shard is the rule (plan imports this package, so
// the caller adapts it).
type SplitFunc func(name string, shape []int, rank int) (dim, lo, hi int, err error)

// tpState is a shard's view of its tensor-parallel group.
type tpState struct {
	ctx         context.Context
	be          engine.Backend // the shard's
	comm        dist.Comm
	rank, world int
	vocabLo     int       // first vocabulary row the rank holds
	kvLo        int       // first KV head the rank holds
	kvLocal     int       // KV heads the rank holds
	kvAll       int       // the model's KV heads
	kvShared    bool      // some KV head is held by more than one rank
	kvFirst     []bool    // per local KV head: whether this is the lowest rank holding it
	err         error     // first collective failure; later collectives are skipped
	gather      []float32 // sumKVHeads' buffer
}

// Shard returns rank comm.Rank()'s tensor-parallel shard of m, on be (the
// rank's own backend): a model holding only the rank's slices of m's host
// weights (Pull them first when m lives on a device), whose Forward, Loss
// and Backward run the collectives on comm, every rank in step. Cfg stays
// the whole model's; gradients land in the shard's own Params, each the
// slice of the unsharded model's gradient. ctx bounds every collective.
//
// Every operation of the model runs sharded: Forward, Loss, Backward (with
// or without recompute), Logits, TokenStats, TokenGrad and the decoder
// (whose KV cache holds the rank's KV heads).
func (m *Model) Shard(ctx context.Context, be engine.Backend, comm dist.Comm, split SplitFunc) (*Model, error) {
	if m.tp != nil {
		return nil, fmt.Errorf("qwen2: shard of a model that is already a shard")
	}
	if m.P.Flat == nil {
		return nil, fmt.Errorf("qwen2: shard of an inference-only model on a device, which keeps no host copy of its weights: load the shard itself (LoadShardInference)")
	}
	byName := make(map[string]*Param, len(m.P.List))
	for _, p := range m.P.List {
		byName[p.Name] = p
	}
	return NewShard(ctx, m.Cfg, be, comm, split, func(name string, shape []int, dim, lo, hi int, dst []float32) error {
		p := byName[name]
		if p == nil || !engine.SameShape(p.W.Shape, shape) {
			return fmt.Errorf("qwen2: shard: the model has no parameter %s of shape %s", name, engine.ShapeString(shape))
		}
		copySlice(dst, p.W.F32, shape, dim, lo, hi)
		return nil
	})
}

// SliceSource fills dst (hi-lo indices of dimension dim, row-major, or the
// whole tensor when dim is -1) with that slice of the parameter name of
// full shape shape: a whole host model (Shard), the byte ranges of a
// safetensors checkpoint (LoadShardFrom), or a sharded training checkpoint.
type SliceSource func(name string, shape []int, dim, lo, hi int, dst []float32) error

// NewShard builds rank comm.Rank()'s tensor-parallel shard of a model of
// configuration cfg, reading each of the rank's parameter slices from src
// in HF order (see Shard for what a shard is). The whole model never
// exists: each slice goes straight into the shard's weights.
func NewShard(ctx context.Context, cfg *Config, be engine.Backend, comm dist.Comm, split SplitFunc, src SliceSource) (*Model, error) {
	rank, world := comm.Rank(), comm.Size()
	d := cfg.HeadDim
	specs := ParamSpecs(cfg)
	slices := make(map[string][3]int, len(specs))
	for _, p := range specs {
		dim, lo, hi, err := split(p.Name, p.Shape, rank)
		if err != nil {
			return nil, fmt.Errorf("qwen2: shard rank %d of %d: %w", rank, world, err)
		}
		if dim >= len(p.Shape) || dim >= 0 && (lo < 0 || hi > p.Shape[dim] || lo >= hi) {
			return nil, fmt.Errorf("qwen2: shard rank %d of %d: %s %v: bad slice [%d, %d) of dimension %d", rank, world, p.Name, p.Shape, lo, hi, dim)
		}
		slices[p.Name] = [3]int{dim, lo, hi}
	}
	lc := *cfg
	qs, ks := slices["model.layers.0.self_attn.q_proj.weight"], slices["model.layers.0.self_attn.k_proj.weight"]
	gs, es := slices["model.layers.0.mlp.gate_proj.weight"], slices["model.embed_tokens.weight"]
	if qs[0] != 0 || ks[0] != 0 || gs[0] != 0 || es[0] != 0 || qs[1]%d != 0 || qs[2]%d != 0 || ks[1]%d != 0 || ks[2]%d != 0 {
		return nil, fmt.Errorf("qwen2: shard rank %d of %d: q/k, gate and embedding must be split on whole heads and rows (q %v, k %v)", rank, world, qs, ks)
	}
	lc.Heads, lc.KVHeads = (qs[2]-qs[1])/d, (ks[2]-ks[1])/d
	lc.Intermediate, lc.Vocab = gs[2]-gs[1], es[2]-es[1]
	// Logits gathers rows in dist's chunk layout.
	if lo, hi := dist.ChunkRange(cfg.Vocab, world, rank); lo != es[1] || hi != es[2] {
		return nil, fmt.Errorf("qwen2: shard rank %d of %d: vocabulary slice [%d, %d), want [%d, %d)", rank, world, es[1], es[2], lo, hi)
	}
	// Every rank's heads are checked, so that a layout the local attention
	// cannot compute fails on all ranks alike (before any collective); the
	// KV heads each rank holds say whether their gradients need summing.
	held := make([]int, cfg.KVHeads)
	var kvFirst []bool // per local KV head: no lower rank holds it
	for r := range world {
		_, qlo, qhi, qerr := split("model.layers.0.self_attn.q_proj.weight", []int{cfg.Heads * d, cfg.Hidden}, r)
		_, klo, khi, kerr := split("model.layers.0.self_attn.k_proj.weight", []int{cfg.KVHeads * d, cfg.Hidden}, r)
		if err := errors.Join(qerr, kerr); err != nil {
			return nil, fmt.Errorf("qwen2: shard rank %d of %d: %w", r, world, err)
		}
		if err := checkAttention(cfg, qlo/d, (qhi-qlo)/d, klo/d, (khi-klo)/d); err != nil {
			return nil, fmt.Errorf("qwen2: tensor-parallel layout of %d ranks: rank %d: %w", world, r, err)
		}
		for h := klo / d; h < khi/d; h++ {
			if r == rank {
				kvFirst = append(kvFirst, held[h] == 0)
			}
			held[h]++
		}
	}
	kvShared := false
	for _, n := range held {
		kvShared = kvShared || n > 1
	}

	sh := newEmpty(&lc)
	sh.Cfg, sh.lc = cfg, &lc
	for i, p := range specs {
		q := sh.P.List[i]
		s := slices[p.Name]
		want := p.Shape
		if s[0] >= 0 {
			want = append([]int(nil), want...)
			want[s[0]] = s[2] - s[1]
		}
		ref := [3]int{-1, 0, 0}
		switch {
		case strings.Contains(p.Name, "q_proj") || strings.Contains(p.Name, "o_proj"):
			ref = qs
		case strings.Contains(p.Name, "k_proj") || strings.Contains(p.Name, "v_proj"):
			ref = ks
		case strings.Contains(p.Name, "mlp."):
			ref = gs
		case p.Name == "model.embed_tokens.weight" || p.Name == "lm_head.weight":
			ref = es
		}
		if q.Name != p.Name || engine.ShapeString(q.W.Shape) != engine.ShapeString(want) || s[1] != ref[1] || s[2] != ref[2] {
			return nil, fmt.Errorf("qwen2: shard rank %d of %d: %s: slice [%d, %d) of dimension %d is not layer 0's [%d, %d) for its kind", rank, world, p.Name, s[1], s[2], s[0], ref[1], ref[2])
		}
		if err := src(p.Name, p.Shape, s[0], s[1], s[2], q.W.F32); err != nil {
			return nil, fmt.Errorf("qwen2: shard rank %d of %d: %w", rank, world, err)
		}
	}
	sh.bind(be)
	sh.tp = &tpState{ctx: ctx, be: be, comm: comm, rank: rank, world: world, vocabLo: es[1], kvLo: ks[1] / d, kvLocal: lc.KVHeads, kvAll: cfg.KVHeads, kvShared: kvShared, kvFirst: kvFirst}
	return sh, nil
}

// checkAttention verifies that local query head j (global qLo+j) reads the
// same KV head through the local grouping (local KV head j/(nq/nk)) as
// through the model's (global head (qLo+j)/(Heads/KVHeads)).
func checkAttention(cfg *Config, qLo, nq, kLo, nk int) error {
	if nk == 0 || nq%nk != 0 {
		return fmt.Errorf("%d query heads over %d KV heads", nq, nk)
	}
	g, gl := cfg.Heads/cfg.KVHeads, nq/nk
	for j := range nq {
		if (qLo+j)/g != kLo+j/gl {
			return fmt.Errorf("query head %d reads KV head %d, which the rank's KV heads [%d, %d) do not place there", qLo+j, (qLo+j)/g, kLo, kLo+nk)
		}
	}
	return nil
}

// copySlice copies indices [lo, hi) of dimension dim (-1: everything) of
// src, of shape shape, into dst.
func copySlice(dst, src []float32, shape []int, dim, lo, hi int) {
	if dim < 0 {
		copy(dst, src)
		return
	}
	inner := engine.Numel(shape[dim+1:])
	run := (hi - lo) * inner
	for o := range engine.Numel(shape[:dim]) {
		copy(dst[o*run:(o+1)*run], src[(o*shape[dim]+lo)*inner:])
	}
}

// Err is the first collective failure of a shard (nil for an unsharded
// model). Once it is set, the shard skips its remaining collectives and
// its outputs are meaningless: the caller stops.
func (m *Model) Err() error {
	if m.tp == nil {
		return nil
	}
	return m.tp.err
}

// hostF32 returns t's values as host float32: t's own storage on the CPU,
// else a downloaded copy that writeBack returns to the device.
func hostF32(t *engine.Tensor, be engine.Backend) []float32 {
	if !t.OnDevice() {
		return t.F32
	}
	v := make([]float32, t.Numel())
	be.Download(v, t)
	return v
}

func writeBack(t *engine.Tensor, be engine.Backend, v []float32) {
	if t.OnDevice() {
		be.Upload(t, v)
	}
}

// sum all-reduces buf in place; a no-op after a failure.
func (tp *tpState) sum(buf []float32) {
	if tp.err != nil {
		return
	}
	if err := tp.comm.AllReduceSum(tp.ctx, buf); err != nil {
		tp.err = fmt.Errorf("qwen2 tensor parallel rank %d: %w", tp.rank, err)
	}
}

// allReduce sums t over the ranks (nil receiver: unsharded, a no-op).
func (tp *tpState) allReduce(t *engine.Tensor) {
	if tp == nil {
		return
	}
	tp.allReduceOn(t, tp.be)
}

func (tp *tpState) allReduceOn(t *engine.Tensor, be engine.Backend) {
	v := hostF32(t, be)
	tp.sum(v)
	writeBack(t, be, v)
}

// localIDs maps token ids into the rank's vocabulary slice; ids outside it
// become 0 and are reported in out (true: outside).
func (tp *tpState) localIDs(ids []int32, vocab int) ([]int32, []bool) {
	loc, outside := make([]int32, len(ids)), make([]bool, len(ids))
	for i, id := range ids {
		l := int(id) - tp.vocabLo
		if l < 0 || l >= vocab {
			outside[i] = true
			continue
		}
		loc[i] = int32(l)
	}
	return loc, outside
}

// zeroRows clears the rows of t (N, C) flagged in rows.
func (tp *tpState) zeroRows(t *engine.Tensor, be engine.Backend, rows []bool) {
	v := hostF32(t, be)
	c := t.Shape[len(t.Shape)-1]
	for r, z := range rows {
		if z {
			clear(v[r*c : (r+1)*c])
		}
	}
	writeBack(t, be, v)
}

// embedForward looks the ids up in the (vocab-parallel) embedding.
func (m *Model) embedForward(out *engine.Tensor, ids []int32) {
	if m.tp == nil {
		m.be.EmbeddingForward(out, m.P.embed.cw, ids)
		return
	}
	loc, outside := m.tp.localIDs(ids, m.lc.Vocab)
	m.be.EmbeddingForward(out, m.P.embed.cw, loc)
	m.tp.zeroRows(out, m.be, outside)
	m.tp.allReduceOn(out, m.be)
}

// embedBackward accumulates the embedding gradient from dres, the
// gradient of the embedding output (whole on every rank); a rank takes
// only the rows of its vocabulary slice. It overwrites dres's other rows.
func (m *Model) embedBackward(dres *engine.Tensor, ids []int32) {
	if m.tp == nil {
		m.be.EmbeddingBackward(m.P.embed.cg, dres, ids)
		return
	}
	loc, outside := m.tp.localIDs(ids, m.lc.Vocab)
	m.tp.zeroRows(dres, m.be, outside)
	m.be.EmbeddingBackward(m.P.embed.cg, dres, loc)
}

// kvBackward is the backward of the k or v projection (w, bias) given its
// output gradient dout, accumulating its input gradient into dx. A KV head
// held by several ranks gets the sum of their shares of its gradient.
func (m *Model) kvBackward(dx *engine.Tensor, w, bias *Param, dout, x *engine.Tensor) {
	c := m.be
	if m.tp == nil || !m.tp.kvShared {
		c.LinearBackward(dx, w.cg, gradOrNil(bias), dout, x, w.cw, true)
		return
	}
	dw := c.Alloc(engine.F32, w.cg.Shape...)
	defer c.Free(dw)
	var db *engine.Tensor
	if bias != nil {
		db = c.Alloc(engine.F32, bias.cg.Shape...)
		defer c.Free(db)
	}
	c.LinearBackward(dx, dw, db, dout, x, w.cw, true)
	m.tp.sumKVHeads(dw, c)
	addGrad(w.cg, dw, c)
	if db != nil {
		m.tp.sumKVHeads(db, c)
		addGrad(bias.cg, db, c)
	}
}

// addGrad adds d to the F32 gradient g. A device backend's Add is for
// bf16 activations, so there the sum is made on the host (a shared KV
// head's gradient, once per k/v projection and backward; sumKVHeads has
// just been through the host anyway).
func addGrad(g, d *engine.Tensor, be engine.Backend) {
	if !g.OnDevice() {
		be.Add(g, g, d)
		return
	}
	hg, hd := hostF32(g, be), hostF32(d, be)
	for i, v := range hd {
		hg[i] += v
	}
	writeBack(g, be, hg)
}

// sumKVHeads replaces g (the rank's KV heads' rows of a k/v gradient) with
// its sum over every rank holding the same heads: each rank places its
// rows at their heads' offset in a buffer for all KV heads, zeros
// elsewhere, and the buffer is all-reduced (adding zeros is exact, so the
// result is the rank-order sum over the holders).
func (tp *tpState) sumKVHeads(g *engine.Tensor, be engine.Backend) {
	v := hostF32(g, be)
	perHead := len(v) / tp.kvLocal
	n := perHead * tp.kvAll
	if cap(tp.gather) < n {
		tp.gather = make([]float32, n)
	}
	buf := tp.gather[:n]
	clear(buf)
	off := tp.kvLo * perHead
	copy(buf[off:], v)
	tp.sum(buf)
	copy(v, buf[off:off+len(v)])
	writeBack(g, be, v)
}

// gatherLogits returns a shard decoder's logits: each row of out (its
// vocabulary slice) all-gathered into whole rows on the host, which the
// samplers read. The rows are only the step's sampled positions, so this
// is the one place a shard holds whole rows of logits.
func (d *Decoder) gatherLogits(out *engine.Tensor) (*engine.Tensor, error) {
	m := d.m
	rows, vl, v := out.Shape[0], m.lc.Vocab, m.Cfg.Vocab
	if cap(d.host) < rows*v {
		d.host = make([]float32, rows*v)
	}
	full := engine.FromF32(d.host[:rows*v], rows, v)
	zh := hostF32(out, m.be)
	for i := range rows {
		m.tp.allGather(zh[i*vl:(i+1)*vl], full.F32[i*v:(i+1)*v])
	}
	if err := m.Err(); err != nil {
		return nil, fmt.Errorf("decode step: %w", err)
	}
	return full, nil
}

// GradNorm is the L2 norm of the whole model's gradient. On a shard every
// element of the unsharded gradient counts once over the group: the
// replicated norm weights on rank 0 only, a KV head held by several ranks
// on the lowest of them; one float64 all-reduce gives every rank the same
// value. The error is the shard's collective failure.
func (m *Model) GradNorm() (float64, error) {
	tp := m.tp
	if tp == nil {
		return m.P.GradNorm(), nil
	}
	var s float64
	for _, p := range m.P.List {
		switch {
		case isNorm(p.Name):
			if tp.rank == 0 {
				s += m.be.SumSquares(p.cg)
			}
		case tp.kvShared && (strings.Contains(p.Name, "k_proj") || strings.Contains(p.Name, "v_proj")):
			per := p.cg.Numel() / tp.kvLocal
			for j, first := range tp.kvFirst {
				if first {
					s += m.be.SumSquares(p.cg.View(j*per, per))
				}
			}
		default:
			s += m.be.SumSquares(p.cg)
		}
	}
	buf := []float64{s}
	tp.sumF64(buf)
	return math.Sqrt(buf[0]), m.Err()
}
