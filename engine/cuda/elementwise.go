package cuda

import (
	"fmt"

	"purpcode/engine"
	"purpcode/kernels"
)

// EmbeddingForward gathers bf16 rows: out (N, C) = table[ids].
func (b *Backend) EmbeddingForward(out, table *engine.Tensor, ids []int32) {
	mustDev("EmbeddingForward", out, table)
	v, c := table.Shape[0], table.Shape[1]
	if out.Numel() != len(ids)*c {
		panic(fmt.Sprintf("cuda.EmbeddingForward: out %s for %d ids and table %s", engine.ShapeString(out.Shape), len(ids), engine.ShapeString(table.Shape)))
	}
	b.gather("EmbeddingForward", "ids", out, table, ids, c, v)
}

// gather runs embedding_fwd: dst row r = src row idx[r], bf16. The
// indices are checked here, on the host, so that no op has to wait for
// the device to read the kernel's error flag (which stays a second line of
// defence, read at the next synchronising op).
func (b *Backend) gather(op, slot string, dst, src *engine.Tensor, idx []int32, c, rows int) {
	mustType(op, "dst", dst, engine.BF16)
	mustType(op, "src", src, engine.BF16)
	for r, id := range idx {
		if id < 0 || int(id) >= rows {
			panic(fmt.Sprintf("cuda.%s: index %d at row %d outside a table of %d rows", op, id, r, rows))
		}
	}
	n := len(idx)
	b.launch("embedding_fwd", grid1(n, 1), block(256), dst.Dev, src.Dev, b.ints(slot, idx), int32(n), int32(c), int32(rows), b.errBuf)
}

// GatherRows copies rows[i] of src (N, C) into row i of dst, bf16.
func (b *Backend) GatherRows(dst, src *engine.Tensor, rows []int) {
	mustDev("GatherRows", dst, src)
	n, c := rowsCols(src)
	if dst.Numel() != len(rows)*c {
		panic(fmt.Sprintf("cuda.GatherRows: dst %s for %d rows of %s", engine.ShapeString(dst.Shape), len(rows), engine.ShapeString(src.Shape)))
	}
	idx := make([]int32, len(rows))
	for i, r := range rows {
		idx[i] = int32(r)
	}
	b.gather("GatherRows", "rows", dst, src, idx, c, n)
}

// EmbeddingBackward accumulates dtable[ids[r]] += dout[r] into the F32
// table gradient, one block per distinct id summing its rows in batch
// order (deterministic, no atomics). An F32 dout is rounded to bf16.
func (b *Backend) EmbeddingBackward(dtable, dout *engine.Tensor, ids []int32) {
	mustDev("EmbeddingBackward", dtable, dout)
	mustType("EmbeddingBackward", "dtable", dtable, engine.F32)
	v, c := dtable.Shape[0], dtable.Shape[1]
	if dout.Numel() != len(ids)*c {
		panic(fmt.Sprintf("cuda.EmbeddingBackward: dout %s for %d ids and table %s", engine.ShapeString(dout.Shape), len(ids), engine.ShapeString(dtable.Shape)))
	}
	for r, id := range ids {
		if id < 0 || int(id) >= v {
			panic(fmt.Sprintf("cuda.EmbeddingBackward: id %d at row %d outside vocab of %d", id, r, v))
		}
	}
	uniq, offsets, rows := kernels.EmbeddingBwdPlan(ids, v)
	if len(uniq) == 0 {
		return
	}
	g := b.asBF16("embedding.dout", dout)
	b.launch("embedding_bwd", grid1(len(uniq), 1), block(256), dtable.Dev, g.Dev,
		b.ints("emb.uniq", uniq), b.ints("emb.offsets", offsets), b.ints("emb.rows", rows), int32(len(uniq)), int32(c))
}

// RMSNormForward: out (N, C) bf16 and rstd (N) F32 from x bf16, w bf16.
func (b *Backend) RMSNormForward(out, rstd, x, w *engine.Tensor, eps float64) {
	mustDev("RMSNormForward", out, rstd, x, w)
	n, c := rowsCols(x)
	if out.Numel() != n*c || rstd.Numel() != n || w.Numel() != c {
		panic(fmt.Sprintf("cuda.RMSNormForward: out %s, rstd %s, w %s for x %s", engine.ShapeString(out.Shape), engine.ShapeString(rstd.Shape), engine.ShapeString(w.Shape), engine.ShapeString(x.Shape)))
	}
	mustType("RMSNormForward", "rstd", rstd, engine.F32)
	b.launch("rmsnorm_fwd", grid1(n, 1), block(256), out.Dev, rstd.Dev, x.Dev, w.Dev, int32(n), int32(c), float32(eps))
}

// RMSNormBackward accumulates into dx (N, C; F32, the residual stream's
// gradient) and dw (C; F32) the gradient of RMSNormForward.
func (b *Backend) RMSNormBackward(dx, dw, dout, x, w, rstd *engine.Tensor) {
	mustDev("RMSNormBackward", dx, dw, dout, x, w, rstd)
	mustType("RMSNormBackward", "dx", dx, engine.F32)
	mustType("RMSNormBackward", "dw", dw, engine.F32)
	n, c := rowsCols(x)
	if dx.Numel() != n*c || dout.Numel() != n*c || rstd.Numel() != n || dw.Numel() != c {
		panic(fmt.Sprintf("cuda.RMSNormBackward: dx %s, dout %s, rstd %s, dw %s for x %s", engine.ShapeString(dx.Shape), engine.ShapeString(dout.Shape), engine.ShapeString(rstd.Shape), engine.ShapeString(dw.Shape), engine.ShapeString(x.Shape)))
	}
	const maxBlocks = 64
	g := min(n, maxBlocks)
	part := b.buf("rmsnorm.partial", uint64(4*g*c))
	b.zeroBytes(part, uint64(4*g*c))
	b.launch("rmsnorm_bwd", grid1(g, 1), block(256), dx.Dev, kernels.DevicePtr(0), part, dout.Dev, x.Dev, w.Dev, rstd.Dev, int32(n), int32(c), int32(1))
	b.launch("rmsnorm_dw_reduce", grid1(c, 256), block(256), dw.Dev, part, int32(g), int32(c))
}

// RoPE rotates x (N, H*D) bf16 in place by the F32 tables (P, D/2).
func (b *Backend) RoPE(x *engine.Tensor, pos []int32, heads int, cos, sin *engine.Tensor, inverse bool) {
	mustDev("RoPE", x, cos, sin)
	n, width := rowsCols(x)
	if n != len(pos) || width%heads != 0 || cos.Shape[1] != width/heads/2 {
		panic(fmt.Sprintf("cuda.RoPE: x %s for %d positions, %d heads and table %s", engine.ShapeString(x.Shape), len(pos), heads, engine.ShapeString(cos.Shape)))
	}
	for r, p := range pos {
		if p < 0 || int(p) >= cos.Shape[0] {
			panic(fmt.Sprintf("cuda.RoPE: position %d at row %d beyond the table's %d", p, r, cos.Shape[0]))
		}
	}
	inv := int32(0)
	if inverse {
		inv = 1
	}
	b.launch("rope", grid1(n, 1), block(128), x.Dev, b.ints("pos", pos), cos.Dev, sin.Dev,
		int32(n), int32(heads), int32(width/heads), int64(width), int32(cos.Shape[0]), inv, b.errBuf)
}

// SwiGLUForward computes out = silu(gate) * up, bf16. sig is not used: the
// kernel's backward recomputes sigmoid(gate) (cheaper than storing it).
func (b *Backend) SwiGLUForward(out, sig, gate, up *engine.Tensor) {
	mustDev("SwiGLUForward", out, gate, up)
	n := gate.Numel()
	if up.Numel() != n || out.Numel() != n {
		panic(fmt.Sprintf("cuda.SwiGLUForward: out %s, gate %s, up %s", engine.ShapeString(out.Shape), engine.ShapeString(gate.Shape), engine.ShapeString(up.Shape)))
	}
	b.launch("swiglu_fwd", grid1(n, 256), block(256), out.Dev, gate.Dev, up.Dev, int64(n))
}

// SwiGLUBackward writes dgate and dup (bf16) from dout.
func (b *Backend) SwiGLUBackward(dgate, dup, dout, gate, up, sig *engine.Tensor) {
	mustDev("SwiGLUBackward", dgate, dup, dout, gate, up)
	n := gate.Numel()
	if up.Numel() != n || dout.Numel() != n || dgate.Numel() != n || dup.Numel() != n {
		panic(fmt.Sprintf("cuda.SwiGLUBackward: dgate %s, dup %s, dout %s, gate %s", engine.ShapeString(dgate.Shape), engine.ShapeString(dup.Shape), engine.ShapeString(dout.Shape), engine.ShapeString(gate.Shape)))
	}
	b.launch("swiglu_bwd", grid1(n, 256), block(256), dgate.Dev, dup.Dev, dout.Dev, gate.Dev, up.Dev, int64(n))
}

// Add computes out = a + b element-wise, bf16.
func (b *Backend) Add(out, x, y *engine.Tensor) {
	mustDev("Add", out, x, y)
	n := out.Numel()
	if x.Numel() != n || y.Numel() != n {
		panic(fmt.Sprintf("cuda.Add: out %s, a %s, b %s", engine.ShapeString(out.Shape), engine.ShapeString(x.Shape), engine.ShapeString(y.Shape)))
	}
	mustType("Add", "out", out, engine.BF16)
	b.launch("add_bf16", grid1(n, 256), block(256), out.Dev, x.Dev, y.Dev, int64(n))
}
