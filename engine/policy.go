package engine

import (
	"fmt"
	"math"
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
	c.lmHeadRows("LMHeadTokenStats", h, w, targets, func(i, t int, z []float32) {
		lse, ent := logSumExpEntropy(z, st.Entropy != nil)
		st.LogProb[i] = float32(float64(z[t]) - lse)
		if st.Entropy != nil {
			st.Entropy[i] = float32(ent)
		}
	}, nil, nil)
	if len(st.LogProb) != len(targets) || (st.Entropy != nil && len(st.Entropy) != len(targets)) {
		panic(fmt.Sprintf("engine.LMHeadTokenStats: %d log-prob and %d entropy slots for %d targets", len(st.LogProb), len(st.Entropy), len(targets)))
	}
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
	c.lmHeadRows("LMHeadTokenGrad", h, w, targets, func(i, t int, z []float32) {
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
	}, dh, dw)
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
		se += float64(expf(v - m))
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

// lmHeadRows computes logits chunk by chunk and calls row(i, target, z) for
// every row with a target; row may overwrite z with d(loss)/dz, which is
// then backpropagated into dh/dw when they are not nil. Ignored rows get
// zero gradient.
func (c *CPU) lmHeadRows(op string, h, w *Tensor, targets []int32, row func(i, t int, z []float32), dh, dw *Tensor) {
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
	logits, _ := c.lossPool.Get().([]float32)
	if len(logits) < lossChunk*vocab {
		logits = make([]float32, lossChunk*vocab)
	}
	defer c.lossPool.Put(logits)
	for r0 := 0; r0 < n; r0 += lossChunk {
		rows := min(lossChunk, n-r0)
		z := logits[:rows*vocab]
		hc := h.F32[r0*ch : (r0+rows)*ch]
		c.blas.Sgemm(false, true, rows, vocab, ch, 1, hc, ch, w.F32, ch, 0, z, vocab)
		c.parallel(rows, 4, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				t := int(targets[r0+i])
				zr := z[i*vocab : (i+1)*vocab]
				if t == IgnoreIndex {
					clear(zr)
					continue
				}
				if t < 0 || t >= vocab {
					panic(fmt.Sprintf("engine.%s: target %d at row %d outside vocab of %d", op, t, r0+i, vocab))
				}
				row(r0+i, t, zr)
			}
		})
		if dh != nil {
			c.blas.Sgemm(false, false, rows, ch, vocab, 1, z, vocab, w.F32, ch, 0, dh.F32[r0*ch:(r0+rows)*ch], ch)
			if dw != nil {
				c.blas.Sgemm(true, false, vocab, ch, rows, 1, z, vocab, hc, ch, 1, dw.F32, ch)
			}
		}
	}
}
