package qwen2

import (
	"math"
	"math/rand/v2"
	"testing"

	"purpcode/engine"
)

// TestRecomputeGradientsIdentical: activation checkpointing changes where
// activations live, not what is computed, so every gradient and the loss
// are bit-identical to the run that keeps all activations.
func TestRecomputeGradientsIdentical(t *testing.T) {
	cpu := engine.NewDefaultCPU(engine.CPUOptions{Workers: 2})
	m := tinyRandomModel(t, cpu)
	const bsz, seq = 2, 16
	r := rand.New(rand.NewPCG(5, 5))
	b := &Batch{B: bsz, T: seq, IDs: make([]int32, bsz*seq), Targets: make([]int32, bsz*seq), Seg: make([]int32, bsz*seq)}
	for i := range b.IDs {
		b.IDs[i] = int32(r.IntN(m.Cfg.Vocab))
		b.Targets[i] = int32(r.IntN(m.Cfg.Vocab))
		b.Seg[i] = int32(i % seq / 10)
	}
	run := func(a *Acts) (float64, []float32) {
		m.P.ZeroGrad()
		m.Forward(a, b)
		loss, _ := m.Loss(a, b, true, 1.0/float32(bsz*seq))
		m.Backward(a, b)
		return loss, append([]float32(nil), m.P.Grad...)
	}
	l0, g0 := run(m.NewActs(bsz, seq))
	l1, g1 := run(m.NewActsRecompute(bsz, seq))
	if math.Float64bits(l0) != math.Float64bits(l1) {
		t.Errorf("loss %v with recompute, %v without", l1, l0)
	}
	nonzero := 0
	for i := range g0 {
		if math.Float32bits(g0[i]) != math.Float32bits(g1[i]) {
			t.Fatalf("gradient %d: %v with recompute, %v without", i, g1[i], g0[i])
		}
		if g0[i] != 0 {
			nonzero++
		}
	}
	if nonzero < len(g0)/2 {
		t.Fatalf("only %d of %d gradients are non-zero: the comparison proves little", nonzero, len(g0))
	}
}
