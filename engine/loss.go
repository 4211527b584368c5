package engine

import (
	"fmt"
	"math"
)

// IgnoreIndex marks a target that contributes neither loss nor gradient
// (the Hugging Face / PyTorch convention).
const IgnoreIndex = -100

// lossChunk is how many token rows of full-vocabulary logits exist at once:
// the head never materialises (N, V) logits for the whole batch.
const lossChunk = 64

// LMHeadLoss fuses the output projection, log-softmax and cross-entropy:
// for each row r of h (N, C) with targets[r] != IgnoreIndex,
// loss_r = logsumexp(h_r W^T) - (h_r W^T)[targets[r]] with w (V, C).
// tokLoss (N), if not nil, receives each row's loss (0 for ignored rows).
// When dh is not nil it is overwritten with d(scale * sum loss)/dh and
// dw (if not nil) is accumulated into; scale is typically 1/(target tokens
// of the whole optimizer step). Returns the loss sum (float64) and the
// number of counted targets.
func (c *CPU) LMHeadLoss(h, w *Tensor, targets []int32, tokLoss, dh, dw *Tensor, scale float32) (float64, int) {
	mustF32("LMHeadLoss", h, w, tokLoss, dh, dw)
	n, ch := rowsCols(h)
	vocab := w.Shape[0]
	mustShape("LMHeadLoss", "w", w, vocab, ch)
	if len(targets) != n || (tokLoss != nil && tokLoss.Numel() != n) || (dh != nil && dh.Numel() != n*ch) {
		panic(fmt.Sprintf("engine.LMHeadLoss: h %s with %d targets", ShapeString(h.Shape), len(targets)))
	}
	if dw != nil {
		mustShape("LMHeadLoss", "dw", dw, vocab, ch)
	}
	logits, _ := c.lossPool.Get().([]float32)
	if len(logits) < lossChunk*vocab {
		logits = make([]float32, lossChunk*vocab)
	}
	defer c.lossPool.Put(logits)
	rowLoss := make([]float64, lossChunk)
	var sum float64
	var count int
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
					rowLoss[i] = 0
					if dh != nil {
						clear(zr)
					}
					continue
				}
				if t < 0 || t >= vocab {
					panic(fmt.Sprintf("engine.LMHeadLoss: target %d at row %d outside vocab of %d", t, r0+i, vocab))
				}
				m := zr[0]
				for _, v := range zr {
					m = max(m, v)
				}
				var se float64
				for _, v := range zr {
					se += float64(expf(v - m))
				}
				lse := float64(m) + math.Log(se)
				rowLoss[i] = lse - float64(zr[t])
				if dh != nil {
					l32 := float32(lse)
					for j, v := range zr {
						zr[j] = expf(v-l32) * scale
					}
					zr[t] -= scale
				}
			}
		})
		for i := 0; i < rows; i++ {
			if tokLoss != nil {
				tokLoss.F32[r0+i] = float32(rowLoss[i])
			}
			if targets[r0+i] != IgnoreIndex {
				sum += rowLoss[i]
				count++
			}
		}
		if dh != nil {
			c.blas.Sgemm(false, false, rows, ch, vocab, 1, z, vocab, w.F32, ch, 0, dh.F32[r0*ch:(r0+rows)*ch], ch)
			if dw != nil {
				c.blas.Sgemm(true, false, vocab, ch, rows, 1, z, vocab, hc, ch, 1, dw.F32, ch)
			}
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
