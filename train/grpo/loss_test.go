package grpo

import (
	"math"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// The hand-computed case of the issue: rewards [1, 0, 0.5, 0], unbiased
// std, log-ratios [0.1, -0.2, 0, 0.3], clip range [0.8, 1.2].
func TestHandComputedCase(t *testing.T) {
	adv := GroupAdvantages([]float64{1, 0, 0.5, 0})
	wantAdv := []float64{1.30558, -0.783348, 0.261116, -0.783348}
	for i := range adv {
		if !near(adv[i], wantAdv[i], 5e-6) {
			t.Fatalf("advantage %d = %.6f, want %.6f", i, adv[i], wantAdv[i])
		}
	}
	cfg := LossConfig{ClipLow: 0.2, ClipHigh: 0.2}
	logRatio := []float64{0.1, -0.2, 0, 0.3}
	wantObj := []float64{1.442889, -0.641351, 0.261116, -1.057409}
	wantClipped := []bool{false, false, false, false}
	for i := range logRatio {
		tt := cfg.Token(logRatio[i], 0, logRatio[i], adv[i])
		if !near(tt.Obj, wantObj[i], 5e-6) || tt.Clipped != wantClipped[i] {
			t.Errorf("token %d: objective %.6f (clipped %v), want %.6f", i, tt.Obj, tt.Clipped, wantObj[i])
		}
	}
	// A positive advantage with a ratio above 1+eps is clipped: constant
	// objective, zero gradient.
	tt := cfg.Token(0.3, 0, 0, 1.30558)
	if !tt.Clipped || !near(tt.Obj, 1.2*1.30558, 1e-9) || tt.DObj != 0 {
		t.Fatalf("clipped case: %+v", tt)
	}
}

// Derivatives against central differences, across both clip branches.
func TestTokenDerivatives(t *testing.T) {
	cfg := LossConfig{ClipLow: 0.2, ClipHigh: 0.25, KLCoef: 0.1}
	for _, c := range []struct{ logp, old, ref, adv float64 }{
		{-1.0, -1.05, -0.9, 0.7}, {-2.0, -1.9, -2.3, -1.2}, {-0.5, -0.5, -0.4, 0.3}, {-1.0, -1.5, -1.0, 0.8},
	} {
		const h = 1e-6
		tt := cfg.Token(c.logp, c.old, c.ref, c.adv)
		p, m := cfg.Token(c.logp+h, c.old, c.ref, c.adv), cfg.Token(c.logp-h, c.old, c.ref, c.adv)
		if num := (p.Obj - m.Obj) / (2 * h); !near(num, tt.DObj, 1e-5) {
			t.Errorf("%+v: dObj %.8f, numeric %.8f", c, tt.DObj, num)
		}
		if num := (p.KL - m.KL) / (2 * h); !near(num, tt.DKL, 1e-5) {
			t.Errorf("%+v: dKL %.8f, numeric %.8f", c, tt.DKL, num)
		}
		if tt.KL < 0 {
			t.Errorf("k3 KL negative: %v", tt.KL)
		}
	}
	// KL is exactly zero when the policy equals the reference.
	if tt := cfg.Token(-1.3, -1.3, -1.3, 1); tt.KL != 0 || tt.DKL != 0 {
		t.Fatalf("KL at the reference: %+v", tt)
	}
}

func TestCoefficientsAreTokenMean(t *testing.T) {
	cfg := LossConfig{ClipLow: 0.2, ClipHigh: 0.25, KLCoef: 0.001, EntropyCoef: 0.01}
	tt := cfg.Token(-1, -1, -1.2, 0.5)
	a, e := cfg.Coefficients(tt, 10)
	if !near(a, (-tt.DObj+0.001*tt.DKL)/10, 1e-15) || !near(e, -0.001, 1e-15) {
		t.Fatalf("coefficients %v %v", a, e)
	}
	if adv := GroupAdvantages([]float64{0.7}); adv[0] != 0 {
		t.Fatalf("single-sample group advantage %v", adv)
	}
	if adv := GroupAdvantages([]float64{1, 1, 1}); adv[0] != 0 || adv[2] != 0 {
		t.Fatalf("zero-variance group advantage %v", adv)
	}
}
