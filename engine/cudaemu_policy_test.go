package engine_test

// Conformance of the bias, clipping and policy-loss kernels with their CPU
// ops, in the style (and with the helpers) of cudaemu_test.go.
//
// Tolerances (u = 2^-24, the fp32 unit roundoff):
//
//	kernel                          tolerance                       why
//	bias_add_bf16                   bit-exact                       one fp32 add then one rounding, as LinearForward
//	colsum_partial + dw_reduce      (ceil(N/G)+G+2)·u·(Σ|dout|+|db|) per column: the fp32 recursive-summation
//	                                                                bound of the partial and reduce sums and the
//	                                                                CPU's two roundings of its float64 sum
//	scale_f32                       bit-exact                       one .rn multiply, as engine.Scale
//	policy_rows logp, ent           2e-5 abs + 1e-5 rel             fp32 online logsumexp and entropy sum (expf)
//	                                                                over V vs float64
//	policy_rows gradient            1e-5 of the row's largest |g|   fp32 p_j (lp_j + H) vs float64
//	  through the head GEMMs        dh, dw 1e-5 of max              the same, mixed by fp32 GEMMs

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"purpcode/engine"
	"purpcode/kernels"
	"purpcode/kernels/cudatest"
)

// identity is the (n, n) identity matrix: a linear layer or lm head with
// it as weight gives the CPU op's result on its input itself (every
// product but one is an exact zero), so a kernel that takes what a GEMM
// produced can be compared with the CPU op that includes the GEMM.
func identity(n int) *engine.Tensor {
	w := engine.New(n, n)
	for i := 0; i < n; i++ {
		w.F32[i*n+i] = 1
	}
	return w
}

func TestCUDABiasAdd(t *testing.T) {
	k, c := newKit(t), cpu()
	r := rand.New(rand.NewPCG(20, 20))
	// ld > O with an offset: the k columns of a fused (N, q|k|v) buffer.
	for _, sh := range []struct{ N, O, ld, off, grid int }{{7, 300, 300, 0, 7}, {5, 32, 128, 64, 2}, {1, 1000, 1000, 0, 1}, {33, 17, 40, 23, 4}} {
		t.Run(fmt.Sprintf("N%d_O%d_ld%d", sh.N, sh.O, sh.ld), func(t *testing.T) {
			bufB := kernels.BF16(randn(r, sh.N*sh.ld, 2))
			biasB, bias := bf16In(randn(r, sh.O, 1))
			x := engine.New(sh.N, sh.O)
			for i := 0; i < sh.N; i++ {
				copy(x.F32[i*sh.O:(i+1)*sh.O], kernels.FromBF16(bufB[i*sh.ld+sh.off:i*sh.ld+sh.off+sh.O]))
			}
			want := engine.New(sh.N, sh.O)
			c.LinearForward(want, x, identity(sh.O), bias)

			p := k.Up(bufB)
			k.Launch("bias_add_bf16", d3{X: uint32(sh.grid), Y: 1, Z: 1}, b256, 0, p+kernels.DevicePtr(2*sh.off), i64(sh.ld), k.Up(biasB), i32(sh.N), i32(sh.O))
			got := make([]uint16, sh.N*sh.ld)
			k.Down(got, p)
			cols := make([]uint16, 0, sh.N*sh.O)
			for i := 0; i < sh.N; i++ {
				row, orig := got[i*sh.ld:(i+1)*sh.ld], bufB[i*sh.ld:(i+1)*sh.ld]
				cols = append(cols, row[sh.off:sh.off+sh.O]...)
				if !slices.Equal(row[:sh.off], orig[:sh.off]) || !slices.Equal(row[sh.off+sh.O:], orig[sh.off+sh.O:]) {
					t.Fatalf("row %d: columns outside [%d, %d) changed", i, sh.off, sh.off+sh.O)
				}
			}
			checkBF16(t, "bias_add_bf16", cols, want.F32, 0, 0)
		})
	}
}

func TestCUDABiasGrad(t *testing.T) {
	k, c := newKit(t), cpu()
	r := rand.New(rand.NewPCG(21, 21))
	// G > N leaves blocks without rows: their partial rows must be zeros.
	for _, sh := range []struct{ N, O, G int }{{37, 300, 5}, {1, 64, 1}, {200, 1000, 8}, {3, 17, 6}} {
		t.Run(fmt.Sprintf("N%d_O%d_G%d", sh.N, sh.O, sh.G), func(t *testing.T) {
			doutB, dout := bf16In(randn(r, sh.N*sh.O, 1))
			dout.Shape = []int{sh.N, sh.O}
			db0 := randn(r, sh.O, 1)
			db := engine.FromF32(slices.Clone(db0), sh.O)
			// Only db is asked for; x and w give the shapes.
			c.LinearBackward(nil, nil, db, dout, engine.New(sh.N, 1), engine.New(sh.O, 1), false)

			// partial starts as garbage: colsum_partial overwrites it.
			part, pdb := k.Up(randn(r, sh.G*sh.O, 1e3)), k.Up(db0)
			k.Launch("colsum_partial", d3{X: uint32(sh.G), Y: 1, Z: 1}, b256, 0, part, k.Up(doutB), i32(sh.N), i32(sh.O))
			k.Launch("rmsnorm_dw_reduce", cudatest.Grid(sh.O, 256), b256, 0, pdb, part, i32(sh.G), i32(sh.O))
			got := make([]float32, sh.O)
			k.Down(got, pdb)
			depth := float64((sh.N+sh.G-1)/sh.G + sh.G + 2)
			worst := 0.0
			for j := range got {
				mag := math.Abs(float64(db0[j]))
				for i := 0; i < sh.N; i++ {
					mag += math.Abs(float64(dout.F32[i*sh.O+j]))
				}
				tol := depth * 0x1p-24 * mag
				e := math.Abs(float64(got[j]) - float64(db.F32[j]))
				if e > tol {
					t.Fatalf("db[%d] = %.9g, LinearBackward %.9g (|diff| %.3g > %.3g)", j, got[j], db.F32[j], e, tol)
				}
				worst = max(worst, e/tol)
			}
			t.Logf("colsum_partial: worst error %.2g of the summation bound", worst)
		})
	}
}

func TestCUDAScaleF32(t *testing.T) {
	k, c := newKit(t), cpu()
	r := rand.New(rand.NewPCG(22, 22))
	for _, n := range []int{1, 1000, 70001} {
		g := randn(r, n, 1)
		p := k.Up(g)
		// A clipping coefficient as optim.ClipGradNorm computes it: a
		// float64 ratio rounded to float32.
		coef := float32(1 / (math.Sqrt(float64(n)) + 1e-6))
		want := engine.FromF32(g, n)
		c.Scale(want, coef)
		k.Launch("scale_f32", cudatest.Grid(min(n, 64*256), 256), b256, 0, p, coef, i64(n))
		got := make([]float32, n)
		k.Down(got, p)
		if !f32Bits(got, want.F32) {
			t.Fatalf("n=%d: scale_f32 differs from engine.Scale (want bit-exact)", n)
		}
	}
}

// policyRun is one policy_rows launch on logits z (R, V): its outputs.
type policyRun struct {
	logp, ent []float32
	grad      []float32 // nil without want_grad
	gradBF16  []uint16
	err       int32
}

// launchPolicy runs policy_rows on a copy of z. a nil ent skips the
// entropy output, a nil a the gradient; e may be nil.
func launchPolicy(k *cudatest.Kit, z []float32, tg []int32, a, e []float32, R, V int, withEnt bool) policyRun {
	pz, errp, plp := k.Up(z), k.Up([]int32{0}), k.Alloc(4*R)
	var pzb, pent, pa, pe kernels.DevicePtr
	if withEnt {
		pent = k.Alloc(4 * R)
	}
	wantGrad := i32(0)
	if a != nil {
		wantGrad, pa, pzb = 1, k.Up(a), k.Alloc(2*R*V)
	}
	if e != nil {
		pe = k.Up(e)
	}
	k.Launch("policy_rows", cudatest.Grid(R, 1), b512, 0, pz, pzb, plp, pent, k.Up(tg), pa, pe, i32(R), i32(V), wantGrad, errp)
	var out policyRun
	out.logp = make([]float32, R)
	k.Down(out.logp, plp)
	if withEnt {
		out.ent = make([]float32, R)
		k.Down(out.ent, pent)
	}
	out.grad = make([]float32, R*V)
	k.Down(out.grad, pz)
	if a != nil {
		out.gradBF16 = make([]uint16, R*V)
		k.Down(out.gradBF16, pzb)
	}
	var e1 [1]int32
	k.Down(e1[:], errp)
	out.err = e1[0]
	return out
}

// TestCUDAPolicyRows checks policy_rows row by row against
// engine.LMHeadTokenStats and LMHeadTokenGrad on the logits of
// xentCase, masked (-inf) slots included. The CPU ops take hidden states
// and a head, not logits, and a -inf logit cannot come out of a head; so
// each row's reference is the CPU op with the identity head on the row's
// unmasked logits (a masked slot is a vocabulary entry of probability 0:
// dropping it changes nothing else), and its gradient is scattered back
// with zeros in the masked slots.
func TestCUDAPolicyRows(t *testing.T) {
	k, c := newKit(t), cpu()
	r := rand.New(rand.NewPCG(23, 23))
	for _, sh := range []struct{ R, V int }{{6, 1001}, {3, 37}} {
		t.Run(fmt.Sprintf("R%d_V%d", sh.R, sh.V), func(t *testing.T) {
			z, tg := xentCase(r, sh.R, sh.V)
			a, e := randn(r, sh.R, 1), randn(r, sh.R, 0.1)
			e[1] = 0 // a row without the entropy term
			wantLP, wantEnt, wantG := make([]float32, sh.R), make([]float32, sh.R), make([]float32, sh.R*sh.V)
			for i := 0; i < sh.R; i++ {
				if tg[i] == engine.IgnoreIndex {
					continue
				}
				row := z[i*sh.V : (i+1)*sh.V]
				var keep []int
				tk := int32(-1)
				for j, v := range row {
					if !math.IsInf(float64(v), -1) {
						if j == int(tg[i]) {
							tk = int32(len(keep))
						}
						keep = append(keep, j)
					}
				}
				if tk < 0 {
					t.Fatalf("row %d: target %d is masked", i, tg[i])
				}
				h := engine.New(1, len(keep))
				for q, j := range keep {
					h.F32[q] = row[j]
				}
				w, st := identity(len(keep)), engine.TokenStats{LogProb: make([]float32, 1), Entropy: make([]float32, 1)}
				c.LMHeadTokenStats(h, w, []int32{tk}, st)
				wantLP[i], wantEnt[i] = st.LogProb[0], st.Entropy[0]
				dh := engine.New(1, len(keep))
				c.LMHeadTokenGrad(h, w, []int32{tk}, a[i:i+1], e[i:i+1], dh, engine.New(len(keep), len(keep)))
				for q, j := range keep {
					wantG[i*sh.V+j] = dh.F32[q]
				}
			}

			got := launchPolicy(k, z, tg, a, e, sh.R, sh.V, true)
			if got.err != 0 {
				t.Fatalf("err = %d (the ignore index is not an error)", got.err)
			}
			elp := checkF32(t, "logp", got.logp, wantLP, 2e-5, 1e-5)
			een := checkF32(t, "entropy", got.ent, wantEnt, 2e-5, 1e-5)
			worst := 0.0
			for i := 0; i < sh.R; i++ {
				g, w := got.grad[i*sh.V:(i+1)*sh.V], wantG[i*sh.V:(i+1)*sh.V]
				if tg[i] == engine.IgnoreIndex {
					if maxAbs(g) != 0 {
						t.Fatalf("row %d (ignored): gradient not zero", i)
					}
					continue
				}
				checkF32(t, fmt.Sprintf("gradient row %d", i), g, w, 1e-5*maxAbs(w), 0)
				if maxAbs(w) > 0 { // a row with one unmasked slot has p = 1 and gradient 0
					worst = max(worst, errOfMax(g, w))
				}
			}
			checkBF16(t, "dlogits_bf16 = bf16(gradient)", got.gradBF16, got.grad, 0, 0)
			t.Logf("policy_rows: logp %.2g, entropy %.2g rel; gradient %.2g of row max", elp, een, worst)

			// Forward only (LMHeadTokenStats): the logits stay.
			fwd := launchPolicy(k, z, tg, nil, nil, sh.R, sh.V, true)
			checkF32(t, "logp (forward only)", fwd.logp, wantLP, 2e-5, 1e-5)
			checkF32(t, "entropy (forward only)", fwd.ent, wantEnt, 2e-5, 1e-5)
			if !f32Bits(fwd.grad, z) {
				t.Error("policy_rows with want_grad=0 changed the logits")
			}
		})
	}
}

// TestCUDAPolicyHead composes policy_rows with the head GEMMs the way the
// backend will (logits = h W^T; dh = g W; dW = g^T h) and compares with
// LMHeadTokenStats and LMHeadTokenGrad themselves, with the entropy term
// and without it (a pure log-prob gradient, no entropy computed).
func TestCUDAPolicyHead(t *testing.T) {
	k, c := newKit(t), cpu()
	r := rand.New(rand.NewPCG(24, 24))
	const N, C, V = 9, 48, 203
	h, w := engine.FromF32(randn(r, N*C, 1), N, C), engine.FromF32(randn(r, V*C, 0.3), V, C)
	tg := make([]int32, N)
	for i := range tg {
		tg[i] = int32(r.IntN(V))
	}
	tg[4] = engine.IgnoreIndex
	st := engine.TokenStats{LogProb: make([]float32, N), Entropy: make([]float32, N)}
	c.LMHeadTokenStats(h, w, tg, st)
	logits := engine.New(N, V)
	c.MatMul(logits, h, w, true, false)
	a := randn(r, N, 1)
	for _, e := range [][]float32{randn(r, N, 0.2), nil} {
		t.Run(fmt.Sprintf("entropy_%v", e != nil), func(t *testing.T) {
			dh, dw := engine.New(N, C), engine.New(V, C)
			c.LMHeadTokenGrad(h, w, tg, a, e, dh, dw)
			// Without e, no entropy output either: the kernel never needs H.
			got := launchPolicy(k, logits.F32, tg, a, e, N, V, e != nil)
			if got.err != 0 {
				t.Fatalf("err = %d", got.err)
			}
			checkF32(t, "logp", got.logp, st.LogProb, 2e-5, 1e-5)
			if e != nil {
				checkF32(t, "entropy", got.ent, st.Entropy, 2e-5, 1e-5)
			}
			g := engine.FromF32(got.grad, N, V)
			gT := engine.New(V, N)
			for i := 0; i < N; i++ {
				for j := 0; j < V; j++ {
					gT.F32[j*N+i] = g.F32[i*V+j]
				}
			}
			gotDH, gotDW := engine.New(N, C), engine.New(V, C)
			c.MatMul(gotDH, g, w, false, false)
			c.MatMul(gotDW, gT, h, false, false)
			checkF32(t, "dh", gotDH.F32, dh.F32, 1e-5*maxAbs(dh.F32), 0)
			checkF32(t, "dw", gotDW.F32, dw.F32, 1e-5*maxAbs(dw.F32), 0)
			t.Logf("policy_rows through the head: dh %.2g, dw %.2g of max", errOfMax(gotDH.F32, dh.F32), errOfMax(gotDW.F32, dw.F32))
		})
	}
}

// TestCUDAPolicyRowsBadTarget: a target outside the vocabulary zeroes its
// row's outputs and gradient and reports the row, as xent_fwd_bwd (the CPU
// ops panic).
func TestCUDAPolicyRowsBadTarget(t *testing.T) {
	k := newKit(t)
	r := rand.New(rand.NewPCG(25, 25))
	const R, V = 3, 40
	z := randn(r, R*V, 1)
	got := launchPolicy(k, z, []int32{3, V + 3, 5}, randn(r, R, 1), randn(r, R, 1), R, V, true)
	if got.err != 2 {
		t.Errorf("err = %d for target %d at row 1, want 2", got.err, V+3)
	}
	if got.logp[1] != 0 || got.ent[1] != 0 || maxAbs(got.grad[V:2*V]) != 0 {
		t.Errorf("row 1: logp %g, entropy %g, gradient max %g; want all 0", got.logp[1], got.ent[1], maxAbs(got.grad[V:2*V]))
	}
	if got.logp[0] == 0 || got.logp[2] == 0 {
		t.Error("the rows around the bad one were not computed")
	}

	// The block reductions need whole warps: another block is refused by
	// the launch check (on a GPU it would reduce garbage; the emulator
	// would also stop it, later and with another message).
	f, err := k.KS.Function("policy_rows")
	if err != nil {
		t.Fatal(err)
	}
	pz := k.Up(z)
	if err := f.Launch(cudatest.Grid(R, 1), cudatest.Block(500), 0, kernels.Stream{}, pz, kernels.DevicePtr(0), k.Alloc(4*R), kernels.DevicePtr(0),
		k.Up([]int32{1, 2, 3}), kernels.DevicePtr(0), kernels.DevicePtr(0), i32(R), i32(V), i32(0), kernels.DevicePtr(0)); err == nil || !strings.Contains(err.Error(), "whole warps") {
		t.Errorf("policy_rows with a block of 500 threads: %v, want the launch check's refusal", err)
	}
}
