package cuda

import (
	"fmt"

	"purpcode/engine"
	"purpcode/kernels"
)

// gemm computes c = alpha*op(a)*op(bm) + beta*c, row-major, with bf16 a and
// bm and bf16 or F32 c (fp32 accumulation either way): op(a) is m x k and
// op(bm) is k x n. Plans are made once per shape and alignment.
func (b *Backend) gemm(op string, transA, transB bool, m, n, k int, alpha, beta float32, a, bm, c *engine.Tensor) {
	mustType(op, "A", a, engine.BF16)
	mustType(op, "B", bm, engine.BF16)
	spec := kernels.GemmSpec{
		M: m, N: n, K: k, TransA: transA, TransB: transB, OutF32: c.DType == engine.F32,
		Workspace: b.wsBytes, MinAlign: alignOf(a.Dev, bm.Dev, c.Dev),
	}
	g := b.gemms[spec]
	if g == nil {
		var err error
		g, err = b.lt.Plan(spec)
		check(op, err)
		b.gemms[spec] = g
	}
	check(op, g.Run(b.ctx, b.lt, alpha, beta, a.Dev, bm.Dev, c.Dev, c.Dev, b.workspace, kernels.Stream{}))
}

// alignOf is the largest power of two up to 256 dividing every address:
// views into the flat weights need not sit on cuBLASLt's default 256.
func alignOf(ps ...kernels.DevicePtr) uint32 {
	a := uint32(256)
	for _, p := range ps {
		for a > 1 && uint64(p)%uint64(a) != 0 {
			a /= 2
		}
	}
	return a
}

// LinearForward computes out (N, O) = x (N, I) @ w^T (+ bias), x and w
// bf16; out bf16, or F32 (logits) without bias.
func (b *Backend) LinearForward(out, x, w, bias *engine.Tensor) {
	mustDev("LinearForward", out, x, w, bias)
	n, in := rowsCols(x)
	o := w.Shape[0]
	if len(w.Shape) != 2 || w.Shape[1] != in || out.Numel() != n*o {
		panic(fmt.Sprintf("cuda.LinearForward: out %s, x %s, w %s", engine.ShapeString(out.Shape), engine.ShapeString(x.Shape), engine.ShapeString(w.Shape)))
	}
	b.gemm("LinearForward", false, true, n, o, in, 1, 0, x, w, out)
	if bias != nil {
		mustType("LinearForward", "out with bias", out, engine.BF16)
		if bias.Numel() != o {
			panic(fmt.Sprintf("cuda.LinearForward: bias %s for %d outputs", engine.ShapeString(bias.Shape), o))
		}
		b.launch("bias_add_bf16", grid1(n, 1), block(256), out.Dev, int64(o), bias.Dev, int32(n), int32(o))
	}
}

// LinearBackward propagates dout (N, O) through out = x @ w^T + bias: dw
// (O, I) and db (O), F32, are accumulated into; dx (N, I), bf16, is
// overwritten or accumulated into (accumulateDX). An F32 dout (the
// residual stream's gradient) is rounded to bf16 for the GEMMs.
func (b *Backend) LinearBackward(dx, dw, db, dout, x, w *engine.Tensor, accumulateDX bool) {
	mustDev("LinearBackward", dx, dw, db, dout, x, w)
	n, in := rowsCols(x)
	o := w.Shape[0]
	if dout.Numel() != n*o || (dx != nil && dx.Numel() != n*in) {
		panic(fmt.Sprintf("cuda.LinearBackward: dout %s, x %s, w %s", engine.ShapeString(dout.Shape), engine.ShapeString(x.Shape), engine.ShapeString(w.Shape)))
	}
	g := b.asBF16("linear.dout", dout)
	if dx != nil {
		beta := float32(0)
		if accumulateDX {
			beta = 1
		}
		b.gemm("LinearBackward dx", false, false, n, in, o, 1, beta, g, w, dx)
	}
	if dw != nil {
		mustType("LinearBackward", "dw", dw, engine.F32)
		b.gemm("LinearBackward dw", true, false, o, in, n, 1, 1, g, x, dw)
	}
	if db != nil {
		mustType("LinearBackward", "db", db, engine.F32)
		b.colSum(db, g, n, o)
	}
}

// colSum adds the column sums of m (rows x cols, bf16) into dst (F32):
// per-block partial rows, then a reduction in block order (deterministic).
func (b *Backend) colSum(dst, m *engine.Tensor, rows, cols int) {
	const maxBlocks = 64
	g := min(rows, maxBlocks)
	part := b.buf("colsum.partial", uint64(4*g*cols))
	b.zeroBytes(part, uint64(4*g*cols))
	b.launch("colsum_partial", grid1(g, 1), block(256), part, m.Dev, int32(rows), int32(cols))
	b.launch("rmsnorm_dw_reduce", grid1(cols, 256), block(256), dst.Dev, part, int32(g), int32(cols))
}
