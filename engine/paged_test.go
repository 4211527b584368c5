package engine

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkPagedAttention measures decode attention alone: 32 sequences of
// 256 cached tokens, bench-model heads.
func BenchmarkPagedAttention(b *testing.B) {
	const seqs, ctx = 32, 256
	p := PagedRows{Hq: 8, Hk: 2, D: 64, BlockSize: 16, MaxBlocks: ctx / 16}
	kc := New(seqs * p.MaxBlocks * p.Hk * p.BlockSize * p.D)
	vc := New(kc.Numel())
	q, out := New(seqs, p.Hq*p.D), New(seqs, p.Hq*p.D)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range kc.F32 {
		kc.F32[i], vc.F32[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
	}
	for s := range seqs {
		for j := range p.MaxBlocks {
			p.Tables = append(p.Tables, int32(s*p.MaxBlocks+j))
		}
		p.Seq, p.Pos = append(p.Seq, int32(s)), append(p.Pos, ctx-1)
	}
	c := NewDefaultCPU(CPUOptions{})
	b.ResetTimer()
	for b.Loop() {
		c.PagedAttention(out, q, kc, vc, p)
	}
	b.ReportMetric(float64(b.N*seqs)/b.Elapsed().Seconds(), "tokens/s")
}
