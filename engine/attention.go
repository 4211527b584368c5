package engine

import (
	"fmt"
	"math"
)

// AttnShape describes a batch for causal self-attention: B rows of T tokens,
// Hq query heads and Hk key/value heads (Hq % Hk == 0, grouped-query
// attention) of dimension D. Activations are (B*T, H*D) row-major.
type AttnShape struct{ B, T, Hq, Hk, D int }

func (s AttnShape) check(op string, q, k, v *Tensor) {
	if s.Hk <= 0 || s.Hq%s.Hk != 0 {
		panic(fmt.Sprintf("engine.%s: %d query heads not a multiple of %d kv heads", op, s.Hq, s.Hk))
	}
	mustShape(op, "q", q, s.B*s.T, s.Hq*s.D)
	mustShape(op, "k", k, s.B*s.T, s.Hk*s.D)
	mustShape(op, "v", v, s.B*s.T, s.Hk*s.D)
}

// segStarts returns, for every token of row b, the first index of its
// segment: token i may attend to j iff start[i] <= j <= i. Packed rows put
// several documents in one row with distinct consecutive segment ids; seg ==
// nil means one document per row.
func segStarts(dst []int, seg []int32, b, t int) {
	for i := 0; i < t; i++ {
		switch {
		case i == 0:
			dst[i] = 0
		case seg != nil && seg[b*t+i] != seg[b*t+i-1]:
			dst[i] = i
		default:
			dst[i] = dst[i-1]
		}
	}
}

// attnScratch holds one worker's T x T score buffers and segment starts.
type attnScratch struct {
	s, dp []float32
	start []int
}

// attention runs fn for every (b, kv-head) group in parallel. Each group
// writes only its own slices of the outputs, so results are deterministic.
func (c *CPU) attention(s AttnShape, fn func(b, hk int, sc *attnScratch)) {
	groups := s.B * s.Hk
	c.parallel(groups, 1, func(lo, hi int) {
		sc, _ := c.attnPool.Get().(*attnScratch)
		if sc == nil || len(sc.start) < s.T {
			sc = &attnScratch{s: make([]float32, s.T*s.T), dp: make([]float32, s.T*s.T), start: make([]int, s.T)}
		}
		for g := lo; g < hi; g++ {
			fn(g/s.Hk, g%s.Hk, sc)
		}
		c.attnPool.Put(sc)
	})
}

// probs fills sc.s rows with causal, segment-masked softmax probabilities
// of Q K^T * scale for query head h of row b. lse (B, Hq, T) is written when
// save, else read (backward recomputes P from the saved log-sum-exp).
func (c *CPU) probs(s AttnShape, b, h int, q, k *Tensor, lse []float32, save bool, sc *attnScratch) {
	hk := h / (s.Hq / s.Hk)
	ldq, ldk := s.Hq*s.D, s.Hk*s.D
	scale := float32(1 / math.Sqrt(float64(s.D)))
	qo := b*s.T*ldq + h*s.D
	ko := b*s.T*ldk + hk*s.D
	c.blas.Sgemm(false, true, s.T, s.T, s.D, scale, q.F32[qo:], ldq, k.F32[ko:], ldk, 0, sc.s, s.T)
	lrow := lse[(b*s.Hq+h)*s.T : (b*s.Hq+h+1)*s.T]
	for i := 0; i < s.T; i++ {
		row := sc.s[i*s.T : (i+1)*s.T]
		j0 := sc.start[i]
		var l float64
		if save {
			m := float32(math.Inf(-1))
			for j := j0; j <= i; j++ {
				m = max(m, row[j])
			}
			var sum float64
			for j := j0; j <= i; j++ {
				sum += math.Exp(float64(row[j] - m))
			}
			l = float64(m) + math.Log(sum)
			lrow[i] = float32(l)
		} else {
			l = float64(lrow[i])
		}
		clear(row[:j0])
		for j := j0; j <= i; j++ {
			row[j] = float32(math.Exp(float64(row[j]) - l))
		}
		clear(row[i+1:])
	}
}

// AttentionForward computes causal softmax(Q K^T / sqrt(D)) V per head with
// GQA and an optional per-token segment id (B*T) that blocks attention
// across packed documents. out (B*T, Hq*D) is overwritten; lse (B*Hq*T)
// receives each row's log-sum-exp for AttentionBackward.
func (c *CPU) AttentionForward(out, lse, q, k, v *Tensor, seg []int32, s AttnShape) {
	mustF32("AttentionForward", out, lse, q, k, v)
	s.check("AttentionForward", q, k, v)
	mustShape("AttentionForward", "out", out, s.B*s.T, s.Hq*s.D)
	if lse.Numel() != s.B*s.Hq*s.T || (seg != nil && len(seg) != s.B*s.T) {
		panic(fmt.Sprintf("engine.AttentionForward: lse %s, %d segment ids for %+v", ShapeString(lse.Shape), len(seg), s))
	}
	group := s.Hq / s.Hk
	ldo, ldv := s.Hq*s.D, s.Hk*s.D
	c.attention(s, func(b, hk int, sc *attnScratch) {
		segStarts(sc.start, seg, b, s.T)
		for h := hk * group; h < (hk+1)*group; h++ {
			c.probs(s, b, h, q, k, lse.F32, true, sc)
			c.blas.Sgemm(false, false, s.T, s.D, s.T, 1, sc.s, s.T, v.F32[b*s.T*ldv+hk*s.D:], ldv, 0, out.F32[b*s.T*ldo+h*s.D:], ldo)
		}
	})
}

// AttentionBackward overwrites dq, dk and dv with the gradients of
// AttentionForward given dout, recomputing the probabilities from lse.
func (c *CPU) AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v *Tensor, seg []int32, s AttnShape) {
	mustF32("AttentionBackward", dq, dk, dv, dout, out, lse, q, k, v)
	s.check("AttentionBackward", q, k, v)
	s.check("AttentionBackward", dq, dk, dv)
	mustShape("AttentionBackward", "dout", dout, s.B*s.T, s.Hq*s.D)
	mustShape("AttentionBackward", "out", out, s.B*s.T, s.Hq*s.D)
	group := s.Hq / s.Hk
	ldq, ldk := s.Hq*s.D, s.Hk*s.D
	scale := float32(1 / math.Sqrt(float64(s.D)))
	c.attention(s, func(b, hk int, sc *attnScratch) {
		segStarts(sc.start, seg, b, s.T)
		ko := b*s.T*ldk + hk*s.D
		for i := 0; i < s.T; i++ {
			clear(dk.F32[ko+i*ldk : ko+i*ldk+s.D])
			clear(dv.F32[ko+i*ldk : ko+i*ldk+s.D])
		}
		for h := hk * group; h < (hk+1)*group; h++ {
			c.probs(s, b, h, q, k, lse.F32, false, sc)
			qo := b*s.T*ldq + h*s.D
			// dV += P^T dO
			c.blas.Sgemm(true, false, s.T, s.D, s.T, 1, sc.s, s.T, dout.F32[qo:], ldq, 1, dv.F32[ko:], ldk)
			// dP = dO V^T
			c.blas.Sgemm(false, true, s.T, s.T, s.D, 1, dout.F32[qo:], ldq, v.F32[ko:], ldk, 0, sc.dp, s.T)
			// dS = P * (dP - rowsum(dO * O))
			for i := 0; i < s.T; i++ {
				do := dout.F32[qo+i*ldq : qo+i*ldq+s.D]
				o := out.F32[qo+i*ldq : qo+i*ldq+s.D]
				var di float64
				for d := range do {
					di += float64(do[d]) * float64(o[d])
				}
				p := sc.s[i*s.T : (i+1)*s.T]
				dp := sc.dp[i*s.T : (i+1)*s.T]
				for j := range dp {
					dp[j] = p[j] * (dp[j] - float32(di))
				}
			}
			// dQ = dS K * scale; dK += dS^T Q * scale
			c.blas.Sgemm(false, false, s.T, s.D, s.T, scale, sc.dp, s.T, k.F32[ko:], ldk, 0, dq.F32[qo:], ldq)
			c.blas.Sgemm(true, false, s.T, s.D, s.T, scale, sc.dp, s.T, q.F32[qo:], ldq, 1, dk.F32[ko:], ldk)
		}
	})
}
