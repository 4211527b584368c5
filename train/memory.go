package train

import (
	"fmt"
	"io"

	"purpcode/model/qwen2"
	"purpcode/plan"
)

// MemoryCheck holds a trainer to the memory plan `purpcode plan` prints:
// it logs the rank's plan (plan.ForRun) before the first step, and the
// plan against the backend's measured peak per category after the first
// step that reports one (a device backend), so a drift between the plan
// and what the code allocates shows in every run's log.
type MemoryCheck struct {
	plan   *plan.Plan
	w      io.Writer
	prefix string
	done   bool
}

// NewMemoryCheck builds rank's plan for cfg and r and logs it to w, each
// line starting with prefix ("sft: ").
func NewMemoryCheck(w io.Writer, prefix string, cfg *qwen2.Config, r plan.Run) (*MemoryCheck, error) {
	p, err := plan.ForRun(cfg, r)
	if err != nil {
		return nil, fmt.Errorf("memory plan: %w", err)
	}
	fmt.Fprintf(w, "%s%s\n", prefix, p.RunLine())
	return &MemoryCheck{plan: p, w: w, prefix: prefix}, nil
}

// After logs the comparison once, at the first step with a measured peak.
func (c *MemoryCheck) After(step int64, peak map[string]int64) {
	if c.done || peak == nil {
		return
	}
	c.done = true
	fmt.Fprintf(c.w, "%smemory after step %d: %s\n", c.prefix, step, plan.CheckLine(plan.Compare(c.plan, peak)))
}
