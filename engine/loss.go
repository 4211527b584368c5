package engine

import (
	"fmt"
	"math"

	"purpcode/kernels"
)

// IgnoreIndex marks a target that contributes neither loss nor gradient
// (the Hugging Face / PyTorch convention).
const IgnoreIndex = -100

// lossChunk is how many token rows of full-vocabulary logits exist at once
// (256 keeps the head GEMMs large enough to run at full BLAS speed):
// the head never materialises (N, V) logits for the whole batch.
const lossChunk = 256

// LMHeadLoss fuses the output projection, log-softmax and cross-entropy:
// for each row r of h (N, C) with targets[r] != IgnoreIndex,
// loss_r = logsumexp(h_r W^T) - (h_r W^T)[targets[r]] with w (V, C).
// tokLoss (N), if not nil, receives each row's loss (0 for ignored rows).
// When dh is not nil it is overwritten with d(scale * sum loss)/dh and
// dw (if not nil) is accumulated into; scale is typically 1/(target tokens
// of the whole optimizer step). Returns the loss sum (float64) and the
// number of counted targets.
func (c *CPU) LMHeadLoss(h, w *Tensor, targets []int32, tokLoss, dh, dw *Tensor, scale float32) (float64, int) {
	mustF32("LMHeadLoss", tokLoss)
	if tokLoss != nil && tokLoss.Numel() != len(targets) {
		panic(fmt.Sprintf("engine.LMHeadLoss: tokLoss %s for %d targets", ShapeString(tokLoss.Shape), len(targets)))
	}
	rowLoss := make([]float64, len(targets))
	c.lmHeadRows("LMHeadLoss", h, w, targets, func(ids []int, tg []int32, z []float32) {
		l := make([]float64, len(ids))
		kernels.XentRows(z, w.Shape[0], tg, l, scale, dh != nil)
		for k, r := range ids {
			rowLoss[r] = l[k]
		}
	}, dh, dw)
	var sum float64
	var count int
	for i, t := range targets {
		if tokLoss != nil {
			tokLoss.F32[i] = float32(rowLoss[i])
		}
		if t != IgnoreIndex {
			sum += rowLoss[i]
			count++
		}
	}
	return sum, count
}

// LogSoftmaxRows computes log-softmax of each row of logits (N, V) into out
// (may alias logits), in float64 internally.
func (c *CPU) LogSoftmaxRows(out, logits *Tensor) {
	mustF32("LogSoftmaxRows", out, logits)
	n, v := rowsCols(logits)
	if out.Numel() != n*v {
		panic(fmt.Sprintf("engine.LogSoftmaxRows: out %s for logits %s", ShapeString(out.Shape), ShapeString(logits.Shape)))
	}
	c.parallel(n, 4, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			zr := logits.F32[r*v : (r+1)*v]
			m := zr[0]
			for _, x := range zr {
				m = max(m, x)
			}
			var se float64
			for _, x := range zr {
				se += math.Exp(float64(x - m))
			}
			lse := float64(m) + math.Log(se)
			o := out.F32[r*v : (r+1)*v]
			for j, x := range zr {
				o[j] = float32(float64(x) - lse)
			}
		}
	})
}
