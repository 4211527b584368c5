package grpo

import "math"

// ZeroVarianceStd is the reward standard deviation at or below which a
// group carries no learning signal (all advantages ~0) and is dropped.
const ZeroVarianceStd = 1e-5

// Usable reports whether a group's rewards vary.
func Usable(rewards []float64) bool {
	_, std := MeanStd(rewards)
	return len(rewards) > 1 && std > ZeroVarianceStd
}

// DynamicSampler implements PurpCode's single-step dynamic sampling: each
// step draws min(MaxRollFactor*B, B/usable) prompts, where usable is the
// fraction of groups that had reward variance in the previous step, rolls
// them out once, drops zero-variance groups and trains on all the rest (more
// or fewer than B). Compared with DAPO's repeated sampling (draw again until
// B usable groups exist), it never needs a second rollout round.
type DynamicSampler struct {
	B             int     // prompts per step wanted for training
	MaxRollFactor float64 // cap on over-sampling, default 4
	// LastUsable is the usable fraction observed in the previous step
	// (1 before the first step). It is part of the resumable state.
	LastUsable float64
}

// NewDynamicSampler returns a sampler for b prompts per step.
func NewDynamicSampler(b int, maxRollFactor float64) *DynamicSampler {
	if maxRollFactor < 1 {
		maxRollFactor = 1
	}
	return &DynamicSampler{B: b, MaxRollFactor: maxRollFactor, LastUsable: 1}
}

// Draw is the number of prompts to roll out this step.
func (d *DynamicSampler) Draw() int {
	capN := int(math.Ceil(d.MaxRollFactor * float64(d.B)))
	if d.LastUsable <= 0 {
		return capN
	}
	// Round down a hair before taking the ceiling so that B/0.5 draws
	// exactly 2B despite floating-point noise in the fraction.
	want := int(math.Ceil(float64(d.B)/d.LastUsable - 1e-9))
	return max(d.B, min(capN, want))
}

// Observe records how many of the drawn groups were usable.
func (d *DynamicSampler) Observe(drawn, usable int) {
	if drawn > 0 {
		d.LastUsable = float64(usable) / float64(drawn)
	}
}
