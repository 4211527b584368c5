package optim

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"purpcode/engine"
)

// host wraps flat weights and gradients as CPU-backend weights.
func host(cpu *engine.CPU, w, g []float32) *engine.Weights { return cpu.NewWeights(w, g) }

func newCPU(workers int) *engine.CPU {
	return engine.NewDefaultCPU(engine.CPUOptions{Workers: workers})
}

type adamRef struct {
	Config struct {
		Beta1       float64 `json:"beta1"`
		Beta2       float64 `json:"beta2"`
		Eps         float64 `json:"eps"`
		WeightDecay float64 `json:"weight_decay"`
	} `json:"config"`
	Init struct {
		W []float32 `json:"w"`
		B []float32 `json:"b"`
	} `json:"init"`
	Steps []struct {
		LR        float64   `json:"lr"`
		GradW     []float32 `json:"grad_w"`
		GradB     []float32 `json:"grad_b"`
		W         []float32 `json:"w"`
		B         []float32 `json:"b"`
		ExpAvgW   []float32 `json:"exp_avg_w"`
		ExpAvgSqB []float32 `json:"exp_avg_sq_b"`
	} `json:"steps"`
}

func maxAbsDiff(t *testing.T, what string, got, want []float32) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, reference has %d", what, len(got), len(want))
	}
	var m float64
	for i := range got {
		m = math.Max(m, math.Abs(float64(got[i])-float64(want[i])))
	}
	return m
}

// TestAdamWMatchesPyTorch replays testdata/adamw_ref.json (made by
// adamw_ref.py with torch.optim.AdamW): a decayed and an undecayed tensor,
// three steps at different learning rates.
func TestAdamWMatchesPyTorch(t *testing.T) {
	data, err := os.ReadFile("testdata/adamw_ref.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref adamRef
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	nw, nb := len(ref.Init.W), len(ref.Init.B)
	segs := []Segment{{Name: "w", Off: 0, N: nw, Decay: true}, {Name: "b", Off: nw, N: nb, Decay: false}}
	w := append(append([]float32(nil), ref.Init.W...), ref.Init.B...)
	g := make([]float32, nw+nb)
	c := ref.Config
	cpu := newCPU(2)
	opt := NewAdamW(cpu, segs, nw+nb, AdamWConfig{Beta1: c.Beta1, Beta2: c.Beta2, Eps: c.Eps, WeightDecay: c.WeightDecay})
	if len(ref.Steps) != 3 {
		t.Fatalf("reference has %d steps, want 3", len(ref.Steps))
	}
	for i, s := range ref.Steps {
		copy(g, s.GradW)
		copy(g[nw:], s.GradB)
		opt.Step(host(cpu, w, g), s.LR)
		for _, chk := range []struct {
			name      string
			got, want []float32
		}{
			{"w", w[:nw], s.W}, {"b", w[nw:], s.B},
			{"exp_avg(w)", opt.M[:nw], s.ExpAvgW}, {"exp_avg_sq(b)", opt.V[nw:], s.ExpAvgSqB},
		} {
			if d := maxAbsDiff(t, chk.name, chk.got, chk.want); d > 1e-6 {
				t.Errorf("step %d: %s differs from PyTorch by %.3g > 1e-6", i+1, chk.name, d)
			}
		}
	}
	if opt.Steps() != 3 {
		t.Errorf("Steps() = %d after 3 steps", opt.Steps())
	}
}

// TestAdamWNoDecayOnExcluded checks decoupled decay acts only on Decay
// segments: with zero gradients, Adam's update is zero and only decay moves
// the weights.
func TestAdamWNoDecayOnExcluded(t *testing.T) {
	segs := []Segment{{Name: "w", Off: 0, N: 4, Decay: true}, {Name: "norm", Off: 4, N: 2}}
	w := []float32{1, 2, 3, 4, 5, 6}
	cpu := newCPU(1)
	opt := NewAdamW(cpu, segs, 6, AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.5})
	opt.Step(host(cpu, w, make([]float32, 6)), 0.1)
	want := []float32{0.95, 1.9, 2.85, 3.8, 5, 6}
	if d := maxAbsDiff(t, "w", w, want); d > 1e-6 {
		t.Errorf("weights %v, want %v", w, want)
	}
}

// TestUpdatesIndependentOfWorkers: the chunked parallel update gives the
// same bits for any number of goroutines.
func TestUpdatesIndependentOfWorkers(t *testing.T) {
	n := 3*chunk + 123
	segs := []Segment{{Name: "a", Off: 0, N: chunk + 7, Decay: true}, {Name: "b", Off: chunk + 7, N: n - chunk - 7}}
	r := rand.New(rand.NewPCG(1, 2))
	w0, g := make([]float32, n), make([]float32, n)
	for i := range w0 {
		w0[i], g[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
	}
	run := func(workers int, sgd bool) []float32 {
		w := append([]float32(nil), w0...)
		cpu := newCPU(workers)
		var o Optimizer = NewAdamW(cpu, segs, n, AdamWConfig{Beta1: 0.9, Beta2: 0.99, Eps: 1e-8, WeightDecay: 0.1})
		if sgd {
			o = NewSGD(segs, n, SGDConfig{Momentum: 0.9, WeightDecay: 0.01})
		}
		for s := 0; s < 3; s++ {
			o.Step(host(cpu, w, g), 1e-3)
		}
		return w
	}
	for _, sgd := range []bool{false, true} {
		a, b := run(1, sgd), run(5, sgd)
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				t.Fatalf("sgd=%v: element %d differs between 1 and 5 workers: %v vs %v", sgd, i, a[i], b[i])
			}
		}
	}
	gt := engine.FromF32(g, n)
	if newCPU(1).SumSquares(gt) != newCPU(7).SumSquares(gt) {
		t.Errorf("SumSquares depends on workers")
	}
}

// TestSGDMomentumMatchesDefinition follows torch.optim.SGD by hand:
// buf_1 = g_1, buf_t = mu*buf_{t-1} + g_t (+ wd*w), w -= lr*buf.
func TestSGDMomentumMatchesDefinition(t *testing.T) {
	segs := []Segment{{Name: "w", Off: 0, N: 2, Decay: true}, {Name: "b", Off: 2, N: 1}}
	w := []float32{1, -1, 0.5}
	o := NewSGD(segs, 3, SGDConfig{Momentum: 0.5, WeightDecay: 0.1})
	grads := [][]float32{{1, 2, 3}, {-1, 0.5, 1}}
	ew := []float64{1, -1, 0.5}
	buf := make([]float64, 3)
	for s, gr := range grads {
		o.Step(host(newCPU(1), w, gr), 0.1)
		for i := range ew {
			d := float64(gr[i])
			if i < 2 {
				d += 0.1 * ew[i]
			}
			if s > 0 {
				d += 0.5 * buf[i]
			}
			buf[i] = d
			ew[i] -= 0.1 * d
		}
	}
	for i := range w {
		if math.Abs(float64(w[i])-ew[i]) > 1e-6 {
			t.Errorf("w[%d] = %v, want %v", i, w[i], ew[i])
		}
	}
}

func TestClipGradNorm(t *testing.T) {
	cpu := newCPU(1)
	g := []float32{3, 4}
	gt := engine.FromF32(g, 2)
	if n := ClipGradNorm(cpu, gt, 10); n != 5 || g[0] != 3 || g[1] != 4 {
		t.Errorf("norm below the limit: got norm %v, grads %v; want 5 and unchanged", n, g)
	}
	n := ClipGradNorm(cpu, gt, 1)
	if n != 5 {
		t.Errorf("returned norm %v, want the pre-clip norm 5", n)
	}
	coef := 1 / (5 + 1e-6)
	if math.Abs(float64(g[0])-3*coef) > 1e-7 || math.Abs(float64(g[1])-4*coef) > 1e-7 {
		t.Errorf("clipped grads %v, want %v", g, []float64{3 * coef, 4 * coef})
	}
	if n := ClipGradNorm(cpu, gt, 0); math.Abs(n-1) > 1e-6 {
		t.Errorf("measure-only norm %v, want ~1", n)
	}
}

func TestSchedules(t *testing.T) {
	cos := Schedule{Kind: Cosine, LR: 1, Warmup: 4, Total: 14, MinRatio: 0.1}
	cases := []struct {
		s    Schedule
		step int
		want float64
	}{
		{cos, 0, 0}, {cos, 2, 0.5}, {cos, 4, 1},
		{cos, 9, 0.1 + 0.9*0.5}, {cos, 14, 0.1}, {cos, 20, 0.1},
		{Schedule{Kind: Linear, LR: 2, Warmup: 0, Total: 10}, 0, 2},
		{Schedule{Kind: Linear, LR: 2, Warmup: 0, Total: 10}, 5, 1},
		{Schedule{Kind: Linear, LR: 2, Warmup: 2, Total: 10}, 6, 1},
		{Schedule{Kind: Linear, LR: 2, Warmup: 0, Total: 10}, 12, 0},
		{Schedule{Kind: Constant, LR: 3, Warmup: 3, Total: 10}, 1, 1},
		{Schedule{Kind: Constant, LR: 3, Total: 10}, 9, 3},
	}
	for _, c := range cases {
		if got := c.s.At(c.step); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%+v at step %d = %v, want %v", c.s, c.step, got, c.want)
		}
	}
	for _, bad := range []Schedule{{Kind: "step", LR: 1}, {Kind: Cosine, LR: -1}, {Kind: Cosine, LR: 1, MinRatio: 2}, {Kind: Linear, LR: 1, Warmup: -1}} {
		if bad.Validate() == nil {
			t.Errorf("%+v: Validate accepted it", bad)
		}
	}
}
