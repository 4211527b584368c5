package sft

import (
	"fmt"

	"purpcode/internal/progress"
)

// Brief is the step's headline numbers for a progress line.
func (m Metrics) Brief() string {
	return fmt.Sprintf("loss %.4f, lr %.2e, %.0f tok/s", m.Loss, m.LR, m.TokensPerS)
}

// ShowProgress sets OnStart and OnStep to drive a bar of the run's steps on
// out, noting the last step's loss. Call the returned function when Run
// returns to end the bar.
func (o *Options) ShowProgress(out *progress.Output) (done func()) {
	var bar *progress.Bar
	o.OnStart = func(step, total int64) { bar = out.Start("sft", "steps", step, total) }
	o.OnStep = func(m Metrics, _ int64) { bar.Set(m.Step, m.Brief()) }
	return func() { bar.Done() }
}
