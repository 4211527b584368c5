package sft

import (
	"purpcode/engine"
	"purpcode/model/qwen2"
	"purpcode/train/optim"
)

// CountTargets is the number of positions of b that carry a loss.
func CountTargets(b *qwen2.Batch) int {
	n := 0
	for _, t := range b.Targets {
		if t != engine.IgnoreIndex {
			n++
		}
	}
	return n
}

// AccumulateGradients zeroes the gradients and runs forward, loss and
// backward over the micro-batches of one optimizer step, scaling every
// gradient by 1/(target tokens of all of them). It returns the summed token
// loss and that total; loss = sum/total. Every batch must have passed
// Validate and have acts' shape. With no targets at all the gradients stay
// zero.
func AccumulateGradients(m *qwen2.Model, acts *qwen2.Acts, micro []*qwen2.Batch) (sum float64, total int) {
	m.P.ZeroGrad()
	for _, b := range micro {
		total += CountTargets(b)
	}
	if total == 0 {
		return 0, 0
	}
	scale := float32(1 / float64(total))
	for _, b := range micro {
		if CountTargets(b) == 0 {
			continue // padding-only micro-batch: contributes nothing
		}
		m.Forward(acts, b)
		s, _ := m.Loss(acts, b, true, scale)
		m.Backward(acts, b)
		sum += s
	}
	return sum, total
}

// EvalLoss returns the summed token loss and target count of batches
// without touching gradients.
func EvalLoss(m *qwen2.Model, acts *qwen2.Acts, b *qwen2.Batch) (float64, int) {
	if CountTargets(b) == 0 {
		return 0, 0
	}
	m.Forward(acts, b)
	return m.Loss(acts, b, false, 0)
}

// StepResult is what one optimizer step measured.
type StepResult struct {
	Loss     float64 // token mean over the step
	GradNorm float64 // global norm before clipping
	Targets  int
}

// Trainer applies optimizer steps to a model.
type Trainer struct {
	Model *qwen2.Model
	Opt   optim.Optimizer
	Clip  float64 // global-norm limit, 0 = none
	acts  *qwen2.Acts
}

// NewTrainer returns a trainer for micro-batches of shape (b, t).
func NewTrainer(m *qwen2.Model, opt optim.Optimizer, b, t int, clip float64) *Trainer {
	return &Trainer{Model: m, Opt: opt, Clip: clip, acts: m.NewActs(b, t)}
}

// Recompute switches the trainer to activation checkpointing (see
// qwen2.Acts.Recompute): same gradients, one more forward per layer, a
// fraction of the activation memory.
func (tr *Trainer) Recompute() {
	tr.acts = tr.Model.NewActsRecompute(tr.acts.B, tr.acts.T)
}

// Acts is the trainer's activation arena (reusable for evaluation).
func (tr *Trainer) Acts() *qwen2.Acts { return tr.acts }

// Gradients computes the step's loss and gradients without updating.
func (tr *Trainer) Gradients(micro []*qwen2.Batch) StepResult {
	sum, total := AccumulateGradients(tr.Model, tr.acts, micro)
	r := StepResult{Targets: total}
	if total > 0 {
		r.Loss = sum / float64(total)
	}
	return r
}

// Update clips the accumulated gradients, steps the optimizer at lr and
// returns the pre-clip gradient norm.
func (tr *Trainer) Update(lr float64) float64 {
	ps := tr.Model.P
	norm := optim.ClipGradNorm(tr.Model.Backend(), ps.Weights.Grad, tr.Clip)
	tr.Opt.Step(ps.Weights, lr)
	return norm
}

// Step is Gradients followed by Update. A step without target tokens
// leaves the weights unchanged.
func (tr *Trainer) Step(micro []*qwen2.Batch, lr float64) StepResult {
	r := tr.Gradients(micro)
	if r.Targets > 0 {
		r.GradNorm = tr.Update(lr)
	}
	return r
}
