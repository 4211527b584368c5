package qwen2

import (
	"fmt"
	"math"

	"purpcode/engine"
)

// tpLossChunk is how many token rows of a rank's (rows, V/TP) logits exist
// at once, as in the engine's unsharded head.
const tpLossChunk = 256

// tpLoss is Loss on a shard: vocab-parallel cross-entropy (see tpHeadRows).
func (m *Model) tpLoss(a *Acts, b *Batch, grad bool, scale float32) (float64, int) {
	tok := hostF32(a.tokLoss, m.be)
	clear(tok)
	var sum float64
	count := 0
	var dh, dw *engine.Tensor
	if grad {
		dh, dw = a.dln, m.P.head.cg
	}
	m.tpHeadRows(a.lnf, b.Targets, false, func(r, lt int, z []float32, zt, lse, _ float64) {
		l := lse - zt
		tok[r] = float32(l)
		sum += l
		count++
		if grad {
			for j, v := range z {
				z[j] = float32(math.Exp(float64(v)-lse)) * scale
			}
			if lt >= 0 {
				z[lt] -= scale
			}
		}
	}, dh, dw)
	writeBack(a.tokLoss, m.be, tok)
	return sum, count
}

// tpTokenStats is TokenStats on a shard.
func (m *Model) tpTokenStats(a *Acts, b *Batch, st engine.TokenStats) {
	if len(st.LogProb) != len(b.Targets) || (st.Entropy != nil && len(st.Entropy) != len(b.Targets)) {
		panic(fmt.Sprintf("qwen2.TokenStats: %d log-prob and %d entropy slots for %d targets", len(st.LogProb), len(st.Entropy), len(b.Targets)))
	}
	clear(st.LogProb)
	clear(st.Entropy)
	m.tpHeadRows(a.lnf, b.Targets, st.Entropy != nil, func(r, _ int, _ []float32, zt, lse, ent float64) {
		st.LogProb[r] = float32(zt - lse)
		if st.Entropy != nil {
			st.Entropy[r] = float32(ent)
		}
	}, nil, nil)
}

// tpTokenGrad is TokenGrad on a shard: the gradient of
// sum_r coefLogp[r]*logp_r + coefEnt[r]*H_r through each rank's slice,
// with d logp_t/dz_j = [j==t] - p_j and dH/dz_j = -p_j (log p_j + H).
func (m *Model) tpTokenGrad(a *Acts, b *Batch, coefLogp, coefEnt []float32) {
	if len(coefLogp) != len(b.Targets) || (coefEnt != nil && len(coefEnt) != len(b.Targets)) {
		panic(fmt.Sprintf("qwen2.TokenGrad: %d and %d coefficients for %d targets", len(coefLogp), len(coefEnt), len(b.Targets)))
	}
	m.tpHeadRows(a.lnf, b.Targets, coefEnt != nil, func(r, lt int, z []float32, _, lse, ent float64) {
		ai, ei := float64(coefLogp[r]), 0.0
		if coefEnt != nil {
			ei = float64(coefEnt[r])
		}
		for j, v := range z {
			lp := float64(v) - lse
			p := math.Exp(lp)
			z[j] = float32(-ai*p - ei*p*(lp+ent))
		}
		if lt >= 0 {
			z[lt] += float32(ai)
		}
	}, a.dln, m.P.head.cg)
}

// tpHeadRows is the vocab-parallel lm head. Each rank computes its
// vocabulary slice's logits z for a chunk of rows; the row maxima are
// all-gathered, then each row's sum of exp(z - max), its target's logit
// (non-zero only on the rank that owns the target) and, with withEnt, its
// sum of exp(z - max)*z are all-reduced in one float64 call, so no rank
// ever holds a row's full logits. For each row with a target, row gets the
// row index, the target's index in the slice (-1: another rank's), the
// slice's logits, the target logit, logsumexp and (withEnt) the entropy
// over the whole vocabulary; when dh is not nil, row overwrites z with
// dL/dz, which is backpropagated into dh (overwritten, then all-reduced:
// each rank's slice gives a partial sum) and dw (accumulated). Rows
// without a target get a zero dh row.
func (m *Model) tpHeadRows(h *engine.Tensor, targets []int32, withEnt bool, row func(r, lt int, z []float32, zt, lse, ent float64), dh, dw *engine.Tensor) {
	tp, be, c, vl := m.tp, m.be, m.lc.Hidden, m.lc.Vocab
	n := len(targets)
	chunk := min(n, tpLossChunk)
	z := be.Alloc(engine.F32, chunk, vl)
	defer be.Free(z)
	var dz *engine.Tensor
	if dh != nil {
		dz = be.Alloc(be.ActDType(), chunk, vl)
		defer be.Free(dz)
	}
	for r0 := 0; r0 < n; r0 += chunk {
		rows := min(chunk, n-r0)
		tg := targets[r0 : r0+rows]
		hv := h.View(r0*c, rows, c)
		zv := z.View(0, rows, vl)
		be.LinearForward(zv, hv, m.P.head.cw, nil)
		zh := hostF32(zv, be)
		mx, st := tp.rowStats(zh, tg, rows, vl, withEnt)
		for i, t := range tg {
			zr := zh[i*vl : (i+1)*vl]
			if t == engine.IgnoreIndex {
				clear(zr) // no gradient
				continue
			}
			lse := math.Log(st[i]) + mx[i]
			var ent float64
			if withEnt {
				ent = lse - st[2*rows+i]/st[i]
			}
			lt := int(t) - tp.vocabLo
			if lt < 0 || lt >= vl {
				lt = -1
			}
			row(r0+i, lt, zr, st[rows+i], lse, ent)
		}
		if dh != nil {
			dzv := dz.View(0, rows, vl)
			if dzv.OnDevice() || dzv.DType != engine.F32 {
				be.Upload(dzv, zh)
			} else {
				copy(dzv.F32, zh)
			}
			be.LinearBackward(dh.View(r0*c, rows, c), dw, nil, dzv, hv, m.P.head.cw, false)
		}
	}
	if dh != nil {
		tp.allReduceOn(dh, be)
	}
}

// rowStats returns, for rows of logits z (rows, vl) of the rank's
// vocabulary slice, each row's maximum over the whole vocabulary and, in
// st, each row's sums over the whole vocabulary: of exp(z - max) (st[i]),
// the target logit (st[rows+i]) and with withEnt of exp(z - max)*z
// (st[2*rows+i]).
func (tp *tpState) rowStats(z []float32, targets []int32, rows, vl int, withEnt bool) ([]float64, []float64) {
	local := make([]float32, rows)
	for i := range rows {
		local[i] = float32(math.Inf(-1))
		for _, v := range z[i*vl : (i+1)*vl] {
			local[i] = max(local[i], v)
		}
	}
	all := make([]float32, rows*tp.world)
	tp.allGather(local, all)
	mx := make([]float64, rows)
	for i := range rows {
		m := all[i]
		for r := 1; r < tp.world; r++ {
			m = max(m, all[r*rows+i])
		}
		mx[i] = float64(m)
	}
	k := 2
	if withEnt {
		k = 3
	}
	st := make([]float64, k*rows)
	for i := range rows {
		var s, sz float64
		for _, v := range z[i*vl : (i+1)*vl] {
			e := math.Exp(float64(v) - mx[i])
			s += e
			sz += e * float64(v)
		}
		st[i] = s
		if withEnt {
			st[2*rows+i] = sz
		}
		if l := int(targets[i]) - tp.vocabLo; targets[i] != engine.IgnoreIndex && l >= 0 && l < vl {
			st[rows+i] = float64(z[i*vl+l])
		}
	}
	tp.sumF64(st)
	return mx, st
}

// tpLogits is Logits on a shard: each row's logits are all-gathered from
// the ranks' vocabulary slices (the caller asked for whole rows).
func (m *Model) tpLogits(a *Acts, rows []int, out *engine.Tensor) {
	be, vl, v := m.be, m.lc.Vocab, m.Cfg.Vocab
	h := be.Alloc(be.ActDType(), len(rows), m.Cfg.Hidden)
	defer be.Free(h)
	be.GatherRows(h, a.lnf, rows)
	z := be.Alloc(engine.F32, len(rows), vl)
	defer be.Free(z)
	be.LinearForward(z, h, m.P.head.cw, nil)
	zh := hostF32(z, be)
	for i := range rows {
		m.tp.allGather(zh[i*vl:(i+1)*vl], out.F32[i*v:(i+1)*v])
	}
}

func (tp *tpState) allGather(in, out []float32) {
	if tp.err != nil {
		return
	}
	if err := tp.comm.AllGather(tp.ctx, in, out); err != nil {
		tp.err = fmt.Errorf("qwen2 tensor parallel rank %d: %w", tp.rank, err)
	}
}

func (tp *tpState) sumF64(buf []float64) {
	if tp.err != nil {
		return
	}
	if err := tp.comm.AllReduceSumF64(tp.ctx, buf); err != nil {
		tp.err = fmt.Errorf("qwen2 tensor parallel rank %d: %w", tp.rank, err)
	}
}
