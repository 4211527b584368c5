package engine

import (
	"fmt"
	"math"

	"purpcode/kernels"
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
func segStarts(dst []int32, seg []int32, b, t int) {
	for i := 0; i < t; i++ {
		switch {
		case i == 0:
			dst[i] = 0
		case seg != nil && seg[b*t+i] != seg[b*t+i-1]:
			dst[i] = int32(i)
		default:
			dst[i] = dst[i-1]
		}
	}
}

// attnScratch holds one worker's buffers for a group of G query heads that
// share a kv head: the group's queries stacked head-major (G*T, D), their
// scores/probabilities and score gradients (G*T, T), and a (G*T, D) buffer
// for outputs or output gradients. Stacking the group turns per-head
// 256x256x64 products into 4x taller GEMMs that a threaded BLAS runs well,
// and lets dK and dV be one GEMM each over the whole group.
type attnScratch struct {
	qg, s, dp, og []float32
	start         []int32
}

func newAttnScratch(g, t, d int) *attnScratch {
	return &attnScratch{
		qg: make([]float32, g*t*d), og: make([]float32, g*t*d),
		s: make([]float32, g*t*t), dp: make([]float32, g*t*t), start: make([]int32, t),
	}
}

// attention runs fn for every (b, kv-head) group. Each group writes only
// its own slices of the outputs, so results do not depend on scheduling.
// Groups run one after another: the GEMMs inside are threaded by the BLAS,
// and running them from several goroutines at once oversubscribes the cores.
func (c *CPU) attention(s AttnShape, fn func(b, hk int, sc *attnScratch)) {
	g := s.Hq / s.Hk
	sc, _ := c.attnPool.Get().(*attnScratch)
	if sc == nil || len(sc.start) != s.T || len(sc.qg) != g*s.T*s.D {
		sc = newAttnScratch(g, s.T, s.D)
	}
	for grp := 0; grp < s.B*s.Hk; grp++ {
		fn(grp/s.Hk, grp%s.Hk, sc)
	}
	c.attnPool.Put(sc)
}

// gatherHeads copies the G heads of group hk, row b, from x (B*T, H*D) into
// dst (G*T, D) head-major; scatterHeads is the inverse.
func gatherHeads(dst, x []float32, s AttnShape, b, hk int) {
	g, ld := s.Hq/s.Hk, s.Hq*s.D
	for h := 0; h < g; h++ {
		for i := 0; i < s.T; i++ {
			src := x[(b*s.T+i)*ld+(hk*g+h)*s.D:]
			copy(dst[(h*s.T+i)*s.D:(h*s.T+i+1)*s.D], src[:s.D])
		}
	}
}

func scatterHeads(x, src []float32, s AttnShape, b, hk int) {
	g, ld := s.Hq/s.Hk, s.Hq*s.D
	for h := 0; h < g; h++ {
		for i := 0; i < s.T; i++ {
			copy(x[(b*s.T+i)*ld+(hk*g+h)*s.D:][:s.D], src[(h*s.T+i)*s.D:(h*s.T+i+1)*s.D])
		}
	}
}

// probs fills sc.s (G*T, T) with the causal, segment-masked softmax of
// Qg K^T * scale for group (b, hk), whose queries are already in sc.qg. lse
// (B, Hq, T) is written when save, else read: backward recomputes P from the
// saved log-sum-exp instead of storing T*T probabilities per head.
func (c *CPU) probs(s AttnShape, b, hk int, k *Tensor, lse []float32, save bool, sc *attnScratch) {
	g, ldk := s.Hq/s.Hk, s.Hk*s.D
	scale := float32(1 / math.Sqrt(float64(s.D)))
	c.blas.Sgemm(false, true, g*s.T, s.T, s.D, scale, sc.qg, s.D, k.F32[b*s.T*ldk+hk*s.D:], ldk, 0, sc.s, s.T)
	// The group's rows of lse, (G, T), are contiguous in (B, Hq, T).
	lseG := lse[(b*s.Hq+hk*g)*s.T : (b*s.Hq+(hk+1)*g)*s.T]
	c.parallel(g*s.T, 64, func(lo, hi int) {
		kernels.AttnSoftmax(sc.s, s.T, lo, hi, sc.start, lseG, save)
	})
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
	g, ldv := s.Hq/s.Hk, s.Hk*s.D
	c.attention(s, func(b, hk int, sc *attnScratch) {
		segStarts(sc.start, seg, b, s.T)
		gatherHeads(sc.qg, q.F32, s, b, hk)
		c.probs(s, b, hk, k, lse.F32, true, sc)
		c.blas.Sgemm(false, false, g*s.T, s.D, s.T, 1, sc.s, s.T, v.F32[b*s.T*ldv+hk*s.D:], ldv, 0, sc.og, s.D)
		scatterHeads(out.F32, sc.og, s, b, hk)
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
	g, ldk, ldq := s.Hq/s.Hk, s.Hk*s.D, s.Hq*s.D
	scale := float32(1 / math.Sqrt(float64(s.D)))
	c.attention(s, func(b, hk int, sc *attnScratch) {
		segStarts(sc.start, seg, b, s.T)
		gatherHeads(sc.qg, q.F32, s, b, hk)
		c.probs(s, b, hk, k, lse.F32, false, sc)
		gatherHeads(sc.og, dout.F32, s, b, hk) // og now holds dO, head-major
		ko := b*s.T*ldk + hk*s.D
		// dV = P^T dO over the whole group (overwrites).
		c.blas.Sgemm(true, false, s.T, s.D, g*s.T, 1, sc.s, s.T, sc.og, s.D, 0, dv.F32[ko:], ldk)
		// dP = dO V^T
		c.blas.Sgemm(false, true, g*s.T, s.T, s.D, 1, sc.og, s.D, v.F32[ko:], ldk, 0, sc.dp, s.T)
		// dS = P * (dP - rowsum(dO * O))
		outG := out.F32[b*s.T*ldq+hk*g*s.D:]
		c.parallel(g*s.T, 64, func(lo, hi int) {
			kernels.AttnSoftmaxGrad(sc.dp, sc.s, s.T, sc.og, s.D, outG, ldq, lo, hi, sc.start)
		})
		// dK = dS^T Qg * scale over the group (overwrites); dQg = dS K * scale.
		c.blas.Sgemm(true, false, s.T, s.D, g*s.T, scale, sc.dp, s.T, sc.qg, s.D, 0, dk.F32[ko:], ldk)
		c.blas.Sgemm(false, false, g*s.T, s.D, s.T, scale, sc.dp, s.T, k.F32[ko:], ldk, 0, sc.og, s.D)
		scatterHeads(dq.F32, sc.og, s, b, hk)
	})
}
