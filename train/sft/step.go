package sft

import (
	"context"
	"fmt"

	"purpcode/engine"
	"purpcode/model/qwen2"
	"purpcode/train"
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
	total = countAll(micro)
	gs := train.NewGradSum(m)
	sum = accumulate(m, acts, gs, micro, total)
	gs.End(context.Background(), train.DP{}) // one process: nothing to fail
	return sum, total
}

func countAll(micro []*qwen2.Batch) int {
	total := 0
	for _, b := range micro {
		total += CountTargets(b)
	}
	return total
}

// accumulate starts gs and adds the gradients of micro, each token's loss
// scaled by 1/total (total counts the targets of the whole step, which
// under data parallelism is more than micro holds), returning the summed
// token loss of micro. gs.End finishes the sum.
func accumulate(m *qwen2.Model, acts *qwen2.Acts, gs *train.GradSum, micro []*qwen2.Batch, total int) (sum float64) {
	gs.Begin()
	if total == 0 {
		return 0
	}
	scale := float32(1 / float64(total))
	for _, b := range micro {
		if CountTargets(b) == 0 {
			continue // padding-only micro-batch: contributes nothing
		}
		gs.Pass(func() {
			m.Forward(acts, b)
			s, _ := m.Loss(acts, b, true, scale)
			m.Backward(acts, b)
			sum += s
		})
	}
	return sum
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
	dp    train.DP
	tp    bool // Model is a tensor-parallel shard
	grads *train.GradSum
}

// NewTrainer returns a trainer for micro-batches of shape (b, t).
func NewTrainer(m *qwen2.Model, opt optim.Optimizer, b, t int, clip float64) *Trainer {
	return &Trainer{Model: m, Opt: opt, Clip: clip, acts: m.NewActs(b, t), grads: train.NewGradSum(m)}
}

// Recompute switches the trainer to activation checkpointing (see
// qwen2.Acts.Recompute): same gradients, one more forward per layer, a
// fraction of the activation memory.
func (tr *Trainer) Recompute() {
	tr.acts.Free()
	tr.acts = tr.Model.NewActsRecompute(tr.acts.B, tr.acts.T)
}

// DataParallel makes the trainer one rank of dp: GradientsShared then
// computes only this rank's share of a step's micro-batches and sums the
// gradients and loss over the ranks.
func (tr *Trainer) DataParallel(dp train.DP) { tr.dp = dp }

// Group makes the trainer one rank of g: DataParallel(g.DP), and with
// g.TP the trainer's model must be this rank's shard (qwen2.Model.Shard on
// g.TP). The TP ranks of a replica run the same micro-batches; after
// Backward a shard's gradients are already the exact slices of the
// replica's, so they are summed over g.DP only, and Update clips with the
// whole model's norm (qwen2.Model.GradNorm), computed over g.TP.
func (tr *Trainer) Group(g train.Group) {
	tr.dp, tr.tp = g.DP, g.TP != nil
}

// Acts is the trainer's activation arena (reusable for evaluation).
func (tr *Trainer) Acts() *qwen2.Acts { return tr.acts }

// Gradients computes the step's loss and gradients without updating, in
// this process alone (whatever DataParallel says).
func (tr *Trainer) Gradients(micro []*qwen2.Batch) StepResult {
	r, _ := tr.gradients(context.Background(), train.DP{}, micro) // one process: nothing to fail
	return r
}

// GradientsShared is Gradients over a data-parallel group (see
// DataParallel): every rank passes all of the step's micro-batches (to
// count the step's target tokens, which scale every gradient) and runs
// forward and backward on its Share of them; the gradients and the loss
// are then summed over the ranks, so every rank holds the same gradients
// for Update. With one rank it equals Gradients; on the CPU backend the
// gradients equal it bit for bit whatever the number of ranks (see
// train.GradSum).
func (tr *Trainer) GradientsShared(ctx context.Context, micro []*qwen2.Batch) (StepResult, error) {
	return tr.gradients(ctx, tr.dp, micro)
}

func (tr *Trainer) gradients(ctx context.Context, dp train.DP, micro []*qwen2.Batch) (StepResult, error) {
	total := countAll(micro)
	lo, hi := dp.Share(len(micro))
	sum := accumulate(tr.Model, tr.acts, tr.grads, micro[lo:hi], total)
	r := StepResult{Targets: total}
	if total == 0 {
		return r, nil
	}
	if err := tr.grads.End(ctx, dp); err != nil {
		return r, err
	}
	if err := dp.SumF64(ctx, &sum); err != nil {
		return r, err
	}
	r.Loss = sum / float64(total)
	return r, nil
}

// Update clips the accumulated gradients, steps the optimizer at lr and
// returns the pre-clip gradient norm. On a shard (see Group) the norm is
// the whole model's (train.ClipGrad); a failed collective (the norm's, or
// a ZeRO-1 optimizer's) is returned and the weights may not have been
// updated.
func (tr *Trainer) Update(ctx context.Context, lr float64) (float64, error) {
	norm, err := train.ClipGrad(tr.Model, tr.tp, tr.Clip)
	if err != nil {
		return norm, err
	}
	// Detached like every collective of a step: an interrupt ends the
	// ranks together between steps, not inside one rank's update.
	if err := optim.StepContext(context.WithoutCancel(ctx), tr.Opt, tr.Model.P.Weights, lr); err != nil {
		return norm, fmt.Errorf("optimizer step: %w", err)
	}
	return norm, nil
}

// Step is Gradients followed by Update. A step without target tokens
// leaves the weights unchanged.
func (tr *Trainer) Step(micro []*qwen2.Batch, lr float64) StepResult {
	r := tr.Gradients(micro)
	if r.Targets > 0 {
		// One process: no collective that could fail.
		r.GradNorm, _ = tr.Update(context.Background(), lr)
	}
	return r
}
