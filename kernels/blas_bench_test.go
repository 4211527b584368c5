package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"purpcode/internal/testref"
)

// BenchmarkSgemm measures the GEMMs of the bench model (1024 tokens, hidden
// 512, intermediate 1408, vocab 8192). NN rows are the forward products and
// dX = dY*W; TN rows are weight gradients dW = dY^T X (k = tokens); NT is the
// tied-embedding lm head, logits = X E^T.
func BenchmarkSgemm(b *testing.B) {
	shapes := []struct {
		transA, transB bool
		m, n, k        int
	}{
		{false, false, 1024, 512, 512},
		{false, false, 1024, 1408, 512},
		{false, false, 1024, 512, 1408},
		{false, false, 1024, 8192, 512},
		{false, true, 1024, 8192, 512},
		{true, false, 512, 512, 1024},
		{true, false, 1408, 512, 1024},
		{true, false, 512, 1408, 1024},
		{true, false, 8192, 512, 1024},
	}
	impls := []struct {
		name string
		blas *BLAS
	}{
		{"openblas", LoadBLAS(BLASOptions{})},
		{"go", LoadBLAS(BLASOptions{ForceGo: true})},
	}
	for _, impl := range impls {
		b.Run(impl.name, func(b *testing.B) {
			if impl.name == "openblas" && !impl.blas.IsOpenBLAS() {
				testref.Missing(b, testref.NeedOpenBLAS, impl.blas.Name())
			}
			b.Logf("%s", impl.blas.Name())
			for _, s := range shapes {
				name := fmt.Sprintf("%dx%dx%d", s.m, s.n, s.k)
				if s.transA || s.transB {
					name += "_" + map[bool]string{false: "N", true: "T"}[s.transA] + map[bool]string{false: "N", true: "T"}[s.transB]
				}
				b.Run(name, func(b *testing.B) {
					r := rand.New(rand.NewPCG(1, 1))
					lda, ldb := s.k, s.n
					if s.transA {
						lda = s.m
					}
					if s.transB {
						ldb = s.k
					}
					a, bm, c := randSlice(r, s.m*s.k), randSlice(r, s.k*s.n), make([]float32, s.m*s.n)
					for b.Loop() {
						impl.blas.Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
					}
					flops := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(b.N)
					b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		})
	}
}
