package cuda

import (
	"math/rand/v2"
	"testing"

	"purpcode/engine"
	"purpcode/kernels"
)

// attnBenchShape is issue 15's attention measurement: one 4096-token causal
// sequence with Qwen2.5-7B's heads (28 query, 4 kv) at head dimension 128.
// attnBenchTiny keeps the same head dimension (the tensor-core forward) at
// a size the PTX emulator runs in seconds.
var (
	attnBenchShape = engine.AttnShape{B: 1, T: 4096, Hq: 28, Hk: 4, D: 128}
	attnBenchTiny  = engine.AttnShape{B: 1, T: 128, Hq: 4, Hk: 2, D: 128}
)

// attnFwdFLOPs counts the forward's two products (Q K^T and P V, 2 FLOPs
// per multiply-add) over the causal half of the score matrix, the
// FlashAttention papers' accounting. The backward does five such products
// (S recomputed, dP, dV, dQ, dK): 2.5 times the forward.
func attnFwdFLOPs(s engine.AttnShape) float64 {
	return 4 * float64(s.B) * float64(s.Hq) * float64(s.T) * float64(s.T) * float64(s.D) / 2
}

// BenchmarkAttention reports the attention kernels' TFLOP/s, forward alone
// and forward plus backward, on the device -cuda-device names. The full
// shape needs a GPU (scripts/gpu-check.sh); on the emulator it runs only
// under -short, on attnBenchTiny, which checks the benchmark itself and
// says nothing about speed.
func BenchmarkAttention(b *testing.B) {
	be := OpenForTest(b)
	s := attnBenchShape
	if testing.Short() {
		s = attnBenchTiny
	} else if be.ctx.Emulated() {
		b.Skipf("T=%d on the PTX emulator would take hours: run with -short (tiny shape) or -cuda-device=real", s.T)
	}
	r := rand.New(rand.NewPCG(3, 4))
	n := s.B * s.T
	act := func(heads int) *engine.Tensor {
		t, _ := bf16Pair(be, randVals(r, n*heads*s.D, 1), n, heads*s.D)
		return t
	}
	q, k, v, dout := act(s.Hq), act(s.Hk), act(s.Hk), act(s.Hq)
	out, dq := be.Alloc(engine.BF16, n, s.Hq*s.D), be.Alloc(engine.BF16, n, s.Hq*s.D)
	dk, dv := be.Alloc(engine.BF16, n, s.Hk*s.D), be.Alloc(engine.BF16, n, s.Hk*s.D)
	lse := be.Alloc(engine.F32, s.B*s.Hq*s.T)
	sync := func() {
		if err := be.ctx.Synchronize(kernels.Stream{}); err != nil {
			b.Fatal(err)
		}
	}
	fwd := func() { be.AttentionForward(out, lse, q, k, v, nil, s) }
	bwd := func() { be.AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v, nil, s) }
	for _, c := range []struct {
		name  string
		step  func()
		flops float64
	}{
		{"fwd", fwd, attnFwdFLOPs(s)},
		{"fwd+bwd", func() { fwd(); bwd() }, 3.5 * attnFwdFLOPs(s)},
	} {
		b.Run(c.name, func(b *testing.B) {
			c.step() // compiles the kernels and sizes the scratch buffers
			sync()
			for b.Loop() {
				c.step()
				sync()
			}
			b.ReportMetric(c.flops*float64(b.N)/b.Elapsed().Seconds()/1e12, "TFLOP/s")
		})
	}
}
