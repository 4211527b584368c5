package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestExpfAccuracy(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	var worst float64
	check := func(x float32) {
		got := float64(Expf(x))
		want := math.Exp(float64(x))
		if want == 0 || math.IsInf(want, 0) {
			return
		}
		if rel := math.Abs(got-want) / want; rel > worst {
			worst = rel
		}
	}
	for i := 0; i < 200000; i++ {
		check(float32(r.Float64()*170 - 85))
		check(float32(r.Float64()*2 - 1))
	}
	for _, x := range []float32{0, 1, -1, 0.5, -0.5, 88, -87, 1e-8, -1e-8} {
		check(x)
	}
	t.Logf("worst relative error %.3g", worst)
	if worst > 3e-7 {
		t.Fatalf("expf worst relative error %.3g > 3e-7", worst)
	}
	if Expf(-100) != 0 || !math.IsInf(float64(Expf(100)), 1) || Expf(0) != 1 {
		t.Fatalf("edge cases: Expf(-100)=%v Expf(100)=%v Expf(0)=%v", Expf(-100), Expf(100), Expf(0))
	}
	if nan := float32(math.NaN()); Expf(nan) == Expf(nan) {
		t.Fatal("Expf(NaN) is not NaN")
	}
}

func BenchmarkExpf(b *testing.B) {
	x := make([]float32, 4096)
	for i := range x {
		x[i] = float32(i%200)/10 - 10
	}
	var s float32
	for i := 0; i < b.N; i++ {
		for _, v := range x {
			s += Expf(v)
		}
	}
	_ = s
}
