package engine

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"purpcode/kernels"
)

// BenchmarkAttention measures causal GQA attention forward+backward at the
// bench model's shape (B=4, T=256, 8 query / 2 kv heads, D=64), reporting
// GFLOP/s of the causal FLOPs (fwd 2 GEMMs, bwd 4 GEMMs of T*T*D/2 useful
// multiply-adds each per head).
func BenchmarkAttention(b *testing.B) {
	s := AttnShape{B: 4, T: 256, Hq: 8, Hk: 2, D: 64}
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			c := NewCPU(kernels.LoadBLAS(kernels.BLASOptions{}), workers)
			r := rand.New(rand.NewPCG(1, 2))
			n := s.B * s.T
			q, k, v := randT(r, 1, n, s.Hq*s.D), randT(r, 1, n, s.Hk*s.D), randT(r, 1, n, s.Hk*s.D)
			out, lse, dout := New(n, s.Hq*s.D), New(s.B*s.Hq*s.T), randT(r, 1, n, s.Hq*s.D)
			dq, dk, dv := New(n, s.Hq*s.D), New(n, s.Hk*s.D), New(n, s.Hk*s.D)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c.AttentionForward(out, lse, q, k, v, nil, s)
				c.AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v, nil, s)
			}
			flops := 6 * 2 * float64(s.B*s.Hq) * float64(s.T*s.T) * float64(s.D) / 2
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
