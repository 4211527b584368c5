package engine

// MatMul computes out = a @ op(b) (+ out when accumulate), with a (M, K) and
// b (N, K) when transB, else (K, N); out (M, N).
func (c *CPU) MatMul(out, a, b *Tensor, transB, accumulate bool) {
	mustF32("MatMul", out, a, b)
	m, k := rowsCols(a)
	var n int
	if transB {
		n = b.Shape[0]
		mustShape("MatMul", "b", b, n, k)
	} else {
		n = b.Shape[1]
		mustShape("MatMul", "b", b, k, n)
	}
	if len(out.F32) != m*n {
		panic("engine.MatMul: out has shape " + ShapeString(out.Shape) + ", want rows*cols = " + ShapeString([]int{m, n}))
	}
	beta := float32(0)
	if accumulate {
		beta = 1
	}
	c.blas.Sgemm(false, transB, m, n, k, 1, a.F32, k, b.F32, b.Shape[1], beta, out.F32, n)
}

// LinearForward computes out (N, O) = x (N, I) @ w^T + bias, with w (O, I)
// and bias (O) or nil. out is overwritten.
func (c *CPU) LinearForward(out, x, w, bias *Tensor) {
	mustF32("LinearForward", out, x, w, bias)
	n, in := rowsCols(x)
	o := w.Shape[0]
	mustShape("LinearForward", "w", w, o, in)
	if out.Numel() != n*o {
		panic("engine.LinearForward: out " + ShapeString(out.Shape) + " for x " + ShapeString(x.Shape) + " and w " + ShapeString(w.Shape))
	}
	beta := float32(0)
	if bias != nil {
		mustShape("LinearForward", "bias", bias, o)
		c.parallel(n, 64, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				copy(out.F32[r*o:(r+1)*o], bias.F32)
			}
		})
		beta = 1
	}
	c.blas.Sgemm(false, true, n, o, in, 1, x.F32, in, w.F32, in, beta, out.F32, o)
}

// LinearBackward propagates dout (N, O) through out = x @ w^T + bias.
// dw (O, I) and db (O) are accumulated into (either may be nil); dx (N, I),
// if not nil, is overwritten, or accumulated into when accumulateDX.
func (c *CPU) LinearBackward(dx, dw, db, dout, x, w *Tensor, accumulateDX bool) {
	mustF32("LinearBackward", dx, dw, db, dout, x, w)
	n, in := rowsCols(x)
	o := w.Shape[0]
	mustShape("LinearBackward", "w", w, o, in)
	if dout.Numel() != n*o {
		panic("engine.LinearBackward: dout " + ShapeString(dout.Shape) + " for x " + ShapeString(x.Shape) + " and w " + ShapeString(w.Shape))
	}
	if dx != nil {
		if dx.Numel() != n*in {
			panic("engine.LinearBackward: dx " + ShapeString(dx.Shape) + " for x " + ShapeString(x.Shape))
		}
		beta := float32(0)
		if accumulateDX {
			beta = 1
		}
		c.blas.Sgemm(false, false, n, in, o, 1, dout.F32, o, w.F32, in, beta, dx.F32, in)
	}
	if dw != nil {
		mustShape("LinearBackward", "dw", dw, o, in)
		c.blas.Sgemm(true, false, o, in, n, 1, dout.F32, o, x.F32, in, 1, dw.F32, in)
	}
	if db != nil {
		mustShape("LinearBackward", "db", db, o)
		colSum(c, db.F32, dout.F32, n, o)
	}
}

// colSum adds the column sums of m (rows x cols) into dst, in float64.
func colSum(c *CPU, dst, m []float32, rows, cols int) {
	const block = 64
	nb := (cols + block - 1) / block
	c.parallel(nb, 1, func(lo, hi int) {
		var acc [block]float64
		for b := lo; b < hi; b++ {
			c0 := b * block
			c1 := min(c0+block, cols)
			w := c1 - c0
			clear(acc[:w])
			for r := 0; r < rows; r++ {
				row := m[r*cols+c0 : r*cols+c1]
				for j, v := range row {
					acc[j] += float64(v)
				}
			}
			for j := 0; j < w; j++ {
				dst[c0+j] += float32(acc[j])
			}
		}
	})
}
