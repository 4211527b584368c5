package engine

import (
	"fmt"
	"math"

	"purpcode/kernels"
)

// TokenStats holds per-row outputs of LMHeadTokenStats.
type TokenStats struct {
	LogProb []float32 // log p(target) under softmax(logits)
	Entropy []float32 // -sum p log p of the row's distribution (nil to skip)
}

// LMHeadTokenStats computes, for rows of h (N, C) and head w (V, C), the
// log-probability of each row's target token and (optionally) the entropy
// of the row's distribution, without keeping full logits. Rows whose target
// is IgnoreIndex get 0. These are the per-token quantities of policy-gradient
// losses (GRPO): the caller turns them into coefficients for LMHeadTokenGrad.
func (c *CPU) LMHeadTokenStats(h, w *Tensor, targets []int32, st TokenStats) {
	// Checked before any row is written: rows are written by worker
	// goroutines, where a short slice would crash the process instead of
	// raising this panic in the caller.
	if len(st.LogProb) != len(targets) || (st.Entropy != nil && len(st.Entropy) != len(targets)) {
		panic(fmt.Sprintf("engine.LMHeadTokenStats: %d log-prob and %d entropy slots for %d targets", len(st.LogProb), len(st.Entropy), len(targets)))
	}
	// lmHeadRows visits only rows with a target.
	clear(st.LogProb)
	clear(st.Entropy)
	c.lmHeadRows("LMHeadTokenStats", h, w, targets, eachRow(w.Shape[0], func(i, t int, z []float32) {
		lse, ent := logSumExpEntropy(z, st.Entropy != nil)
		st.LogProb[i] = float32(float64(z[t]) - lse)
		if st.Entropy != nil {
			st.Entropy[i] = float32(ent)
		}
	}), nil, nil)
}

// LMHeadTokenGrad backpropagates L = sum_r a_r * logp_r + e_r * H_r, where
// logp_r is the log-probability of row r's target and H_r the entropy of
// its distribution, into dh (N, C; overwritten) and dw (V, C; accumulated).
// a and e are per-row coefficients (e may be nil); rows with target
// IgnoreIndex contribute nothing. With a_r = -1/N this is the gradient of
// the mean cross-entropy.
func (c *CPU) LMHeadTokenGrad(h, w *Tensor, targets []int32, a, e []float32, dh, dw *Tensor) {
	if len(a) != len(targets) || (e != nil && len(e) != len(targets)) {
		panic(fmt.Sprintf("engine.LMHeadTokenGrad: %d and %d coefficients for %d targets", len(a), len(e), len(targets)))
	}
	mustF32("LMHeadTokenGrad", dh, dw)
	c.lmHeadRows("LMHeadTokenGrad", h, w, targets, eachRow(w.Shape[0], func(i, t int, z []float32) {
		var ei float64
		if e != nil {
			ei = float64(e[i])
		}
		lse, ent := logSumExpEntropy(z, ei != 0)
		ai := float64(a[i])
		// d logp_t/dz_j = [j==t] - p_j;  dH/dz_j = -p_j (log p_j + H).
		for j, v := range z {
			lp := float64(v) - lse
			p := math.Exp(lp)
			g := -ai * p
			if ei != 0 {
				g -= ei * p * (lp + ent)
			}
			z[j] = float32(g)
		}
		z[t] += float32(ai)
	}), dh, dw)
}

// logSumExpEntropy returns logsumexp(z) and, when withEntropy, the entropy
// of softmax(z), in float64.
func logSumExpEntropy(z []float32, withEntropy bool) (lse, ent float64) {
	m := z[0]
	for _, v := range z {
		m = max(m, v)
	}
	var se float64
	for _, v := range z {
		se += float64(kernels.Expf(v - m))
	}
	lse = float64(m) + math.Log(se)
	if withEntropy {
		for _, v := range z {
			lp := float64(v) - lse
			ent -= math.Exp(lp) * lp
		}
	}
	return lse, ent
}

// lossScratch is one lmHeadRows call's buffers: logits of a chunk of
// target rows, the chunk's gathered hidden rows and their gradient, and its
// targets.
type lossScratch struct {
	z, h, dh []float32
	tg       []int32
}

// eachRow adapts a per-row callback (global row, target, logits row) to
// lmHeadRows' chunk callback.
func eachRow(vocab int, row func(i, t int, z []float32)) func(ids []int, tg []int32, z []float32) {
	return func(ids []int, tg []int32, z []float32) {
		for k, r := range ids {
			row(r, int(tg[k]), z[k*vocab:(k+1)*vocab])
		}
	}
}

// lmHeadRows computes the logits of the rows that have a target, lossChunk
// rows at a time, and calls rows(ids, tg, z) concurrently on disjoint parts
// of each chunk: ids are the global row numbers, tg their targets and z
// their logits (len(ids), V). rows may overwrite z with d(loss)/dz, which is
// then backpropagated into dh (overwritten) and dw (accumulated) when they
// are not nil. Rows whose target is IgnoreIndex cost nothing: no logits, and
// a zero row in dh (prompt tokens in SFT, everything but the response in
// GRPO).
func (c *CPU) lmHeadRows(op string, h, w *Tensor, targets []int32, rows func(ids []int, tg []int32, z []float32), dh, dw *Tensor) {
	mustF32(op, h, w)
	n, ch := rowsCols(h)
	vocab := w.Shape[0]
	mustShape(op, "w", w, vocab, ch)
	if len(targets) != n || (dh != nil && dh.Numel() != n*ch) {
		panic(fmt.Sprintf("engine.%s: h %s with %d targets", op, ShapeString(h.Shape), len(targets)))
	}
	if dw != nil {
		mustShape(op, "dw", dw, vocab, ch)
	}
	ids := make([]int, 0, n)
	for r, t := range targets {
		switch {
		case t == IgnoreIndex:
			if dh != nil {
				clear(dh.F32[r*ch : (r+1)*ch])
			}
		case t < 0 || int(t) >= vocab:
			panic(fmt.Sprintf("engine.%s: target %d at row %d outside vocab of %d", op, t, r, vocab))
		default:
			ids = append(ids, r)
		}
	}
	sc, _ := c.lossPool.Get().(*lossScratch)
	if sc == nil || len(sc.z) < lossChunk*vocab || len(sc.h) < lossChunk*ch {
		sc = &lossScratch{z: make([]float32, lossChunk*vocab), h: make([]float32, lossChunk*ch),
			dh: make([]float32, lossChunk*ch), tg: make([]int32, lossChunk)}
	}
	defer c.lossPool.Put(sc)
	for k0 := 0; k0 < len(ids); k0 += lossChunk {
		cid := ids[k0:min(k0+lossChunk, len(ids))]
		m := len(cid)
		// A chunk of consecutive rows (the common case when every token
		// has a target) is used in place; otherwise it is gathered.
		contiguous := cid[m-1]-cid[0] == m-1
		hc := h.F32[cid[0]*ch : (cid[m-1]+1)*ch]
		if !contiguous {
			hc = sc.h[:m*ch]
			for k, r := range cid {
				copy(hc[k*ch:(k+1)*ch], h.F32[r*ch:(r+1)*ch])
			}
		}
		tg := sc.tg[:m]
		for k, r := range cid {
			tg[k] = targets[r]
		}
		z := sc.z[:m*vocab]
		c.blas.Sgemm(false, true, m, vocab, ch, 1, hc, ch, w.F32, ch, 0, z, vocab)
		c.parallel(m, 4, func(lo, hi int) { rows(cid[lo:hi], tg[lo:hi], z[lo*vocab:hi*vocab]) })
		if dh == nil {
			continue
		}
		if contiguous {
			c.blas.Sgemm(false, false, m, ch, vocab, 1, z, vocab, w.F32, ch, 0, dh.F32[cid[0]*ch:(cid[m-1]+1)*ch], ch)
		} else {
			dhc := sc.dh[:m*ch]
			c.blas.Sgemm(false, false, m, ch, vocab, 1, z, vocab, w.F32, ch, 0, dhc, ch)
			for k, r := range cid {
				copy(dh.F32[r*ch:(r+1)*ch], dhc[k*ch:(k+1)*ch])
			}
		}
		if dw != nil {
			c.blas.Sgemm(true, false, vocab, ch, m, 1, z, vocab, hc, ch, 1, dw.F32, ch)
		}
	}
}
