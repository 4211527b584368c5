package suite

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"purpcode/sandbox"
)

//go:embed evalplus_driver.py
var evalPlusDriver string

// CodeResult is the verdict of the evalplus scorer on one answer.
type CodeResult struct {
	Base  bool   `json:"base"`
	Plus  bool   `json:"plus"` // base and plus inputs all right
	Error string `json:"error,omitempty"`
}

// evalPlusLimits leave room for a canonical solution and an answer over
// a few hundred inputs each.
var evalPlusLimits = sandbox.Limits{CPUSeconds: 60, Wall: 90 * time.Second, MemoryBytes: 2 << 30}

// ScoreCode runs code (already extracted from the answer) against the
// item's base and plus inputs in the sandbox.
func ScoreCode(ctx context.Context, sb *sandbox.Runner, it *Item, code string) (CodeResult, error) {
	plus := it.PlusInputs
	if len(plus) == 0 {
		plus = json.RawMessage("[]")
	}
	spec, err := json.Marshal(map[string]any{"entry_point": it.EntryPoint, "atol": it.Atol, "compare": it.Compare,
		"decode": it.Decode, "base": it.BaseInputs, "plus": plus})
	if err != nil {
		return CodeResult{}, fmt.Errorf("%s: %w", it.ID, err)
	}
	lim := evalPlusLimits
	res, err := sb.Run(ctx, sandbox.Job{Lang: "python", Code: evalPlusDriver, Limits: &lim, Files: map[string]string{
		"spec.json": string(spec), "canonical.py": it.Canonical, "candidate.py": code,
	}})
	if err != nil {
		return CodeResult{}, fmt.Errorf("%s: sandbox: %w", it.ID, err)
	}
	lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	var out struct {
		Base, Plus struct {
			Pass  bool   `json:"pass"`
			Error string `json:"error"`
		}
	}
	if res.TimedOut || len(lines) == 0 || json.Unmarshal([]byte(lines[len(lines)-1]), &out) != nil {
		why := fmt.Sprintf("harness gave no verdict (exit %d %s, timed out %v): %s", res.ExitCode, res.Signal, res.TimedOut, clipTail(res.Stderr, 400))
		return CodeResult{Error: why}, nil
	}
	r := CodeResult{Base: out.Base.Pass, Plus: out.Base.Pass && out.Plus.Pass, Error: out.Base.Error}
	if r.Error == "" {
		r.Error = out.Plus.Error
	}
	return r, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// clipTail keeps the end of s (a traceback's last lines say what failed).
func clipTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
