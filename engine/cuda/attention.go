package cuda

import (
	"fmt"
	"math"
	"slices"

	"purpcode/engine"
	"purpcode/kernels"
)

// attnMaxD is the largest head dimension of the SIMT kernels (attention.cu's
// ATT_MAXD): each lane keeps D/32 values in registers.
const attnMaxD = 256

// attnVarlen validates an attention call and returns the kernels' variable
// length form of its batch, uploaded: cu_seqlens and the tile list of
// attn_fwd_mma. The engine's rule (token i sees j iff same segment and
// j <= i) is exactly the kernels' sequences.
func (b *Backend) attnVarlen(op string, seg []int32, s engine.AttnShape, q, k, v *engine.Tensor) (cu kernels.DevicePtr, nseq int, tiles kernels.DevicePtr, ntiles int) {
	if s.B <= 0 || s.T <= 0 || s.D <= 0 || s.Hk <= 0 || s.Hq%s.Hk != 0 {
		panic(fmt.Sprintf("cuda.%s: shape %+v (query heads must be a positive multiple of kv heads)", op, s))
	}
	if s.D > attnMaxD {
		panic(fmt.Sprintf("cuda.%s: head dimension %d above the kernels' %d", op, s.D, attnMaxD))
	}
	n := s.B * s.T
	for _, c := range []struct {
		name  string
		t     *engine.Tensor
		width int
	}{{"q", q, s.Hq * s.D}, {"k", k, s.Hk * s.D}, {"v", v, s.Hk * s.D}} {
		mustType(op, c.name, c.t, engine.BF16)
		if r, w := rowsCols(c.t); r != n || w != c.width {
			panic(fmt.Sprintf("cuda.%s: %s %s, want (%d, %d) for %+v", op, c.name, engine.ShapeString(c.t.Shape), n, c.width, s))
		}
	}
	if seg != nil && len(seg) != n {
		panic(fmt.Sprintf("cuda.%s: %d segment ids for %+v", op, len(seg), s))
	}
	cuH, tilesH := kernels.AttnVarlen(seg, s.B, s.T, kernels.AttnTileRows)
	return b.ints("attn.cu", cuH), len(cuH) - 1, b.ints("attn.tiles", tilesH), len(tilesH) / 2
}

// mustAct panics unless t is a bf16 (B*T, width) activation.
func mustAct(op, what string, t *engine.Tensor, n, width int) {
	mustType(op, what, t, engine.BF16)
	if r, w := rowsCols(t); r != n || w != width {
		panic(fmt.Sprintf("cuda.%s: %s %s, want (%d, %d)", op, what, engine.ShapeString(t.Shape), n, width))
	}
}

// mustLSE panics unless t is an F32 (B*Hq*T) buffer.
func mustLSE(op, what string, t *engine.Tensor, s engine.AttnShape) {
	mustType(op, what, t, engine.F32)
	if t.Numel() != s.B*s.Hq*s.T {
		panic(fmt.Sprintf("cuda.%s: %s %s for %+v, want %d values", op, what, engine.ShapeString(t.Shape), s, s.B*s.Hq*s.T))
	}
}

// attnRows is the grid of the SIMT kernels: 4 rows (one per warp) by heads.
func attnRows(n, heads int) kernels.Dim3 {
	return kernels.Dim3{X: uint32((n + 3) / 4), Y: uint32(heads), Z: 1}
}

// AttentionForward computes causal GQA attention with optional packed
// segments (engine.CPU.AttentionForward): out (B*T, Hq*D) bf16 is
// overwritten, lse (B*Hq*T) F32 receives each row's log-sum-exp. Head
// dimensions 64 and 128 run the tensor-core kernel, others (up to 256) the
// SIMT one.
func (b *Backend) AttentionForward(out, lse, q, k, v *engine.Tensor, seg []int32, s engine.AttnShape) {
	const op = "AttentionForward"
	mustDev(op, out, lse, q, k, v)
	n := s.B * s.T
	cu, nseq, tiles, ntiles := b.attnVarlen(op, seg, s, q, k, v)
	mustAct(op, "out", out, n, s.Hq*s.D)
	mustLSE(op, "lse", lse, s)
	ldq, ldk := int64(s.Hq*s.D), int64(s.Hk*s.D)
	scale := float32(1 / math.Sqrt(float64(s.D)))
	if slices.Contains(kernels.AttnMMAHeadDims, s.D) {
		b.launchShared(fmt.Sprintf("attn_fwd_mma_d%d", s.D), kernels.Dim3{X: uint32(ntiles), Y: uint32(s.Hq), Z: 1}, block(128),
			uint32(kernels.AttnMMASharedBytes(s.D)),
			out.Dev, ldq, lse.Dev, q.Dev, ldq, k.Dev, v.Dev, ldk, cu, tiles, int32(n), int32(s.T), int32(s.Hq), int32(s.Hk), scale)
		return
	}
	b.launch("attn_fwd_simt", attnRows(n, s.Hq), block(128), out.Dev, ldq, lse.Dev, q.Dev, ldq, k.Dev, v.Dev, ldk,
		cu, int32(nseq), int32(n), int32(s.T), int32(s.Hq), int32(s.Hk), int32(s.D), scale)
}

// AttentionBackward overwrites dq, dk and dv (bf16) with the gradients of
// AttentionForward given dout, recomputing the probabilities from lse
// (engine.CPU.AttentionBackward). dk and dv are summed over each kv head's
// query group inside one warp, without atomics: deterministic.
func (b *Backend) AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v *engine.Tensor, seg []int32, s engine.AttnShape) {
	const op = "AttentionBackward"
	mustDev(op, dq, dk, dv, dout, out, lse, q, k, v)
	n := s.B * s.T
	cu, nseq, _, _ := b.attnVarlen(op, seg, s, q, k, v)
	mustAct(op, "dq", dq, n, s.Hq*s.D)
	mustAct(op, "dk", dk, n, s.Hk*s.D)
	mustAct(op, "dv", dv, n, s.Hk*s.D)
	mustAct(op, "dout", dout, n, s.Hq*s.D)
	mustAct(op, "out", out, n, s.Hq*s.D)
	mustLSE(op, "lse", lse, s)
	ldq, ldk := int64(s.Hq*s.D), int64(s.Hk*s.D)
	scale := float32(1 / math.Sqrt(float64(s.D)))
	// dsum = rowsum(dout * out) per (row, head), lse's layout.
	dsum := b.buf("attn.dsum", uint64(4*s.B*s.Hq*s.T))
	N, T, Hq, Hk, D := int32(n), int32(s.T), int32(s.Hq), int32(s.Hk), int32(s.D)
	b.launch("attn_bwd_dsum", attnRows(n, s.Hq), block(128), dsum, dout.Dev, out.Dev, ldq, N, T, Hq, D)
	b.launch("attn_bwd_dq_simt", attnRows(n, s.Hq), block(128), dq.Dev, dout.Dev, ldq, lse.Dev, dsum, q.Dev, ldq,
		k.Dev, v.Dev, ldk, cu, int32(nseq), N, T, Hq, Hk, D, scale)
	b.launch("attn_bwd_dkv_simt", attnRows(n, s.Hk), block(128), dk.Dev, dv.Dev, dout.Dev, ldq, lse.Dev, dsum, q.Dev, ldq,
		k.Dev, v.Dev, ldk, cu, int32(nseq), N, T, Hq, Hk, D, scale)
}
