package engine_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"purpcode/engine"
	"purpcode/kernels"
	"purpcode/kernels/cudatest"
)

// attnCase is one attention problem in the engine's batch form; seg nil
// means one document per row.
type attnCase struct {
	name            string
	B, T, Hq, Hk, D int
	seg             []int32
}

func (c attnCase) shape() engine.AttnShape {
	return engine.AttnShape{B: c.B, T: c.T, Hq: c.Hq, Hk: c.Hk, D: c.D}
}

// docs returns segment ids for B rows of T tokens where row 0 packs
// documents of the given lengths (summing to T) and the other rows hold one.
func docs(b, t int, lens ...int) []int32 {
	seg := make([]int32, b*t)
	i, id := 0, int32(0)
	for _, n := range lens {
		for range n {
			seg[i] = id
			i++
		}
		id++
	}
	for ; i < b*t; i++ {
		seg[i] = id + int32(i/t)
	}
	return seg
}

// attnData is one case's bf16 inputs and the engine's outputs on them.
type attnData struct {
	qB, kB, vB, doB      []uint16
	out, lse, dq, dk, dv *engine.Tensor
	q, k, v, dout        *engine.Tensor
	cu, tiles            []int32
	n, ldq, ldk          int
}

func attnReference(c attnCase, seed uint64, backward bool) *attnData {
	r := rand.New(rand.NewPCG(seed, 21))
	n := c.B * c.T
	d := &attnData{n: n, ldq: c.Hq * c.D, ldk: c.Hk * c.D}
	d.qB, d.q = bf16In(randn(r, n*d.ldq, 1))
	d.kB, d.k = bf16In(randn(r, n*d.ldk, 1))
	d.vB, d.v = bf16In(randn(r, n*d.ldk, 1))
	d.doB, d.dout = bf16In(randn(r, n*d.ldq, 1))
	for _, t := range []*engine.Tensor{d.q, d.dout} {
		t.Shape = []int{n, d.ldq}
	}
	d.k.Shape, d.v.Shape = []int{n, d.ldk}, []int{n, d.ldk}
	cpu := cpu()
	d.out, d.lse = engine.New(n, d.ldq), engine.New(c.B*c.Hq*c.T)
	cpu.AttentionForward(d.out, d.lse, d.q, d.k, d.v, c.seg, c.shape())
	if backward {
		d.dq, d.dk, d.dv = engine.New(n, d.ldq), engine.New(n, d.ldk), engine.New(n, d.ldk)
		cpu.AttentionBackward(d.dq, d.dk, d.dv, d.dout, d.out, d.lse, d.q, d.k, d.v, c.seg, c.shape())
	}
	d.cu, d.tiles = kernels.AttnVarlen(c.seg, c.B, c.T, kernels.AttnTileRows)
	return d
}

// checkRel compares a bf16 output with the reference within tol of the
// reference's largest magnitude and returns the worst error in that unit.
// The magnitude is floored at 1e-4: with T=1 a row has one key, P = 1 and
// dq = dk = 0 exactly, which the kernel returns while the CPU's GEMMs
// leave ~1e-7 of rounding noise.
func checkRel(t *testing.T, what string, got []uint16, want []float32, tol float64) float64 {
	t.Helper()
	scale := max(maxAbs(want), 1e-4)
	g := kernels.FromBF16(got)
	var worst float64
	for i, w := range want {
		e := math.Abs(float64(g[i])-float64(w)) / scale
		if !(e <= tol) {
			t.Fatalf("%s[%d] = %g, want %g (tolerance %g of max %g)", what, i, g[i], w, tol, scale)
		}
		worst = math.Max(worst, e)
	}
	return worst
}

var attnCases = []attnCase{
	{name: "B2_T37_GQA1_D40_packed", B: 2, T: 37, Hq: 2, Hk: 2, D: 40, seg: docs(2, 37, 10, 20, 7)},
	{name: "B1_T1_GQA8_D128", B: 1, T: 1, Hq: 8, Hk: 1, D: 128},
	{name: "B2_T20_GQA4_D64", B: 2, T: 20, Hq: 4, Hk: 1, D: 64},
	{name: "B1_T33_GQA2_D128_packed", B: 1, T: 33, Hq: 4, Hk: 2, D: 128, seg: docs(1, 33, 1, 32)},
}

// TestCUDAAttentionSIMT: attn_fwd_simt, attn_bwd_dsum, attn_bwd_dq_simt and
// attn_bwd_dkv_simt against engine.AttentionForward/Backward.
func TestCUDAAttentionSIMT(t *testing.T) {
	k := newKit(t)
	for i, c := range attnCases {
		t.Run(c.name, func(t *testing.T) {
			d := attnReference(c, uint64(i), true)
			ldq, ldk := i64(d.ldq), i64(d.ldk)
			pq, pk, pv, pdo, pcu := k.Up(d.qB), k.Up(d.kB), k.Up(d.vB), k.Up(d.doB), k.Up(d.cu)
			out, lse, dsum := k.Alloc(2*d.n*d.ldq), k.Alloc(4*d.n*c.Hq), k.Alloc(4*d.n*c.Hq)
			dq, dk, dv := k.Alloc(2*d.n*d.ldq), k.Alloc(2*d.n*d.ldk), k.Alloc(2*d.n*d.ldk)
			scale := float32(1 / math.Sqrt(float64(c.D)))
			rows := d3{X: uint32((d.n + 3) / 4), Y: uint32(c.Hq), Z: 1}
			nseq, N, T, Hq, Hk, D := i32(len(d.cu)-1), i32(d.n), i32(c.T), i32(c.Hq), i32(c.Hk), i32(c.D)
			k.Launch("attn_fwd_simt", rows, b128, 0, out, ldq, lse, pq, ldq, pk, pv, ldk, pcu, nseq, N, T, Hq, Hk, D, scale)
			k.Launch("attn_bwd_dsum", rows, b128, 0, dsum, pdo, out, ldq, N, T, Hq, D)
			k.Launch("attn_bwd_dq_simt", rows, b128, 0, dq, pdo, ldq, lse, dsum, pq, ldq, pk, pv, ldk, pcu, nseq, N, T, Hq, Hk, D, scale)
			k.Launch("attn_bwd_dkv_simt", d3{X: uint32((d.n + 3) / 4), Y: uint32(c.Hk), Z: 1}, b128, 0, dk, dv, pdo, ldq, lse, dsum, pq, ldq, pk, pv, ldk, pcu, nseq, N, T, Hq, Hk, D, scale)
			gotO, gotL := make([]uint16, d.n*d.ldq), make([]float32, d.n*c.Hq)
			k.Down(gotO, out)
			k.Down(gotL, lse)
			eo := checkBF16(t, "out", gotO, d.out.F32, 1, 2e-3*maxAbs(d.out.F32))
			el := checkF32(t, "lse", gotL, d.lse.F32, 1e-4, 0)
			var worst [3]float64
			for j, g := range []struct {
				name string
				p    kernels.DevicePtr
				want *engine.Tensor
			}{{"dq", dq, d.dq}, {"dk", dk, d.dk}, {"dv", dv, d.dv}} {
				got := make([]uint16, len(g.want.F32))
				k.Down(got, g.p)
				worst[j] = checkRel(t, g.name, got, g.want.F32, 1e-2)
			}
			t.Logf("attn simt: out %d ulp, lse %.2g rel; dq %.2g dk %.2g dv %.2g of max", eo, el, worst[0], worst[1], worst[2])
		})
	}
}

// TestCUDAAttentionMMA: the tensor-core forward (mma.sync, cp.async) for
// D=64 and D=128 against engine.AttentionForward, with query tiles that
// straddle documents and a T=1 row.
func TestCUDAAttentionMMA(t *testing.T) {
	k := newKit(t)
	for i, c := range []attnCase{
		{name: "B2_T128_GQA2_D64_packed", B: 2, T: 128, Hq: 4, Hk: 2, D: 64, seg: docs(2, 128, 50, 78)},
		{name: "B1_T70_GQA1_D128", B: 1, T: 70, Hq: 1, Hk: 1, D: 128},
		{name: "B1_T1_GQA8_D64", B: 1, T: 1, Hq: 8, Hk: 1, D: 64},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := attnReference(c, uint64(10+i), false)
			ldq, ldk := i64(d.ldq), i64(d.ldk)
			out, lse := k.Alloc(2*d.n*d.ldq), k.Alloc(4*d.n*c.Hq)
			shm := kernels.AttnMMASharedBytes(c.D)
			k.Launch(fmt.Sprintf("attn_fwd_mma_d%d", c.D), d3{X: uint32(len(d.tiles) / 2), Y: uint32(c.Hq), Z: 1}, b128, uint32(shm),
				out, ldq, lse, k.Up(d.qB), ldq, k.Up(d.kB), k.Up(d.vB), ldk, k.Up(d.cu), k.Up(d.tiles), i32(d.n), i32(c.T), i32(c.Hq), i32(c.Hk),
				float32(1/math.Sqrt(float64(c.D))))
			gotO, gotL := make([]uint16, d.n*d.ldq), make([]float32, d.n*c.Hq)
			k.Down(gotO, out)
			k.Down(gotL, lse)
			t.Logf("attn mma: out %.2g of max, lse %.2g rel", checkRel(t, "out", gotO, d.out.F32, 1e-2), checkF32(t, "lse", gotL, d.lse.F32, 2e-4, 0))
		})
	}
}

// TestCUDAPagedAttention writes every token of a few ragged sequences into
// a paged cache with a shuffled block table (paged_kv_write), runs
// paged_attn for all of them (chunked prefill) and for the last token of
// each (decode), and compares with engine.AttentionForward on the same
// K/V, the sequences packed as documents of one row.
func TestCUDAPagedAttention(t *testing.T) {
	k := newKit(t)
	const bs = 16
	for i, c := range []struct {
		lens      []int
		Hq, Hk, D int
	}{{[]int{1, 17, 40}, 4, 1, 64}, {[]int{33}, 8, 1, 128}, {[]int{5, 16}, 2, 2, 40}, {[]int{3, 20}, 4, 2, 64}} {
		t.Run(fmt.Sprintf("lens%v_Hq%d_Hk%d_D%d", c.lens, c.Hq, c.Hk, c.D), func(t *testing.T) {
			ntok := 0
			for _, l := range c.lens {
				ntok += l
			}
			ac := attnCase{B: 1, T: ntok, Hq: c.Hq, Hk: c.Hk, D: c.D, seg: docs(1, ntok, c.lens...)}
			d := attnReference(ac, uint64(20+i), false)
			r := rand.New(rand.NewPCG(uint64(i), 22))
			maxBlocks, nblk := 0, 0
			for _, l := range c.lens {
				maxBlocks = max(maxBlocks, (l+bs-1)/bs)
				nblk += (l + bs - 1) / bs
			}
			nblk += 3 // blocks no sequence owns
			perm := r.Perm(nblk)
			table := make([]int32, len(c.lens)*maxBlocks)
			rowSeq, rowPos := make([]int32, 0, ntok), make([]int32, 0, ntok)
			next := 0
			for s, l := range c.lens {
				for b := 0; b < (l+bs-1)/bs; b++ {
					table[s*maxBlocks+b] = int32(perm[next])
					next++
				}
				for p := range l {
					rowSeq, rowPos = append(rowSeq, int32(s)), append(rowPos, int32(p))
				}
			}
			cacheBytes := 2 * nblk * c.Hk * bs * c.D
			kc, vc, pt := k.Alloc(cacheBytes), k.Alloc(cacheBytes), k.Up(table)
			pseq, ppos := k.Up(rowSeq), k.Up(rowPos)
			ldq, ldk := i64(d.ldq), i64(d.ldk)
			k.Launch("paged_kv_write", cudatest.Grid(ntok, 1), b128, 0, kc, vc, k.Up(d.kB), k.Up(d.vB), ldk, pt, i32(maxBlocks), pseq, ppos, i32(ntok), i32(c.Hk), i32(c.D), i32(bs))
			scale := float32(1 / math.Sqrt(float64(c.D)))
			attend := func(q kernels.DevicePtr, seq, pos kernels.DevicePtr, rows int) []uint16 {
				out := k.Alloc(2 * rows * d.ldq)
				k.Launch("paged_attn", d3{X: uint32(rows), Y: uint32(c.Hq), Z: 1}, b128, 0, out, ldq, q, ldq, kc, vc, pt, i32(maxBlocks), seq, pos, i32(rows), i32(c.Hq), i32(c.Hk), i32(c.D), i32(bs), scale)
				got := make([]uint16, rows*d.ldq)
				k.Down(got, out)
				return got
			}
			tol := 2e-3 * maxAbs(d.out.F32)
			e1 := checkBF16(t, "prefill out", attend(k.Up(d.qB), pseq, ppos, ntok), d.out.F32, 1, tol)
			// Decode: one row per sequence, its last position.
			var lastQ []uint16
			var lastSeq, lastPos []int32
			var want []float32
			end := 0
			for s, l := range c.lens {
				end += l
				lastQ = append(lastQ, d.qB[(end-1)*d.ldq:end*d.ldq]...)
				lastSeq, lastPos = append(lastSeq, int32(s)), append(lastPos, int32(l-1))
				want = append(want, d.out.F32[(end-1)*d.ldq:end*d.ldq]...)
			}
			e2 := checkBF16(t, "decode out", attend(k.Up(lastQ), k.Up(lastSeq), k.Up(lastPos), len(c.lens)), want, 1, tol)
			t.Logf("paged_attn: prefill %d ulp, decode %d ulp (or within %.2g)", e1, e2, tol)
		})
	}
}
