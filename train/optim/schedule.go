package optim

import (
	"fmt"
	"math"
)

// Schedule kinds.
const (
	Constant = "constant"
	Cosine   = "cosine" // linear warmup, then cosine decay to MinRatio*LR
	Linear   = "linear" // linear warmup, then linear decay to 0
)

// Schedule maps an optimizer step to a learning rate, with the semantics of
// transformers' get_*_schedule_with_warmup: the multiplier for the update
// that follows s completed steps is s/Warmup during warmup (so the very
// first update of a warmed-up run uses lr 0, as in HF), then decays over the
// remaining Total-Warmup steps.
type Schedule struct {
	Kind     string
	LR       float64 // peak learning rate
	Warmup   int     // warmup steps
	Total    int     // total optimizer steps of the run
	MinRatio float64 // cosine floor as a fraction of LR
}

// Validate reports a schedule that cannot be evaluated.
func (s Schedule) Validate() error {
	switch s.Kind {
	case Constant, Cosine, Linear:
	default:
		return fmt.Errorf("schedule %q: want %s, %s or %s", s.Kind, Constant, Cosine, Linear)
	}
	if s.LR < 0 || math.IsNaN(s.LR) || math.IsInf(s.LR, 0) {
		return fmt.Errorf("learning rate %v: want a finite value >= 0", s.LR)
	}
	if s.Warmup < 0 {
		return fmt.Errorf("warmup %d: want >= 0", s.Warmup)
	}
	if s.MinRatio < 0 || s.MinRatio > 1 {
		return fmt.Errorf("min_lr_ratio %v: want a value in [0, 1]", s.MinRatio)
	}
	return nil
}

// At returns the learning rate of the update that follows s completed steps.
func (s Schedule) At(step int) float64 {
	if step < s.Warmup {
		return s.LR * float64(step) / float64(max(1, s.Warmup))
	}
	rest := float64(max(1, s.Total-s.Warmup))
	progress := float64(step-s.Warmup) / rest
	switch s.Kind {
	case Cosine:
		progress = min(progress, 1)
		return s.LR * (s.MinRatio + (1-s.MinRatio)*0.5*(1+math.Cos(math.Pi*progress)))
	case Linear:
		return s.LR * max(0, float64(s.Total-step)/rest)
	}
	return s.LR
}
