package engine

import (
	"math"
	"math/rand/v2"
	"testing"
)

// naiveBLAS is a float64-accumulating reference GEMM, so gradient checks
// measure the ops and not a fast library's rounding.
type naiveBLAS struct{}

func (naiveBLAS) Name() string { return "naive" }

func (naiveBLAS) Sgemm(ta, tb bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if ta {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if tb {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			old := float32(0)
			if beta != 0 {
				old = beta * c[i*ldc+j]
			}
			c[i*ldc+j] = float32(float64(alpha)*s) + old
		}
	}
}

func testCPU() *CPU { return NewCPU(naiveBLAS{}, 3) }

func randT(r *rand.Rand, scale float32, shape ...int) *Tensor {
	t := New(shape...)
	for i := range t.F32 {
		t.F32[i] = (r.Float32()*2 - 1) * scale
	}
	return t
}

// dot is the scalar "loss" sum(a*w) used to turn an op's output into a number.
func dot(a, w *Tensor) float64 {
	var s float64
	for i := range a.F32 {
		s += float64(a.F32[i]) * float64(w.F32[i])
	}
	return s
}

// checkGrad compares the analytic gradient of f with respect to x against
// central differences at up to 60 random coordinates.
func checkGrad(t *testing.T, name string, x, analytic *Tensor, f func() float64) {
	t.Helper()
	r := rand.New(rand.NewPCG(7, uint64(len(x.F32))))
	const h = 1e-2
	var num2, diff2 float64
	idx := r.Perm(len(x.F32))
	if len(idx) > 60 {
		idx = idx[:60]
	}
	for _, i := range idx {
		old := x.F32[i]
		x.F32[i] = old + h
		fp := f()
		x.F32[i] = old - h
		fm := f()
		x.F32[i] = old
		num := (fp - fm) / (2 * h)
		d := num - float64(analytic.F32[i])
		num2 += num * num
		diff2 += d * d
	}
	rel := math.Sqrt(diff2) / math.Max(math.Sqrt(num2), 1e-6)
	if rel > 5e-3 || math.IsNaN(rel) {
		t.Errorf("%s: relative gradient error %.3g (|num| %.3g)", name, rel, math.Sqrt(num2))
	}
}

func TestLinearGrad(t *testing.T) {
	c := testCPU()
	r := rand.New(rand.NewPCG(1, 2))
	x, w, b := randT(r, 1, 2, 3, 5), randT(r, 1, 4, 5), randT(r, 1, 4)
	out, wt := New(6, 4), randT(r, 1, 6, 4)
	loss := func() float64 { c.LinearForward(out, x, w, b); return dot(out, wt) }
	dx, dw, db := randT(r, 1, 6, 5), New(4, 5), New(4)
	seed := append([]float32(nil), dx.F32...)
	c.LinearBackward(dx, dw, db, wt, x, w, true)
	for i := range dx.F32 { // accumulateDX must add to what was there
		dx.F32[i] -= seed[i]
	}
	checkGrad(t, "dx", x, FromF32(dx.F32, 2, 3, 5), loss)
	checkGrad(t, "dw", w, dw, loss)
	checkGrad(t, "db", b, db, loss)
}

func TestEmbeddingGrad(t *testing.T) {
	c := testCPU()
	r := rand.New(rand.NewPCG(3, 4))
	table, ids := randT(r, 1, 7, 6), []int32{3, 1, 3, 6, 0, 3}
	out, wt := New(6, 6), randT(r, 1, 6, 6)
	loss := func() float64 { c.EmbeddingForward(out, table, ids); return dot(out, wt) }
	dt := New(7, 6)
	c.EmbeddingBackward(dt, wt, ids)
	checkGrad(t, "dtable", table, dt, loss)
}

func TestRMSNormGrad(t *testing.T) {
	c := testCPU()
	r := rand.New(rand.NewPCG(5, 6))
	x, w := randT(r, 2, 5, 70), randT(r, 1, 70)
	out, rstd, wt := New(5, 70), New(5), randT(r, 1, 5, 70)
	loss := func() float64 { c.RMSNormForward(out, rstd, x, w, 1e-6); return dot(out, wt) }
	loss()
	for row := 0; row < 5; row++ {
		var ss float64
		for _, v := range x.F32[row*70 : (row+1)*70] {
			ss += float64(v) * float64(v)
		}
		want := 1 / math.Sqrt(ss/70+1e-6)
		if math.Abs(float64(rstd.F32[row])-want) > 1e-6*want {
			t.Fatalf("rstd[%d] = %v, want %v", row, rstd.F32[row], want)
		}
	}
	dx, dw := New(5, 70), New(70)
	c.RMSNormBackward(dx, dw, wt, x, w, rstd)
	checkGrad(t, "dx", x, dx, loss)
	checkGrad(t, "dw", w, dw, loss)
}

func TestRoPEGradAndRotation(t *testing.T) {
	c := testCPU()
	r := rand.New(rand.NewPCG(7, 8))
	cos, sin := RoPETable(16, 8, 10000)
	pos := []int32{0, 5, 2, 15}
	x, wt := randT(r, 1, 4, 3*8), randT(r, 1, 4, 3*8)
	y := New(4, 24)
	loss := func() float64 { copy(y.F32, x.F32); c.RoPE(y, pos, 3, cos, sin, false); return dot(y, wt) }
	loss()
	// Position 0 is the identity; rotation preserves each pair's norm.
	for j := 0; j < 24; j++ {
		if y.F32[j] != x.F32[j] {
			t.Fatalf("position 0 changed element %d", j)
		}
	}
	dx := New(4, 24)
	copy(dx.F32, wt.F32)
	c.RoPE(dx, pos, 3, cos, sin, true)
	checkGrad(t, "dx", x, dx, loss)
	// Inverse undoes forward.
	copy(y.F32, x.F32)
	c.RoPE(y, pos, 3, cos, sin, false)
	c.RoPE(y, pos, 3, cos, sin, true)
	for j := range y.F32 {
		if math.Abs(float64(y.F32[j]-x.F32[j])) > 1e-6 {
			t.Fatalf("inverse rotation off at %d: %v vs %v", j, y.F32[j], x.F32[j])
		}
	}
}

func TestSwiGLUGrad(t *testing.T) {
	c := testCPU()
	r := rand.New(rand.NewPCG(9, 10))
	g, u, wt := randT(r, 3, 4, 9), randT(r, 2, 4, 9), randT(r, 1, 4, 9)
	out := New(4, 9)
	loss := func() float64 { c.SwiGLUForward(out, nil, g, u); return dot(out, wt) }
	dg, du := New(4, 9), New(4, 9)
	c.SwiGLUBackward(dg, du, wt, g, u, nil)
	checkGrad(t, "dgate", g, dg, loss)
	checkGrad(t, "dup", u, du, loss)
	// With the forward's saved sigmoid the gradients are the same.
	sig, out2 := New(4, 9), New(4, 9)
	c.SwiGLUForward(out, nil, g, u) // checkGrad left out at a perturbed input
	c.SwiGLUForward(out2, sig, g, u)
	dg2, du2 := New(4, 9), New(4, 9)
	c.SwiGLUBackward(dg2, du2, wt, g, u, sig)
	for i := range dg.F32 {
		if dg.F32[i] != dg2.F32[i] || du.F32[i] != du2.F32[i] || out.F32[i] != out2.F32[i] {
			t.Fatalf("saved sigmoid changes element %d", i)
		}
	}
}

// naiveAttention is an independent float64 loop implementation of masked
// causal GQA attention, used to check the blocked GEMM version.
func naiveAttention(q, k, v []float32, seg []int32, s AttnShape) []float64 {
	out := make([]float64, s.B*s.T*s.Hq*s.D)
	group := s.Hq / s.Hk
	for b := 0; b < s.B; b++ {
		for h := 0; h < s.Hq; h++ {
			hk := h / group
			for i := 0; i < s.T; i++ {
				var scores []float64
				var js []int
				for j := 0; j <= i; j++ {
					blocked := false
					for m := j + 1; m <= i && seg != nil; m++ {
						if seg[b*s.T+m] != seg[b*s.T+m-1] {
							blocked = true
						}
					}
					if blocked {
						continue
					}
					var d float64
					for e := 0; e < s.D; e++ {
						d += float64(q[(b*s.T+i)*s.Hq*s.D+h*s.D+e]) * float64(k[(b*s.T+j)*s.Hk*s.D+hk*s.D+e])
					}
					scores = append(scores, d/math.Sqrt(float64(s.D)))
					js = append(js, j)
				}
				m := math.Inf(-1)
				for _, x := range scores {
					m = math.Max(m, x)
				}
				var z float64
				for _, x := range scores {
					z += math.Exp(x - m)
				}
				for n, j := range js {
					p := math.Exp(scores[n]-m) / z
					for e := 0; e < s.D; e++ {
						out[(b*s.T+i)*s.Hq*s.D+h*s.D+e] += p * float64(v[(b*s.T+j)*s.Hk*s.D+hk*s.D+e])
					}
				}
			}
		}
	}
	return out
}

func TestAttentionForwardAndGrad(t *testing.T) {
	c := testCPU()
	for _, tc := range []struct {
		name string
		s    AttnShape
		seg  []int32
	}{
		{"mha", AttnShape{B: 1, T: 5, Hq: 2, Hk: 2, D: 4}, nil},
		{"gqa", AttnShape{B: 2, T: 6, Hq: 4, Hk: 2, D: 4}, nil},
		{"packed", AttnShape{B: 2, T: 7, Hq: 4, Hk: 1, D: 4}, []int32{0, 0, 0, 1, 1, 2, 2, 0, 1, 1, 1, 1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s
			r := rand.New(rand.NewPCG(11, uint64(s.T)))
			n := s.B * s.T
			q, k, v := randT(r, 1, n, s.Hq*s.D), randT(r, 1, n, s.Hk*s.D), randT(r, 1, n, s.Hk*s.D)
			out, lse, wt := New(n, s.Hq*s.D), New(s.B*s.Hq*s.T), randT(r, 1, n, s.Hq*s.D)
			loss := func() float64 { c.AttentionForward(out, lse, q, k, v, tc.seg, s); return dot(out, wt) }
			loss()
			ref := naiveAttention(q.F32, k.F32, v.F32, tc.seg, s)
			for i, x := range ref {
				if math.Abs(float64(out.F32[i])-x) > 1e-5 {
					t.Fatalf("out[%d] = %v, naive %v", i, out.F32[i], x)
				}
			}
			dq, dk, dv := New(n, s.Hq*s.D), New(n, s.Hk*s.D), New(n, s.Hk*s.D)
			c.AttentionBackward(dq, dk, dv, wt, out, lse, q, k, v, tc.seg, s)
			checkGrad(t, "dq", q, dq, loss)
			checkGrad(t, "dk", k, dk, loss)
			checkGrad(t, "dv", v, dv, loss)
		})
	}
}

func TestLMHeadLossGrad(t *testing.T) {
	// Every 7th row ignored (chunks gathered), and none (chunks used in
	// place); more rows than one chunk so the chunk boundary is exercised.
	for _, ignoreEvery := range []int{7, 0} {
		c := testCPU()
		r := rand.New(rand.NewPCG(13, 14))
		n, ch, vocab := lossChunk+5, 6, 11
		h, w := randT(r, 1, n, ch), randT(r, 1, vocab, ch)
		targets := make([]int32, n)
		for i := range targets {
			targets[i] = int32(r.IntN(vocab))
			if ignoreEvery > 0 && i%ignoreEvery == 3 {
				targets[i] = IgnoreIndex
			}
		}
		const scale = 0.37
		loss := func() float64 { s, _ := c.LMHeadLoss(h, w, targets, nil, nil, nil, 0); return s * scale }
		tok, dh, dw := New(n), New(n, ch), New(vocab, ch)
		for i := range dh.F32 {
			dh.F32[i] = 7 // dh is overwritten, ignored rows included
		}
		sum, count := c.LMHeadLoss(h, w, targets, tok, dh, dw, scale)
		// Independent check of the value: log-softmax rows of the full logits.
		logits, lsm := New(n, vocab), New(n, vocab)
		c.LinearForward(logits, h, w, nil)
		c.LogSoftmaxRows(lsm, logits)
		var want float64
		var wantCount int
		for i, tg := range targets {
			if tg == IgnoreIndex {
				if tok.F32[i] != 0 {
					t.Fatalf("ignored row %d has loss %v", i, tok.F32[i])
				}
				continue
			}
			want -= float64(lsm.F32[i*vocab+int(tg)])
			wantCount++
		}
		if count != wantCount || math.Abs(sum-want) > 1e-4*math.Abs(want) {
			t.Fatalf("loss sum %v over %d, want %v over %d", sum, count, want, wantCount)
		}
		checkGrad(t, "dh", h, dh, loss)
		checkGrad(t, "dw", w, dw, loss)
	}
}

func TestLMHeadTokenStatsAndGrad(t *testing.T) {
	c := testCPU()
	r := rand.New(rand.NewPCG(15, 16))
	n, ch, vocab := lossChunk+3, 5, 9
	h, w := randT(r, 1, n, ch), randT(r, 1, vocab, ch)
	targets := make([]int32, n)
	a, e := make([]float32, n), make([]float32, n)
	for i := range targets {
		targets[i] = int32(r.IntN(vocab))
		if i%5 == 2 {
			targets[i] = IgnoreIndex
		}
		a[i] = r.Float32()*2 - 1
		e[i] = r.Float32()*2 - 1
	}
	st := TokenStats{LogProb: make([]float32, n), Entropy: make([]float32, n)}
	objective := func() float64 {
		c.LMHeadTokenStats(h, w, targets, st)
		var s float64
		for i := range targets {
			s += float64(a[i])*float64(st.LogProb[i]) + float64(e[i])*float64(st.Entropy[i])
		}
		return s
	}
	objective()
	// Values against an independent log-softmax of full logits.
	logits, lsm := New(n, vocab), New(n, vocab)
	c.LinearForward(logits, h, w, nil)
	c.LogSoftmaxRows(lsm, logits)
	for i, tg := range targets {
		if tg == IgnoreIndex {
			continue
		}
		var ent float64
		for j := 0; j < vocab; j++ {
			lp := float64(lsm.F32[i*vocab+j])
			ent -= math.Exp(lp) * lp
		}
		if d := math.Abs(float64(st.LogProb[i] - lsm.F32[i*vocab+int(tg)])); d > 1e-5 {
			t.Fatalf("row %d logp %v vs %v", i, st.LogProb[i], lsm.F32[i*vocab+int(tg)])
		}
		if d := math.Abs(float64(st.Entropy[i]) - ent); d > 1e-5 {
			t.Fatalf("row %d entropy %v vs %v", i, st.Entropy[i], ent)
		}
	}
	dh, dw := New(n, ch), New(vocab, ch)
	c.LMHeadTokenGrad(h, w, targets, a, e, dh, dw)
	checkGrad(t, "dh", h, dh, objective)
	checkGrad(t, "dw", w, dw, objective)
}
