package engine

import (
	"fmt"
	"math"

	"purpcode/kernels"
)

// EmbeddingForward gathers rows: out (N, C) = table[ids] with table (V, C).
// ids must be in [0, V); out is overwritten.
func (c *CPU) EmbeddingForward(out, table *Tensor, ids []int32) {
	mustF32("EmbeddingForward", out, table)
	v, ch := table.Shape[0], table.Shape[1]
	if out.Numel() != len(ids)*ch {
		panic(fmt.Sprintf("engine.EmbeddingForward: out %s for %d ids and table %s", ShapeString(out.Shape), len(ids), ShapeString(table.Shape)))
	}
	c.parallel(len(ids), 64, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			id := int(ids[r])
			if id < 0 || id >= v {
				panic(fmt.Sprintf("engine.EmbeddingForward: id %d at row %d outside vocab of %d", id, r, v))
			}
			copy(out.F32[r*ch:(r+1)*ch], table.F32[id*ch:(id+1)*ch])
		}
	})
}

// EmbeddingBackward accumulates dtable[ids[r]] += dout[r]. Work is split by
// columns, so repeated ids never race and the sum order is fixed.
func (c *CPU) EmbeddingBackward(dtable, dout *Tensor, ids []int32) {
	mustF32("EmbeddingBackward", dtable, dout)
	ch := dtable.Shape[1]
	if dout.Numel() != len(ids)*ch {
		panic(fmt.Sprintf("engine.EmbeddingBackward: dout %s for %d ids and table %s", ShapeString(dout.Shape), len(ids), ShapeString(dtable.Shape)))
	}
	c.parallel(ch, 16, func(lo, hi int) {
		for r, id := range ids {
			dst := dtable.F32[int(id)*ch+lo : int(id)*ch+hi]
			src := dout.F32[r*ch+lo : r*ch+hi]
			for j, g := range src {
				dst[j] += g
			}
		}
	})
}

// RMSNormForward computes out = x / sqrt(mean(x^2) + eps) * w per row, with
// x, out (N, C), w (C); rstd (N) receives 1/sqrt(mean(x^2)+eps) for backward.
func (c *CPU) RMSNormForward(out, rstd, x, w *Tensor, eps float64) {
	mustF32("RMSNormForward", out, rstd, x, w)
	n, ch := rowsCols(x)
	mustShape("RMSNormForward", "w", w, ch)
	if out.Numel() != n*ch || rstd.Numel() != n {
		panic(fmt.Sprintf("engine.RMSNormForward: out %s, rstd %s for x %s", ShapeString(out.Shape), ShapeString(rstd.Shape), ShapeString(x.Shape)))
	}
	c.parallel(n, 16, func(lo, hi int) {
		kernels.RMSNorm(out.F32, rstd.F32, x.F32, w.F32, ch, lo, hi, eps)
	})
}

// RMSNormBackward accumulates into dx (N, C) and dw (C) the gradient of
// RMSNormForward given dout, the forward input x and its saved rstd.
func (c *CPU) RMSNormBackward(dx, dw, dout, x, w, rstd *Tensor) {
	mustF32("RMSNormBackward", dx, dw, dout, x, w, rstd)
	n, ch := rowsCols(x)
	if dx.Numel() != n*ch || dout.Numel() != n*ch || rstd.Numel() != n {
		panic(fmt.Sprintf("engine.RMSNormBackward: dx %s, dout %s, rstd %s for x %s", ShapeString(dx.Shape), ShapeString(dout.Shape), ShapeString(rstd.Shape), ShapeString(x.Shape)))
	}
	mustShape("RMSNormBackward", "dw", dw, ch)
	c.parallel(n, 16, func(lo, hi int) {
		kernels.RMSNormGradX(dx.F32, dout.F32, x.F32, w.F32, rstd.F32, ch, lo, hi)
	})
	// dw is split by columns so the sum over rows keeps a fixed order.
	c.parallel(ch, 64, func(lo, hi int) {
		kernels.RMSNormGradW(dw.F32, dout.F32, x.F32, rstd.F32, n, ch, lo, hi)
	})
}

// RoPETable returns cos and sin tables (P, D/2) for rotate-half rotary
// embeddings: angle(p, i) = p * theta^(-2i/D), computed in float64.
func RoPETable(maxPos, headDim int, theta float64) (cos, sin *Tensor) {
	half := headDim / 2
	cos, sin = New(maxPos, half), New(maxPos, half)
	for i := 0; i < half; i++ {
		inv := 1 / math.Pow(theta, float64(2*i)/float64(headDim))
		for p := 0; p < maxPos; p++ {
			s, co := math.Sincos(float64(p) * inv)
			cos.F32[p*half+i] = float32(co)
			sin.F32[p*half+i] = float32(s)
		}
	}
	return cos, sin
}

// RoPE rotates x (N, H*D) in place by the angles of each row's position
// (rotate-half convention of HF Llama/Qwen2). inverse rotates by the negative
// angle, which is the backward of the forward rotation (it is orthogonal).
// pos values must be < the table's rows.
func (c *CPU) RoPE(x *Tensor, pos []int32, heads int, cos, sin *Tensor, inverse bool) {
	mustF32("RoPE", x, cos, sin)
	n, width := rowsCols(x)
	if n != len(pos) || width%heads != 0 {
		panic(fmt.Sprintf("engine.RoPE: x %s for %d positions and %d heads", ShapeString(x.Shape), len(pos), heads))
	}
	d := width / heads
	half := d / 2
	if cos.Shape[1] != half {
		panic(fmt.Sprintf("engine.RoPE: table %s for head dim %d", ShapeString(cos.Shape), d))
	}
	sign := float32(1)
	if inverse {
		sign = -1
	}
	c.parallel(n, 16, func(lo, hi int) {
		kernels.RoPE(x.F32, pos, heads, d, cos.F32, sin.F32, sign, lo, hi)
	})
}

// SwiGLUForward computes out = silu(gate) * up element-wise; all (N, I).
// sig, when not nil, receives sigmoid(gate) so SwiGLUBackward need not
// recompute the exponentials.
func (c *CPU) SwiGLUForward(out, sig, gate, up *Tensor) {
	mustF32("SwiGLUForward", out, sig, gate, up)
	if gate.Numel() != up.Numel() || out.Numel() != gate.Numel() || (sig != nil && sig.Numel() != gate.Numel()) {
		panic(fmt.Sprintf("engine.SwiGLUForward: out %s, gate %s, up %s", ShapeString(out.Shape), ShapeString(gate.Shape), ShapeString(up.Shape)))
	}
	c.parallel(len(gate.F32), 4096, func(lo, hi int) {
		var sg []float32
		if sig != nil {
			sg = sig.F32[lo:hi]
		}
		kernels.SwiGLU(out.F32[lo:hi], sg, gate.F32[lo:hi], up.F32[lo:hi])
	})
}

// SwiGLUBackward overwrites dgate and dup with the gradients of
// SwiGLUForward given dout. sig is the forward's sigmoid(gate), or nil to
// recompute it.
func (c *CPU) SwiGLUBackward(dgate, dup, dout, gate, up, sig *Tensor) {
	mustF32("SwiGLUBackward", dgate, dup, dout, gate, up, sig)
	n := gate.Numel()
	if up.Numel() != n || dout.Numel() != n || dgate.Numel() != n || dup.Numel() != n || (sig != nil && sig.Numel() != n) {
		panic(fmt.Sprintf("engine.SwiGLUBackward: shapes dgate %s dup %s dout %s gate %s up %s",
			ShapeString(dgate.Shape), ShapeString(dup.Shape), ShapeString(dout.Shape), ShapeString(gate.Shape), ShapeString(up.Shape)))
	}
	c.parallel(n, 4096, func(lo, hi int) {
		var sg []float32
		if sig != nil {
			sg = sig.F32[lo:hi]
		}
		kernels.SwiGLUGrad(dgate.F32[lo:hi], dup.F32[lo:hi], dout.F32[lo:hi], gate.F32[lo:hi], up.F32[lo:hi], sg)
	})
}

// Add computes out = a + b element-wise (out may alias a or b).
func (c *CPU) Add(out, a, b *Tensor) {
	mustF32("Add", out, a, b)
	if a.Numel() != b.Numel() || out.Numel() != a.Numel() {
		panic(fmt.Sprintf("engine.Add: out %s, a %s, b %s", ShapeString(out.Shape), ShapeString(a.Shape), ShapeString(b.Shape)))
	}
	c.parallel(len(a.F32), 8192, func(lo, hi int) {
		kernels.Add(out.F32[lo:hi], a.F32[lo:hi], b.F32[lo:hi])
	})
}

// Zero sets every element to 0.
func (c *CPU) Zero(t *Tensor) {
	mustF32("Zero", t)
	c.parallel(len(t.F32), 1<<16, func(lo, hi int) { clear(t.F32[lo:hi]) })
}
