package grpo

import "math"

// GRPO policy loss.
//
// For a prompt with n sampled responses and scalar rewards r_1..r_n, each
// response i gets the group-normalised advantage
//
//	A_i = (r_i - mean(r)) / (std(r) + 1e-6),  std unbiased (n-1 denominator),
//
// shared by all its tokens. For every response token t with log-probability
// logp_t under the policy being trained, logp_old_t under the policy that
// sampled it and logp_ref_t under the frozen reference policy:
//
//	ratio_t = exp(logp_t - logp_old_t)
//	obj_t   = min(ratio_t * A, clip(ratio_t, 1 - eps_low, 1 + eps_high) * A)
//	obj_t   = max(obj_t, c * A)   when A < 0 and c > 0 (dual clip)
//	kl_t    = exp(logp_ref_t - logp_t) - (logp_ref_t - logp_t) - 1   ("k3", >= 0)
//	H_t     = entropy of the policy's next-token distribution at t
//
// and the loss minimised is the token-level mean over all response tokens
// of the step (all groups, all micro-batches), T of them:
//
//	L = (1/T) * sum_t [ -obj_t + kl_coef * kl_t - entropy_coef * H_t ].
//
// The dual clip (Ye et al. 2020, "Mastering Complex Control in MOBA Games
// with Deep Reinforcement Learning"; verl's clip_ratio_c, 3 by default, which
// PurpCode's runs used) bounds what one token of a response with negative
// advantage can cost: min(ratio, clip(ratio)) * A is unbounded below as
// the policy raises a bad token's probability past the sampler's, so the
// per-token loss -obj_t is capped at -c * A (a ratio above c adds no
// gradient). c = 0 turns it off; otherwise c must exceed 1 (with c <= 1 the
// cap would cut ordinary ratios near 1).
//
// There are no other terms (no value function, no length normalisation per
// response). Gradients with respect to logp_t:
//
//	d(-obj_t)/dlogp_t = -ratio_t * A  when the unclipped term is the minimum
//	                    and the dual clip does not cap it, else 0
//	d(kl_t)/dlogp_t   = 1 - exp(logp_ref_t - logp_t)
//
// and the entropy term's gradient is taken through the full distribution
// (engine.LMHeadTokenGrad).

// LossConfig holds the coefficients of the GRPO loss.
type LossConfig struct {
	ClipLow     float64 // eps_low, default 0.2
	ClipHigh    float64 // eps_high, default 0.25
	ClipRatioC  float64 // dual clip c for negative advantages, default 3; 0 = off
	KLCoef      float64 // default 0.001
	EntropyCoef float64 // default 0 (off)
}

// DefaultClipRatioC is verl's clip_ratio_c.
const DefaultClipRatioC = 3

// DefaultLossConfig returns the PurpCode/verl defaults.
func DefaultLossConfig() LossConfig {
	return LossConfig{ClipLow: 0.2, ClipHigh: 0.25, ClipRatioC: DefaultClipRatioC, KLCoef: 0.001}
}

// AdvantageEps is added to the group standard deviation.
const AdvantageEps = 1e-6

// GroupAdvantages returns (r_i - mean) / (std + 1e-6) with the unbiased
// standard deviation. A group of one gets advantage 0.
func GroupAdvantages(rewards []float64) []float64 {
	n := len(rewards)
	out := make([]float64, n)
	if n < 2 {
		return out
	}
	mean, std := MeanStd(rewards)
	for i, r := range rewards {
		out[i] = (r - mean) / (std + AdvantageEps)
	}
	return out
}

// MeanStd returns the mean and the unbiased standard deviation.
func MeanStd(x []float64) (mean, std float64) {
	n := float64(len(x))
	for _, v := range x {
		mean += v
	}
	mean /= n
	if len(x) < 2 {
		return mean, 0
	}
	var ss float64
	for _, v := range x {
		ss += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(ss / (n - 1))
}

// TokenTerms are one token's loss terms and their derivatives.
type TokenTerms struct {
	Ratio   float64 // exp(logp - logp_old)
	Obj     float64 // clipped surrogate objective
	Clipped bool    // the clipped term was the minimum (zero gradient)
	Capped  bool    // the dual clip capped a negative advantage's loss (zero gradient)
	KL      float64 // k3 estimate of KL(policy || reference)
	DObj    float64 // d(obj)/d(logp)
	DKL     float64 // d(kl)/d(logp)
}

// Token evaluates the clipped surrogate (with the dual clip) and the k3 KL
// for one token.
func (c LossConfig) Token(logp, oldLogp, refLogp, adv float64) TokenTerms {
	ratio := math.Exp(logp - oldLogp)
	clipped := math.Min(math.Max(ratio, 1-c.ClipLow), 1+c.ClipHigh)
	un, cl := ratio*adv, clipped*adv
	tt := TokenTerms{Ratio: ratio}
	if un <= cl {
		tt.Obj, tt.DObj = un, un
	} else {
		tt.Obj, tt.Clipped = cl, true
	}
	if floor := c.ClipRatioC * adv; c.ClipRatioC > 0 && adv < 0 && tt.Obj < floor {
		tt.Obj, tt.DObj, tt.Capped = floor, 0, true
	}
	d := refLogp - logp
	tt.KL = math.Exp(d) - d - 1
	tt.DKL = 1 - math.Exp(d)
	return tt
}

// Coefficients returns the per-token coefficients of logp and entropy whose
// gradient (through engine.LMHeadTokenGrad) is the gradient of the loss,
// given the total number of response tokens of the step.
func (c LossConfig) Coefficients(tt TokenTerms, totalTokens int) (coefLogp, coefEnt float64) {
	inv := 1 / float64(totalTokens)
	return inv * (-tt.DObj + c.KLCoef*tt.DKL), -inv * c.EntropyCoef
}
