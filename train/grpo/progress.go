package grpo

import (
	"fmt"

	"purpcode/internal/progress"
)

// Brief is the step's headline numbers for a progress line.
func (m Metrics) Brief() string {
	return fmt.Sprintf("reward %.3f (format %.2f), usable %d/%d, kl %.4f", m.Reward, m.FormatRate, m.UsableGroups, m.Drawn, m.KL)
}

// ShowProgress sets OnStart, OnStep and OnRollout to drive a bar of the
// run's steps on out, noting the last step's numbers and, while a step
// rolls out, how many of its prompts are done. Call the returned function
// when Run returns to end the bar.
func (o *Options) ShowProgress(out *progress.Output) (done func()) {
	var bar *progress.Bar
	var last string
	o.OnStart = func(step, total int64) { bar = out.Start("rl", "steps", step, total) }
	o.OnStep = func(m Metrics, _ int64) {
		last = m.Brief()
		bar.Set(m.Step, last)
	}
	o.OnRollout = func(step int64, done, total int) {
		note := fmt.Sprintf("step %d: %d/%d prompts rolled out", step, done, total)
		if last != "" {
			note = last + "; " + note
		}
		bar.Set(step-1, note)
	}
	return func() { bar.Done() }
}
