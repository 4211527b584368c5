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

// TestCoefficientsAreTokenMean checks the logp and entropy coefficients of
// one on-policy token against values worked out by hand: ratio 1, A = 0.5
// (unclipped, d(obj)/dlogp = 0.5), logp_ref - logp = -0.2 so
// d(kl)/dlogp = 1 - e^-0.2 = 0.18126924692201818, over T = 10 tokens:
//
//	coef_logp = (-0.5 + 0.001 * 0.18126924692201818) / 10 = -0.0499818730753078
//	coef_ent  = -0.01 / 10 = -0.001
func TestCoefficientsAreTokenMean(t *testing.T) {
	cfg := LossConfig{ClipLow: 0.2, ClipHigh: 0.25, ClipRatioC: 3, KLCoef: 0.001, EntropyCoef: 0.01}
	a, e := cfg.Coefficients(cfg.Token(-1, -1, -1.2, 0.5), 10)
	if !near(a, -0.0499818730753078, 1e-15) || !near(e, -0.001, 1e-15) {
		t.Fatalf("coefficients %.17g %.17g, want -0.0499818730753078 -0.001", a, e)
	}
	if adv := GroupAdvantages([]float64{0.7}); adv[0] != 0 {
		t.Fatalf("single-sample group advantage %v", adv)
	}
	if adv := GroupAdvantages([]float64{1, 1, 1}); adv[0] != 0 || adv[2] != 0 {
		t.Fatalf("zero-variance group advantage %v", adv)
	}
}

// TestDualClip checks verl's dual clip (clip_ratio_c = 3) on hand-computed
// tokens, clip range [0.8, 1.25]:
//
//	ratio 4, A = -0.5: min(4 * -0.5, 1.25 * -0.5) = -2 is below c * A = -1.5,
//	                   so obj = -1.5 (per-token loss 1.5 = -A * c), no gradient;
//	                   without the dual clip obj = -2, d(obj)/dlogp = -2.
//	ratio 2, A = -0.5: min(-1, -0.625) = -1 is above -1.5: unchanged, gradient -1.
//	ratio 4, A = +0.5: min(2, 0.625) = 0.625 (clipped): the dual clip is for A < 0.
func TestDualClip(t *testing.T) {
	const old = -2.0
	dual := LossConfig{ClipLow: 0.2, ClipHigh: 0.25, ClipRatioC: 3}
	off := dual
	off.ClipRatioC = 0
	for _, c := range []struct {
		name          string
		ratio, adv    float64
		cfg           LossConfig
		obj, dObj     float64
		capped, clipd bool
	}{
		{"ratio 4 > c, A < 0", 4, -0.5, dual, -1.5, 0, true, false},
		{"ratio 4, dual clip off", 4, -0.5, off, -2, -2, false, false},
		{"ratio 2 < c, A < 0", 2, -0.5, dual, -1, -1, false, false},
		{"ratio 2, dual clip off", 2, -0.5, off, -1, -1, false, false},
		{"ratio 4, A > 0", 4, 0.5, dual, 0.625, 0, false, true},
	} {
		tt := c.cfg.Token(old+math.Log(c.ratio), old, old, c.adv)
		if !near(tt.Obj, c.obj, 1e-12) || !near(tt.DObj, c.dObj, 1e-12) || tt.Capped != c.capped || tt.Clipped != c.clipd {
			t.Errorf("%s: obj %v dObj %v capped %v clipped %v; want %v %v %v %v", c.name, tt.Obj, tt.DObj, tt.Capped, tt.Clipped, c.obj, c.dObj, c.capped, c.clipd)
		}
	}
	if DefaultLossConfig().ClipRatioC != 3 || DefaultConfig().ClipRatioC != 3 {
		t.Errorf("dual clip not on by default (c = 3): loss %v, run config %v", DefaultLossConfig().ClipRatioC, DefaultConfig().ClipRatioC)
	}
}
