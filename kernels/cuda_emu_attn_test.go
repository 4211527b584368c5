package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// attnCase is one attention problem in the engine's batch form: B rows of
// T tokens with per-token segment ids (a new sequence wherever the id
// changes within a row), Hq query heads over Hk kv heads of dimension D.
type attnCase struct {
	B, T, Hq, Hk, D int
	seg             []int32
}

type attnRefOut struct {
	out, lse, dq, dk, dv []float64
}

// attnRef is causal segmented GQA attention and its gradient in float64,
// with lse in the CPU engine's (B, Hq, T) layout.
func attnRef(c attnCase, q, k, v, dout []float32) attnRefOut {
	n := c.B * c.T
	ldq, ldk := c.Hq*c.D, c.Hk*c.D
	start := make([]int, n)
	for row := 0; row < c.B; row++ {
		s := row * c.T
		for i := 0; i < c.T; i++ {
			tok := row*c.T + i
			if i > 0 && c.seg[tok] != c.seg[tok-1] {
				s = tok
			}
			start[tok] = s
		}
	}
	scale := 1 / math.Sqrt(float64(c.D))
	o := attnRefOut{out: make([]float64, n*ldq), lse: make([]float64, c.B*c.Hq*c.T),
		dq: make([]float64, n*ldq), dk: make([]float64, n*ldk), dv: make([]float64, n*ldk)}
	dot := func(a []float32, ao int, b []float32, bo int) float64 {
		var s float64
		for d := 0; d < c.D; d++ {
			s += float64(a[ao+d]) * float64(b[bo+d])
		}
		return s
	}
	for i := 0; i < n; i++ {
		for h := 0; h < c.Hq; h++ {
			hk := h / (c.Hq / c.Hk)
			qo := i*ldq + h*c.D
			var s []float64
			m := math.Inf(-1)
			for j := start[i]; j <= i; j++ {
				x := scale * dot(q, qo, k, j*ldk+hk*c.D)
				s = append(s, x)
				m = math.Max(m, x)
			}
			var sum float64
			for _, x := range s {
				sum += math.Exp(x - m)
			}
			lse := m + math.Log(sum)
			o.lse[(i/c.T*c.Hq+h)*c.T+i%c.T] = lse
			p := make([]float64, len(s))
			for jj, x := range s {
				p[jj] = math.Exp(x - lse)
				for d := 0; d < c.D; d++ {
					o.out[qo+d] += p[jj] * float64(v[(start[i]+jj)*ldk+hk*c.D+d])
				}
			}
			var dsum float64
			for d := 0; d < c.D; d++ {
				dsum += float64(dout[qo+d]) * o.out[qo+d]
			}
			for jj := range s {
				j := start[i] + jj
				ko := j*ldk + hk*c.D
				ds := p[jj] * (dot(dout, qo, v, ko) - dsum)
				for d := 0; d < c.D; d++ {
					o.dq[qo+d] += scale * ds * float64(k[ko+d])
					o.dk[ko+d] += scale * ds * float64(q[qo+d])
					o.dv[ko+d] += p[jj] * float64(dout[qo+d])
				}
			}
		}
	}
	return o
}

// attnInputs draws bf16-exact q, k, v, dout for c.
func attnInputs(c attnCase, seed uint64) (q, k, v, dout []float32) {
	r := rand.New(rand.NewPCG(seed, 11))
	n := c.B * c.T
	return roundBF16(randn(r, n*c.Hq*c.D, 1)), roundBF16(randn(r, n*c.Hk*c.D, 1)),
		roundBF16(randn(r, n*c.Hk*c.D, 1)), roundBF16(randn(r, n*c.Hq*c.D, 1))
}

// checkClose compares a bf16 kernel output with the reference, within tol
// of the reference's largest magnitude.
func checkClose(t *testing.T, what string, got []uint16, want []float64, tol float64) {
	t.Helper()
	var scale float64
	for _, w := range want {
		scale = math.Max(scale, math.Abs(w))
	}
	for i, w := range want {
		if g := float64(bf16ToF32(got[i])); math.Abs(g-w) > tol*scale {
			t.Fatalf("%s[%d] = %g, want %g (tolerance %g of max %g)", what, i, g, w, tol, scale)
		}
	}
}

func checkLSE(t *testing.T, got []float32, want []float64) {
	t.Helper()
	for i, w := range want {
		if !near(float64(got[i]), w, 1e-4, 1e-5) {
			t.Fatalf("lse[%d] = %g, want %g: (B, Hq, T) layout", i, got[i], w)
		}
	}
}

// TestEmuAttentionSIMT runs the SIMT forward and backward with lse and
// dsum in the CPU's (B, Hq, T) layout on a ragged packed batch (B=2, T=5,
// two documents in row 0, GQA 2, D=40 not a multiple of 32). Tolerances:
// outputs are stored in bf16 (relative 2^-8) and dsum is taken from the
// bf16 output, so 2% of each tensor's largest magnitude.
func TestEmuAttentionSIMT(t *testing.T) {
	k := newEmuKit(t)
	c := attnCase{B: 2, T: 5, Hq: 4, Hk: 2, D: 40, seg: []int32{0, 0, 1, 1, 1, 2, 2, 2, 2, 2}}
	q, kk, v, dout := attnInputs(c, 12)
	ref := attnRef(c, q, kk, v, dout)
	n := c.B * c.T
	ldq, ldk := int64(c.Hq*c.D), int64(c.Hk*c.D)
	cu, _ := AttnVarlen(c.seg, c.B, c.T, AttnTileRows)
	pq, pk, pv, pdo, pcu := k.up(BF16(q)), k.up(BF16(kk)), k.up(BF16(v)), k.up(BF16(dout)), k.up(cu)
	out, lse, dsum := k.alloc(2*n*c.Hq*c.D), k.alloc(4*n*c.Hq), k.alloc(4*n*c.Hq)
	dq, dk, dv := k.alloc(2*n*c.Hq*c.D), k.alloc(2*n*c.Hk*c.D), k.alloc(2*n*c.Hk*c.D)
	scale := float32(1 / math.Sqrt(float64(c.D)))
	rows := Dim3{uint32((n + 3) / 4), uint32(c.Hq), 1}
	nseq, N, T, Hq, Hk, D := int32(len(cu)-1), int32(n), int32(c.T), int32(c.Hq), int32(c.Hk), int32(c.D)
	b128 := Dim3{128, 1, 1}
	k.launch("attn_fwd_simt", rows, b128, 0, out, ldq, lse, pq, ldq, pk, pv, ldk, pcu, nseq, N, T, Hq, Hk, D, scale)
	k.launch("attn_bwd_dsum", rows, b128, 0, dsum, pdo, out, ldq, N, T, Hq, D)
	k.launch("attn_bwd_dq_simt", rows, b128, 0, dq, pdo, ldq, lse, dsum, pq, ldq, pk, pv, ldk, pcu, nseq, N, T, Hq, Hk, D, scale)
	k.launch("attn_bwd_dkv_simt", Dim3{uint32((n + 3) / 4), uint32(c.Hk), 1}, b128, 0, dk, dv, pdo, ldq, lse, dsum, pq, ldq, pk, pv, ldk, pcu, nseq, N, T, Hq, Hk, D, scale)
	gotOut, gotLSE := make([]uint16, n*c.Hq*c.D), make([]float32, n*c.Hq)
	k.down(gotOut, out)
	k.down(gotLSE, lse)
	checkLSE(t, gotLSE, ref.lse)
	checkClose(t, "out", gotOut, ref.out, 1e-2)
	for _, g := range []struct {
		name string
		p    DevicePtr
		want []float64
	}{{"dq", dq, ref.dq}, {"dk", dk, ref.dk}, {"dv", dv, ref.dv}} {
		got := make([]uint16, len(g.want))
		k.down(got, g.p)
		checkClose(t, g.name, got, g.want, 2e-2)
	}
}

// mmaSegs is the segment ids of B rows of T tokens, row 0 packed with two
// documents (cut at split) and the other rows one document each.
func mmaSegs(b, t, split int) []int32 {
	seg := make([]int32, b*t)
	for i := range seg {
		switch {
		case i < split:
			seg[i] = 0
		case i < t:
			seg[i] = 1
		default:
			seg[i] = int32(1 + i/t)
		}
	}
	return seg
}

// runAttnMMA launches attn_fwd_mma_d<D> for c on k and returns out and lse.
func runAttnMMA(t testing.TB, k *emuKit, c attnCase, q, kk, v []float32) ([]uint16, []float32) {
	n := c.B * c.T
	ldq, ldk := int64(c.Hq*c.D), int64(c.Hk*c.D)
	cu, tiles := AttnVarlen(c.seg, c.B, c.T, AttnTileRows)
	pq, pk, pv, pcu, pt := k.up(BF16(q)), k.up(BF16(kk)), k.up(BF16(v)), k.up(cu), k.up(tiles)
	out, lse := k.alloc(2*n*c.Hq*c.D), k.alloc(4*n*c.Hq)
	f := k.fn(fmt.Sprintf("attn_fwd_mma_d%d", c.D))
	shmem := AttnMMASharedBytes(c.D)
	if shmem > 48<<10 {
		if err := f.SetMaxDynamicShared(shmem); err != nil {
			t.Fatal(err)
		}
	}
	scale := float32(1 / math.Sqrt(float64(c.D)))
	if err := f.Launch(Dim3{uint32(len(tiles) / 2), uint32(c.Hq), 1}, Dim3{128, 1, 1}, uint32(shmem), Stream{},
		out, ldq, lse, pq, ldq, pk, pv, ldk, pcu, pt, int32(n), int32(c.T), int32(c.Hq), int32(c.Hk), scale); err != nil {
		t.Fatal(err)
	}
	gotOut, gotLSE := make([]uint16, n*c.Hq*c.D), make([]float32, n*c.Hq)
	k.down(gotOut, out)
	k.down(gotLSE, lse)
	return gotOut, gotLSE
}

// TestEmuAttentionMMA runs the tensor-core forward (mma.sync, cp.async)
// and checks out and lse: D=64 on two rows of T=70 (two 64-row query tiles
// each, row 0 packed with documents of 30 and 40 tokens), and D=128 (52
// KiB of dynamic shared memory, allowed through SetMaxDynamicShared) on
// one row of T=24 with GQA 2.
func TestEmuAttentionMMA(t *testing.T) {
	if testing.Short() {
		t.Skip("the mma kernels take seconds on the emulator")
	}
	k := newEmuKit(t)
	for i, c := range []attnCase{
		{B: 2, T: 70, Hq: 2, Hk: 1, D: 64, seg: mmaSegs(2, 70, 30)},
		{B: 1, T: 24, Hq: 2, Hk: 1, D: 128, seg: mmaSegs(1, 24, 10)},
	} {
		q, kk, v, dout := attnInputs(c, uint64(13+i))
		ref := attnRef(c, q, kk, v, dout)
		gotOut, gotLSE := runAttnMMA(t, k, c, q, kk, v)
		if st, ok := k.ctx.LastLaunchStats(); ok {
			t.Logf("attn_fwd_mma_d%d on the emulator: %d instructions, %d threads", c.D, st.Instructions, st.Threads)
		}
		checkLSE(t, gotLSE, ref.lse)
		// P is rounded to bf16 before P V (the tensor-core operand), so
		// the output error is that of a bf16 product on top of bf16
		// storage.
		checkClose(t, fmt.Sprintf("D=%d out", c.D), gotOut, ref.out, 2e-2)
	}
}

// BenchmarkEmuAttnMMA measures the emulator's speed on the tensor-core
// attention forward (B=2, T=128, Hq=4, Hk=2, D=64): instructions per
// second of emulated threads, for the README.
func BenchmarkEmuAttnMMA(b *testing.B) {
	k := newEmuKit(b)
	c := attnCase{B: 2, T: 128, Hq: 4, Hk: 2, D: 64, seg: mmaSegs(2, 128, 128)}
	q, kk, v, _ := attnInputs(c, 17)
	var instr uint64
	b.ResetTimer()
	for range b.N {
		runAttnMMA(b, k, c, q, kk, v)
		st, _ := k.ctx.LastLaunchStats()
		instr += st.Instructions
	}
	b.ReportMetric(float64(instr)/b.Elapsed().Seconds(), "instr/s")
}
