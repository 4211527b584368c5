package kernels

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func randVec(r *rand.Rand, n int, scale float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64() * scale)
	}
	return s
}

// near reports the worst |a-b| / (|b| + floor) over two slices.
func worstRel(a, b []float32, floor float64) float64 {
	var w float64
	for i := range a {
		d := math.Abs(float64(a[i])-float64(b[i])) / (math.Abs(float64(b[i])) + floor)
		if d > w || math.IsNaN(d) {
			w = d
		}
	}
	return w
}

func expectNear(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	if w := worstRel(got, want, 1e-6); w > tol {
		t.Errorf("%s (%s kernels): worst relative difference from the Go reference %.3g > %.3g", what, vecImpl, w, tol)
	}
}

// segmentStarts returns per-query first attendable keys for a row packed
// with documents of the given lengths.
func segmentStarts(t int, lens ...int) []int32 {
	start := make([]int32, t)
	i := 0
	for _, l := range lens {
		for j := 0; j < l && i < t; j++ {
			start[i] = int32(i - j)
			i++
		}
	}
	for ; i < t; i++ {
		start[i] = start[i-1]
	}
	return start
}

// The kernels in use (C with cgo) agree with the Go reference versions to
// float32 rounding, on odd sizes that exercise the vector tails, and every
// value outside a row's causal window is exactly zero.
func TestAttnSoftmaxMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tt := range []int{1, 7, 33, 130} {
		g := 3
		start := segmentStarts(tt, tt/3+1, tt)
		s := randVec(r, g*tt*tt, 3)
		s[5%len(s)] = -200 // a score whose exp underflows
		want, got := slices.Clone(s), slices.Clone(s)
		lseW, lseG := make([]float32, g*tt), make([]float32, g*tt)
		attnSoftmaxGo(want, tt, 0, g*tt, start, lseW, true)
		AttnSoftmax(got, tt, 0, g*tt, start, lseG, true)
		expectNear(t, "probabilities", got, want, 2e-6)
		expectNear(t, "lse", lseG, lseW, 1e-6)
		for row := 0; row < g*tt; row++ {
			i := row % tt
			var sum float64
			for j := 0; j < tt; j++ {
				p := got[row*tt+j]
				if (j < int(start[i]) || j > i) && p != 0 {
					t.Fatalf("T=%d row %d col %d outside the window holds %g", tt, row, j, p)
				}
				sum += float64(p)
			}
			if math.Abs(sum-1) > 1e-5 {
				t.Fatalf("T=%d row %d sums to %g", tt, row, sum)
			}
		}
		// Recomputing from lse gives the same probabilities.
		again := slices.Clone(s)
		AttnSoftmax(again, tt, 0, g*tt, start, lseG, false)
		expectNear(t, "recomputed probabilities", again, got, 1e-5)
	}
}

func TestAttnSoftmaxGradMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	tt, g, d := 37, 2, 12
	ldo := 4 * d // the group's heads sit inside a wider output row
	start := segmentStarts(tt, 10, tt)
	p := randVec(r, g*tt*tt, 1)
	dO, o := randVec(r, g*tt*d, 1), randVec(r, tt*ldo, 1)
	dp := randVec(r, g*tt*tt, 1)
	want, got := slices.Clone(dp), slices.Clone(dp)
	attnSoftmaxGradGo(want, p, tt, dO, d, o, ldo, 0, g*tt, start)
	AttnSoftmaxGrad(got, p, tt, dO, d, o, ldo, 0, g*tt, start)
	expectNear(t, "dS", got, want, 1e-5)
	// Row ranges compose: two halves equal one call.
	split := slices.Clone(dp)
	AttnSoftmaxGrad(split, p, tt, dO, d, o, ldo, 0, 29, start)
	AttnSoftmaxGrad(split, p, tt, dO, d, o, ldo, 29, g*tt, start)
	if !slices.Equal(split, got) {
		t.Error("dS computed in two row ranges differs from one call")
	}
}

func TestXentRowsMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, v := range []int{3, 17, 1000} {
		targets := []int32{0, int32(v - 1), -100, int32(v / 2), 1 % int32(v)}
		z := randVec(r, len(targets)*v, 4)
		for _, grad := range []bool{false, true} {
			want, got := slices.Clone(z), slices.Clone(z)
			lw, lg := make([]float64, len(targets)), make([]float64, len(targets))
			xentRowsGo(want, v, targets, lw, 0.25, grad)
			XentRows(got, v, targets, lg, 0.25, grad)
			for i := range lw {
				// Independent check: the loss from float64 math.
				var want64 float64
				if targets[i] >= 0 {
					zr := z[i*v : (i+1)*v]
					m := float64(slices.Max(zr))
					var se float64
					for _, x := range zr {
						se += math.Exp(float64(x) - m)
					}
					want64 = m + math.Log(se) - float64(zr[targets[i]])
				}
				if math.Abs(lg[i]-want64) > 1e-5*(1+math.Abs(want64)) || math.Abs(lw[i]-want64) > 1e-5*(1+math.Abs(want64)) {
					t.Errorf("V=%d row %d: loss %g (Go %g), float64 %g", v, i, lg[i], lw[i], want64)
				}
			}
			if grad {
				expectNear(t, "xent gradient", got, want, 2e-6)
				for j := 0; j < v; j++ {
					if got[2*v+j] != 0 {
						t.Fatalf("V=%d: ignored row has gradient %g at %d", v, got[2*v+j], j)
					}
				}
			}
		}
	}
}

func TestElementwiseMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	n := 1003
	gate, up, dout := randVec(r, n, 3), randVec(r, n, 1), randVec(r, n, 1)
	gate[0], gate[1] = -120, 120 // saturated sigmoid both ways
	outW, sigW := make([]float32, n), make([]float32, n)
	outG, sigG := make([]float32, n), make([]float32, n)
	swigluGo(outW, sigW, gate, up)
	SwiGLU(outG, sigG, gate, up)
	expectNear(t, "swiglu out", outG, outW, 2e-6)
	expectNear(t, "swiglu sigmoid", sigG, sigW, 2e-6)
	noSig := make([]float32, n)
	SwiGLU(noSig, nil, gate, up)
	expectNear(t, "swiglu out without sig", noSig, outW, 2e-6)
	for _, sig := range [][]float32{sigG, nil} {
		dgW, duW, dgG, duG := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
		swigluGradGo(dgW, duW, dout, gate, up, sig)
		SwiGLUGrad(dgG, duG, dout, gate, up, sig)
		expectNear(t, "swiglu dgate", dgG, dgW, 1e-5)
		expectNear(t, "swiglu dup", duG, duW, 1e-5)
	}
	a, b := randVec(r, n, 1), randVec(r, n, 1)
	sum := make([]float32, n)
	Add(sum, a, b)
	for i := range sum {
		if sum[i] != a[i]+b[i] {
			t.Fatalf("Add[%d] = %g, want %g", i, sum[i], a[i]+b[i])
		}
	}
}

func TestRMSNormMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	rows, c := 11, 77
	x, w, dout := randVec(r, rows*c, 2), randVec(r, c, 1), randVec(r, rows*c, 1)
	outW, rsW, outG, rsG := make([]float32, rows*c), make([]float32, rows), make([]float32, rows*c), make([]float32, rows)
	rmsNormGo(outW, rsW, x, w, c, 0, rows, 1e-6)
	RMSNorm(outG, rsG, x, w, c, 0, rows, 1e-6)
	expectNear(t, "rmsnorm out", outG, outW, 1e-6)
	expectNear(t, "rmsnorm rstd", rsG, rsW, 1e-6)
	dx0 := randVec(r, rows*c, 1) // accumulates into existing values
	dxW, dxG := slices.Clone(dx0), slices.Clone(dx0)
	rmsNormGradXGo(dxW, dout, x, w, rsW, c, 0, rows)
	RMSNormGradX(dxG, dout, x, w, rsW, c, 0, rows)
	expectNear(t, "rmsnorm dx", dxG, dxW, 1e-5)
	dw0 := randVec(r, c, 1)
	dwW, dwG := slices.Clone(dw0), slices.Clone(dw0)
	rmsNormGradWGo(dwW, dout, x, rsW, rows, c, 0, c)
	RMSNormGradW(dwG[:40], dout, x, rsW, rows, c, 0, 40)
	RMSNormGradW(dwG, dout, x, rsW, rows, c, 40, c)
	expectNear(t, "rmsnorm dw", dwG, dwW, 1e-5)
}

func TestRoPEMatchesReferenceAndInverts(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	rows, heads, d, maxPos := 9, 3, 10, 16
	cos, sin := make([]float32, maxPos*d/2), make([]float32, maxPos*d/2)
	for i := range cos {
		a := r.Float64() * 6
		cos[i], sin[i] = float32(math.Cos(a)), float32(math.Sin(a))
	}
	pos := make([]int32, rows)
	for i := range pos {
		pos[i] = int32(r.IntN(maxPos))
	}
	x := randVec(r, rows*heads*d, 1)
	want, got := slices.Clone(x), slices.Clone(x)
	ropeGo(want, pos, heads, d, cos, sin, 1, 0, rows)
	RoPE(got, pos, heads, d, cos, sin, 1, 0, rows)
	expectNear(t, "rope", got, want, 1e-5)
	RoPE(got, pos, heads, d, cos, sin, -1, 0, rows)
	expectNear(t, "rope then inverse", got, x, 1e-5)
}

func TestVecKernelsRejectBadArguments(t *testing.T) {
	for name, fn := range map[string]func(){
		"short scores":      func() { AttnSoftmax(make([]float32, 10), 4, 0, 4, make([]int32, 4), make([]float32, 4), true) },
		"target past vocab": func() { XentRows(make([]float32, 6), 3, []int32{0, 3}, make([]float64, 2), 1, false) },
		"swiglu lengths":    func() { SwiGLU(make([]float32, 3), nil, make([]float32, 2), make([]float32, 3)) },
		"rope position":     func() { RoPE(make([]float32, 4), []int32{9}, 1, 4, make([]float32, 8), make([]float32, 8), 1, 0, 1) },
		// Found in review: each passed the old checks and crashed in C.
		"grad reads o past the last row's head": func() {
			big := make([]float32, 8)
			AttnSoftmaxGrad(make([]float32, 6), make([]float32, 6), 2, make([]float32, 3), 1, big[:2:2], 4, 0, 3, []int32{0, 0})
		},
		"negative r0": func() { AttnSoftmax(make([]float32, 4), 2, -1000000, 1, []int32{0, 0}, make([]float32, 2), true) },
		"rmsnorm r0": func() {
			RMSNorm(make([]float32, 4), make([]float32, 2), make([]float32, 4), make([]float32, 2), 2, -5, 1, 1e-6)
		},
		"start too far":  func() { AttnSoftmax(make([]float32, 4), 2, 0, 2, []int32{1 << 28, 0}, make([]float32, 2), true) },
		"negative start": func() { AttnSoftmax(make([]float32, 4), 2, 0, 2, []int32{0, -100000}, make([]float32, 2), true) },
		"t zero":         func() { AttnSoftmax(nil, 0, 0, 1, nil, make([]float32, 1), true) },
		"negative vocab": func() { XentRows(make([]float32, 4), -1, []int32{-5}, make([]float64, 1), 1, true) },
		"overflowing d": func() {
			AttnSoftmaxGrad(make([]float32, 2), make([]float32, 2), 1, nil, 1<<62+1000, nil, 0, 0, 2, []int32{0})
		},
		"overflowing c": func() {
			RMSNormGradW(make([]float32, 8), make([]float32, 8), make([]float32, 8), make([]float32, 1), 1, 1<<62+8, 0, 8)
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn()
		}()
	}
}

// BenchmarkXentRows compares the kernel in use with the Go reference on
// 16 rows of an 8192-token vocabulary (the lm head's softmax pass).
func BenchmarkXentRows(b *testing.B) {
	for _, impl := range []struct {
		name string
		fn   func(z []float32, v int, targets []int32, loss []float64, scale float32, grad bool)
	}{{vecImpl, XentRows}, {"go-reference", xentRowsGo}} {
		b.Run(impl.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 1))
			v := 8192
			targets := make([]int32, 16)
			z := randVec(r, len(targets)*v, 3)
			loss := make([]float64, len(targets))
			work := make([]float32, len(z))
			b.SetBytes(int64(4 * len(z)))
			for b.Loop() {
				copy(work, z)
				impl.fn(work, v, targets, loss, 1, true)
			}
		})
	}
}
