package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"purpcode/internal/testref"
)

// naiveSgemm is the float64 reference: row-major C = alpha*op(A)*op(B) + beta*C,
// with C not read when beta == 0. It also returns, per element, the sum of
// absolute terms, which bounds the float32 rounding error of any summation
// order.
func naiveSgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) (want, scale []float64) {
	want = make([]float64, m*n)
	scale = make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, sa float64
			for p := 0; p < k; p++ {
				var av, bv float64
				if transA {
					av = float64(a[p*lda+i])
				} else {
					av = float64(a[i*lda+p])
				}
				if transB {
					bv = float64(b[j*ldb+p])
				} else {
					bv = float64(b[p*ldb+j])
				}
				s += av * bv
				sa += math.Abs(av * bv)
			}
			w := float64(alpha) * s
			sc := math.Abs(float64(alpha)) * sa
			if beta != 0 {
				cv := float64(c[i*ldc+j])
				w += float64(beta) * cv
				sc += math.Abs(float64(beta) * cv)
			}
			want[i*n+j] = w
			scale[i*n+j] = sc
		}
	}
	return want, scale
}

type gemmCase struct {
	transA, transB bool
	m, n, k        int
	lda, ldb, ldc  int
	alpha, beta    float32
	a, b, c        []float32
}

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// padSentinel marks C's padding columns so tests can prove they are never
// written.
const padSentinel = float32(-12345.5)

func newCase(r *rand.Rand, transA, transB bool, m, n, k int, padded bool, alpha, beta float32) gemmCase {
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	tc := gemmCase{transA: transA, transB: transB, m: m, n: n, k: k,
		lda: max(1, ac), ldb: max(1, bc), ldc: max(1, n), alpha: alpha, beta: beta}
	if padded {
		tc.lda += 1 + r.IntN(5)
		tc.ldb += 1 + r.IntN(5)
		tc.ldc += 1 + r.IntN(5)
	}
	tc.a = randSlice(r, max(0, (ar-1)*tc.lda+ac))
	tc.b = randSlice(r, max(0, (br-1)*tc.ldb+bc))
	tc.c = randSlice(r, max(0, (m-1)*tc.ldc+n))
	for i := 0; i < m; i++ {
		for j := n; j < tc.ldc && i*tc.ldc+j < len(tc.c); j++ {
			tc.c[i*tc.ldc+j] = padSentinel
		}
	}
	return tc
}

func (tc gemmCase) String() string {
	return fmt.Sprintf("tA=%v tB=%v m=%d n=%d k=%d lda=%d ldb=%d ldc=%d alpha=%g beta=%g",
		tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.lda, tc.ldb, tc.ldc, tc.alpha, tc.beta)
}

// runAndCheck runs the case on a copy of C and compares with the float64
// reference within a bound proportional to k * eps32 * sum|terms|.
func runAndCheck(t *testing.T, bl *BLAS, tc gemmCase) []float32 {
	t.Helper()
	want, scale := naiveSgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, tc.a, tc.lda, tc.b, tc.ldb, tc.beta, tc.c, tc.ldc)
	got := append([]float32(nil), tc.c...)
	bl.Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, tc.a, tc.lda, tc.b, tc.ldb, tc.beta, got, tc.ldc)
	const eps32 = 1.0 / (1 << 23)
	for i := 0; i < tc.m; i++ {
		for j := 0; j < tc.ldc && i*tc.ldc+j < len(got); j++ {
			g := got[i*tc.ldc+j]
			if j >= tc.n {
				if g != padSentinel {
					t.Fatalf("%s: %s wrote padding C[%d][%d]=%g", bl.Name(), tc, i, j, g)
				}
				continue
			}
			w, sc := want[i*tc.n+j], scale[i*tc.n+j]
			tol := float64(tc.k+4)*eps32*sc + 1e-30
			if d := math.Abs(float64(g) - w); !(d <= tol) {
				t.Fatalf("%s: %s: C[%d][%d]=%g want %g (|diff| %g > tol %g)", bl.Name(), tc, i, j, g, w, d, tol)
			}
		}
	}
	return got
}

// backends returns the gonum path and, when it loads, OpenBLAS.
func backends(t *testing.T) []*BLAS {
	bs := []*BLAS{LoadBLAS(BLASOptions{ForceGo: true})}
	if ob := LoadBLAS(BLASOptions{}); ob.IsOpenBLAS() {
		bs = append(bs, ob)
	} else {
		t.Logf("OpenBLAS path not exercised: %s", ob.Name())
	}
	return bs
}

func TestSgemmMatchesNaive(t *testing.T) {
	dims := []int{1, 2, 3, 7, 16, 31, 33, 64, 65, 129}
	alphas := []float32{1, -0.5, 2.25, 0}
	betas := []float32{0, 1, -1.5, 0.75}
	for _, bl := range backends(t) {
		r := rand.New(rand.NewPCG(1, 2))
		for it := 0; it < 160; it++ {
			tA, tB := it&1 != 0, it&2 != 0
			m, n, k := dims[r.IntN(len(dims))], dims[r.IntN(len(dims))], dims[r.IntN(len(dims))]
			tc := newCase(r, tA, tB, m, n, k, it%3 != 0, alphas[r.IntN(len(alphas))], betas[r.IntN(len(betas))])
			runAndCheck(t, bl, tc)
		}
	}
}

// TestSgemmLargerShapes covers sizes above OpenBLAS's small-matrix paths, where
// it switches to its threaded, packed kernels.
func TestSgemmLargerShapes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, bl := range backends(t) {
		for combo := 0; combo < 4; combo++ {
			tc := newCase(r, combo&1 != 0, combo&2 != 0, 257, 190, 301, combo%2 == 0, 0.7, 0.3)
			runAndCheck(t, bl, tc)
		}
	}
}

func TestOpenBLASMatchesGonum(t *testing.T) {
	ob := LoadBLAS(BLASOptions{})
	if !ob.IsOpenBLAS() {
		testref.Missing(t, testref.NeedOpenBLAS, ob.Name())
	}
	g := LoadBLAS(BLASOptions{ForceGo: true})
	r := rand.New(rand.NewPCG(5, 6))
	for it := 0; it < 40; it++ {
		tc := newCase(r, it&1 != 0, it&2 != 0, 1+r.IntN(90), 1+r.IntN(90), 1+r.IntN(90), it%2 == 0, float32(r.NormFloat64()), float32(r.NormFloat64()))
		_, scale := naiveSgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, tc.a, tc.lda, tc.b, tc.ldb, tc.beta, tc.c, tc.ldc)
		c1 := append([]float32(nil), tc.c...)
		c2 := append([]float32(nil), tc.c...)
		ob.Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, tc.a, tc.lda, tc.b, tc.ldb, tc.beta, c1, tc.ldc)
		g.Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, tc.a, tc.lda, tc.b, tc.ldb, tc.beta, c2, tc.ldc)
		for i := 0; i < tc.m; i++ {
			for j := 0; j < tc.n; j++ {
				x, y := float64(c1[i*tc.ldc+j]), float64(c2[i*tc.ldc+j])
				tol := 2 * float64(tc.k+4) / (1 << 23) * scale[i*tc.n+j]
				if math.Abs(x-y) > tol {
					t.Fatalf("%s: C[%d][%d] openblas %g gonum %g (tol %g)", tc, i, j, x, y, tol)
				}
			}
		}
	}
}

func TestLoadBLASForceGo(t *testing.T) {
	b := LoadBLAS(BLASOptions{ForceGo: true})
	if b.IsOpenBLAS() {
		t.Fatal("ForceGo returned OpenBLAS")
	}
	if !strings.Contains(b.Name(), "gonum") || !strings.Contains(b.Name(), "ForceGo") {
		t.Fatalf("Name %q should name gonum and ForceGo", b.Name())
	}
	if b.FallbackReason() == "" {
		t.Fatal("empty fallback reason")
	}
}

func TestLoadBLASBogusLibraryFallsBack(t *testing.T) {
	const bogus = "/nonexistent/libopenblas.so.0"
	b := LoadBLAS(BLASOptions{Library: bogus})
	if b.IsOpenBLAS() {
		t.Fatalf("loaded %s?", bogus)
	}
	if !strings.Contains(b.Name(), bogus) || !strings.Contains(b.Name(), "gonum") {
		t.Fatalf("Name %q should mention gonum and %s", b.Name(), bogus)
	}
	r := rand.New(rand.NewPCG(7, 8))
	runAndCheck(t, b, newCase(r, true, false, 9, 11, 13, true, 1.5, 0.5))
}

// TestLoadBLASLibraryWithoutCblas opens a real library that lacks
// cblas_sgemm, exercising the dlsym failure path (and its dlclose).
func TestLoadBLASLibraryWithoutCblas(t *testing.T) {
	b := LoadBLAS(BLASOptions{Library: "libc.so.6"})
	if b.IsOpenBLAS() {
		t.Fatal("libc.so.6 accepted as a BLAS")
	}
	if !strings.Contains(b.Name(), "cblas_sgemm") && !strings.Contains(b.Name(), "without cgo") {
		t.Fatalf("Name %q should say cblas_sgemm is missing", b.Name())
	}
}

func TestLoadBLASTwice(t *testing.T) {
	b1, b2 := LoadBLAS(BLASOptions{}), LoadBLAS(BLASOptions{})
	if b1.Name() != b2.Name() || b1.IsOpenBLAS() != b2.IsOpenBLAS() {
		t.Fatalf("loads differ: %q vs %q", b1.Name(), b2.Name())
	}
	if b1.IsOpenBLAS() && !strings.HasPrefix(b1.Name(), "openblas (libopenblas.so") {
		t.Fatalf("unexpected Name %q", b1.Name())
	}
	t.Logf("default BLAS: %s", b1.Name())
	r := rand.New(rand.NewPCG(9, 10))
	tc := newCase(r, false, true, 20, 30, 40, false, 1, 0)
	runAndCheck(t, b1, tc)
	runAndCheck(t, b2, tc)
}

func TestSgemmZeroSizesAndBeta(t *testing.T) {
	nan := float32(math.NaN())
	for _, bl := range backends(t) {
		// m == 0 or n == 0: C untouched even with beta == 0.
		c := []float32{nan, 3}
		bl.Sgemm(false, false, 0, 2, 3, 1, nil, 3, make([]float32, 6), 2, 0, nil, 2)
		bl.Sgemm(false, false, 1, 0, 3, 1, make([]float32, 3), 3, nil, 1, 0, c, 1)
		if !math.IsNaN(float64(c[0])) || c[1] != 3 {
			t.Fatalf("%s: empty product touched C: %v", bl.Name(), c)
		}
		// k == 0: C = beta*C; beta == 0 overwrites NaN.
		c = []float32{2, 4, nan, 8}
		bl.Sgemm(false, false, 2, 1, 0, 1, nil, 1, nil, 1, 0.5, c, 2)
		if c[0] != 1 || c[1] != 4 || !math.IsNaN(float64(c[2])) || c[3] != 8 {
			t.Fatalf("%s: k=0 beta=0.5 gave %v", bl.Name(), c)
		}
		c = []float32{nan, 4, nan, 8}
		bl.Sgemm(true, true, 2, 1, 0, 1, nil, 2, nil, 1, 0, c, 2)
		if c[0] != 0 || c[1] != 4 || c[2] != 0 || c[3] != 8 {
			t.Fatalf("%s: k=0 beta=0 gave %v", bl.Name(), c)
		}
		// beta == 0 with k > 0: C is not read, so NaN does not propagate.
		r := rand.New(rand.NewPCG(11, 12))
		for combo := 0; combo < 4; combo++ {
			tc := newCase(r, combo&1 != 0, combo&2 != 0, 5, 6, 7, true, 1.25, 0)
			for i := 0; i < tc.m; i++ {
				for j := 0; j < tc.n; j++ {
					tc.c[i*tc.ldc+j] = nan
				}
			}
			runAndCheck(t, bl, tc)
		}
	}
}

func expectPanic(t *testing.T, what, contains string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Fatalf("%s: no panic", what)
		}
		if msg := fmt.Sprint(r); !strings.Contains(msg, contains) {
			t.Fatalf("%s: panic %q does not mention %q", what, msg, contains)
		}
	}()
	f()
}

func TestSgemmPanicsOnBadArguments(t *testing.T) {
	for _, bl := range backends(t) {
		a, b, c := make([]float32, 12), make([]float32, 20), make([]float32, 15)
		// 3x4 * 4x5 -> 3x5 is valid.
		bl.Sgemm(false, false, 3, 5, 4, 1, a, 4, b, 5, 0, c, 5)
		expectPanic(t, "short a", "len(a)", func() { bl.Sgemm(false, false, 3, 5, 4, 1, a[:11], 4, b, 5, 0, c, 5) })
		expectPanic(t, "short b", "len(b)", func() { bl.Sgemm(false, false, 3, 5, 4, 1, a, 4, b[:19], 5, 0, c, 5) })
		expectPanic(t, "short c", "len(c)", func() { bl.Sgemm(false, false, 3, 5, 4, 1, a, 4, b, 5, 0, c[:14], 5) })
		expectPanic(t, "lda small", "lda", func() { bl.Sgemm(false, false, 3, 5, 4, 1, a, 3, b, 5, 0, c, 5) })
		expectPanic(t, "ldb small", "ldb", func() { bl.Sgemm(false, false, 3, 5, 4, 1, a, 4, b, 4, 0, c, 5) })
		expectPanic(t, "ldc small", "ldc", func() { bl.Sgemm(false, false, 3, 5, 4, 1, a, 4, b, 5, 0, c, 4) })
		// Transposed A is stored k x m = 4x3: lda 4 is fine, but then 12 is too short.
		expectPanic(t, "transA length", "len(a)", func() { bl.Sgemm(true, false, 3, 5, 4, 1, a, 4, b, 5, 0, c, 5) })
		expectPanic(t, "negative", "negative", func() { bl.Sgemm(false, false, -1, 5, 4, 1, a, 4, b, 5, 0, c, 5) })
	}
}

// TestSgemmConcurrent calls one BLAS value from several goroutines at once,
// as the engine's per-head work does.
func TestSgemmConcurrent(t *testing.T) {
	for _, bl := range backends(t) {
		var wg sync.WaitGroup
		cases := make([]gemmCase, 8)
		outs := make([][]float32, len(cases))
		r := rand.New(rand.NewPCG(13, 14))
		for i := range cases {
			cases[i] = newCase(r, i&1 != 0, i&2 != 0, 40+i, 50, 60, false, 1, 0.5)
		}
		for i := range cases {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tc := cases[i]
				outs[i] = append([]float32(nil), tc.c...)
				bl.Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, tc.a, tc.lda, tc.b, tc.ldb, tc.beta, outs[i], tc.ldc)
			}()
		}
		wg.Wait()
		for i, tc := range cases {
			want := runAndCheck(t, bl, tc)
			for j := range want {
				if want[j] != outs[i][j] {
					t.Fatalf("%s: concurrent result %d differs at %d: %g vs %g", bl.Name(), i, j, outs[i][j], want[j])
				}
			}
		}
	}
}
