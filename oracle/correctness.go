package oracle

import (
	"context"
	_ "embed"
	"fmt"
	"strings"
	"sync"
	"time"

	"purpcode/sandbox"
)

//go:embed runner/run_tests.py
var runTestsPy string

//go:embed runner/pytest.py
var pytestShimPy string

// Tests are a row's correctness tests; exactly one form must be given. The
// JSON names follow PurpCode's ground-truth keys where it has them.
type Tests struct {
	// Pytest is a test file with test_* functions or Test* classes.
	Pytest string `json:"pytest,omitempty"`
	// Functional is code appended to the solution (asserts); exit 0 passes.
	Functional string `json:"functional,omitempty"`
	// Check defines HumanEval's check(candidate), called with EntryPoint.
	Check      string `json:"check,omitempty"`
	EntryPoint string `json:"entry_point,omitempty"`
	// Inputs and Outputs are stdin/stdout cases, compared after trimming
	// white space at both ends.
	Inputs  []string `json:"inputs,omitempty"`
	Outputs []string `json:"outputs,omitempty"`
	// TimeoutSeconds overrides the wall-clock limit of each run.
	TimeoutSeconds float64 `json:"timeout,omitempty"`
}

// Kind names the form of the tests, or returns an error naming the fields
// when none or several are set.
func (t *Tests) Kind() (string, error) {
	if t == nil {
		return "", fmt.Errorf("tests: missing (correctness needs pytest, functional, check+entry_point or inputs+outputs)")
	}
	var kinds []string
	if t.Pytest != "" {
		kinds = append(kinds, "pytest")
	}
	if t.Functional != "" {
		kinds = append(kinds, "functional")
	}
	if t.Check != "" || t.EntryPoint != "" {
		if t.Check == "" || t.EntryPoint == "" {
			return "", fmt.Errorf("tests: check and entry_point must be given together")
		}
		kinds = append(kinds, "check")
	}
	if len(t.Inputs) > 0 || len(t.Outputs) > 0 {
		if len(t.Inputs) != len(t.Outputs) {
			return "", fmt.Errorf("tests: %d inputs but %d outputs", len(t.Inputs), len(t.Outputs))
		}
		kinds = append(kinds, "io")
	}
	switch len(kinds) {
	case 0:
		return "", fmt.Errorf("tests: empty (want pytest, functional, check+entry_point or inputs+outputs)")
	case 1:
		return kinds[0], nil
	}
	return "", fmt.Errorf("tests: several forms given (%s); want exactly one", strings.Join(kinds, ", "))
}

// TestOptions configure the correctness oracle.
type TestOptions struct {
	// Limits for each sandbox run; zero fields take the runner's defaults.
	Limits sandbox.Limits
	// OutputTail is how many trailing bytes of output are kept.
	OutputTail int
}

// DefaultTestOptions: 10 s wall, 2 KiB of output kept.
func DefaultTestOptions() TestOptions {
	return TestOptions{Limits: sandbox.Limits{Wall: 10 * time.Second, CPUSeconds: 10}, OutputTail: 2048}
}

// CorrectnessResult is the correctness oracle's decision.
type CorrectnessResult struct {
	Score  float64
	Detail string
	// Output is the tail of the failing (or last) run's output.
	Output string
}

// Correctness runs tests against solution (Python source) in the sandbox.
func Correctness(ctx context.Context, sb *sandbox.Runner, solution string, tests *Tests, opt TestOptions) (CorrectnessResult, error) {
	kind, err := tests.Kind()
	if err != nil {
		return CorrectnessResult{}, err
	}
	if sb == nil {
		return CorrectnessResult{}, fmt.Errorf("correctness: no sandbox runner configured")
	}
	if strings.TrimSpace(solution) == "" {
		return CorrectnessResult{Detail: "no python code in the answer"}, nil
	}
	lim := opt.Limits
	if tests.TimeoutSeconds > 0 {
		lim.Wall = time.Duration(tests.TimeoutSeconds * float64(time.Second))
	}
	run := func(job sandbox.Job) (sandbox.Result, error) {
		job.Limits = &lim
		return sb.Run(ctx, job)
	}
	tail := func(res sandbox.Result) string {
		return tailString(res.Stdout+res.Stderr, opt.OutputTail)
	}
	fail := func(res sandbox.Result, what string) CorrectnessResult {
		return CorrectnessResult{Detail: what + ": " + describe(res), Output: tail(res)}
	}
	switch kind {
	case "pytest":
		res, err := run(sandbox.Job{Lang: "python", Code: runTestsPy, Files: map[string]string{
			"solution.py": solution, "test_solution.py": tests.Pytest, "pytest.py": pytestShimPy,
		}})
		if err != nil {
			return CorrectnessResult{}, err
		}
		if !res.OK() {
			return fail(res, "tests failed"), nil
		}
		return CorrectnessResult{Score: 1, Detail: "all tests passed", Output: tail(res)}, nil
	case "functional", "check":
		prog := solution + "\n\n" + tests.Functional
		if kind == "check" {
			prog = solution + "\n\n" + tests.Check + "\n\ncheck(" + tests.EntryPoint + ")\n"
		}
		res, err := run(sandbox.Job{Lang: "python", Code: prog})
		if err != nil {
			return CorrectnessResult{}, err
		}
		if !res.OK() {
			return fail(res, "tests failed"), nil
		}
		return CorrectnessResult{Score: 1, Detail: "all tests passed", Output: tail(res)}, nil
	}

	// stdin/stdout cases run concurrently (the runner bounds the
	// concurrency); the first failure by index is reported.
	type outcome struct {
		res sandbox.Result
		err error
	}
	outs := make([]outcome, len(tests.Inputs))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for i := range tests.Inputs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			res, err := sb.Run(ctx, sandbox.Job{Lang: "python", Code: solution, Stdin: tests.Inputs[i], Limits: &lim})
			outs[i] = outcome{res, err}
			if err != nil || !res.OK() || strings.TrimSpace(res.Stdout) != strings.TrimSpace(tests.Outputs[i]) {
				cancel() // one failure decides the score
			}
		}(i)
	}
	wg.Wait()
	for i, o := range outs {
		if o.err != nil {
			if ctx.Err() != nil && o.err != nil {
				continue // cancelled after another case failed
			}
			return CorrectnessResult{}, o.err
		}
		if !o.res.OK() {
			return fail(o.res, fmt.Sprintf("case %d of %d", i+1, len(outs))), nil
		}
		if got, want := strings.TrimSpace(o.res.Stdout), strings.TrimSpace(tests.Outputs[i]); got != want {
			return CorrectnessResult{
				Detail: fmt.Sprintf("case %d of %d: wrong output", i+1, len(outs)),
				Output: tailString(fmt.Sprintf("input: %q\nexpected: %q\nactual: %q\n%s", clipString(tests.Inputs[i], 200),
					clipString(want, 400), clipString(got, 400), o.res.Stderr), opt.OutputTail),
			}, nil
		}
	}
	for _, o := range outs {
		if o.err != nil {
			// Every case either passed or was cancelled by a failure that
			// the loop above reported; reaching here means an outer cancel.
			return CorrectnessResult{}, o.err
		}
	}
	return CorrectnessResult{Score: 1, Detail: fmt.Sprintf("%d/%d cases passed", len(outs), len(outs))}, nil
}

func describe(r sandbox.Result) string {
	switch {
	case r.TimedOut:
		return "timed out after " + r.Duration.Round(time.Millisecond).String()
	case r.OutputTruncated:
		return "output exceeded the cap"
	case r.Signal != "":
		return "killed by " + r.Signal
	}
	return fmt.Sprintf("exit status %d", r.ExitCode)
}

func tailString(s string, n int) string {
	if n <= 0 || len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

func clipString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
