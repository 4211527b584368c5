package suite

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"purpcode/internal/testref"
	"purpcode/sandbox"
)

// knownBroken lists the tasks whose canonical solution fails this harness,
// with the reason (see TestCanonicalSolutionsPass).
var knownBroken = map[string]string{
	// combinations_with_replacement of 5 items taken 77 at a time: 1.6 M
	// tuples of 77, about 1 GiB per copy; the canonical output and the
	// answer's together exceed the 2 GiB address-space limit
	// (MemoryError), whatever the answer.
	"Mbpp/255": "plus input 85 needs more than the sandbox's 2 GiB for the expected and the actual output",
	// sum(range(1, n+1)) for 88 inputs near 1e8: about 1 s each, twice
	// (canonical and answer), beyond the job's 60 s CPU limit.
	"Mbpp/599": "88 plus inputs near 1e8 take the canonical and the answer past the 60 s CPU limit",
}

// fullSuites reports whether the must-hold harness tests run every item
// (PURPCODE_SUITE_FULL=1, `make test-suite-harness`: about 14 minutes on
// 2 cores). Otherwise, CI included, a deterministic sample (every 32nd
// item of each dataset, about a minute) keeps `make test` within its
// per-package timeout.
func fullSuites() bool {
	full, _ := strconv.ParseBool(os.Getenv("PURPCODE_SUITE_FULL"))
	return full
}

func newSandbox(t *testing.T) *sandbox.Runner {
	t.Helper()
	testref.Sandbox(t)
	sb, err := sandbox.New(sandbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return sb
}

type codeCase struct {
	item   *Item
	answer string
}

// scoreAll scores the cases on the sandbox's workers.
func scoreAll(t *testing.T, sb *sandbox.Runner, cases []codeCase) []CodeResult {
	t.Helper()
	out := make([]CodeResult, len(cases))
	sem := make(chan struct{}, sb.Workers())
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, err := ScoreCode(context.Background(), sb, c.item, PythonProgram(c.answer, c.item.EntryPoint))
			if err != nil {
				t.Error(err)
			}
			out[i] = r
		}()
	}
	wg.Wait()
	return out
}

func sample(items []Item) []*Item {
	var out []*Item
	for i := range items {
		if fullSuites() || i%32 == 0 {
			out = append(out, &items[i])
		}
	}
	return out
}

// TestCanonicalSolutionsPass is must-hold 1: canonical solutions, given as
// a chat answer would give them (in a fenced block after some prose), pass
// >= 99% of HumanEval+ and MBPP+ items with plus tests, failures being
// only the known-broken ones; the prompt with a `pass` body fails every
// item.
func TestCanonicalSolutionsPass(t *testing.T) {
	sb := newSandbox(t)
	for _, name := range []string{"humaneval-plus", "mbpp-plus"} {
		t.Run(name, func(t *testing.T) {
			s, err := Load(DataFS(""), name)
			if err != nil {
				t.Fatal(err)
			}
			items := sample(s.Items)
			var cases, stubs []codeCase
			for _, it := range items {
				cases = append(cases, codeCase{it, "Here is the solution.\n\n```python\n" + it.Canonical + "\n```\n"})
				stub := it.Meta["code_prompt"].(string)
				if name == "mbpp-plus" {
					stub += fmt.Sprintf("\ndef %s(*args, **kwargs):\n", it.EntryPoint)
				}
				stubs = append(stubs, codeCase{it, "```python\n" + stub + "    pass\n```"})
			}
			t0 := time.Now()
			got := scoreAll(t, sb, cases)
			passed := 0
			for i, r := range got {
				id := cases[i].item.ID
				switch why, broken := knownBroken[id]; {
				case r.Plus:
					passed++
					if broken {
						t.Errorf("%s passes now; remove it from knownBroken (%s)", id, why)
					}
				case !broken:
					t.Errorf("%s: canonical solution fails: base %v plus %v: %s", id, r.Base, r.Plus, r.Error)
				}
			}
			rate := float64(passed) / float64(len(got))
			t.Logf("%s: canonical pass@1 (plus) %d/%d = %.4f in %v", name, passed, len(got), rate, time.Since(t0).Round(time.Millisecond))
			if rate < 0.99 {
				t.Errorf("canonical pass rate %.4f < 0.99", rate)
			}
			t0 = time.Now()
			for i, r := range scoreAll(t, sb, stubs) {
				if r.Base || r.Plus {
					t.Errorf("%s: the `pass` stub passes (base %v, plus %v)", stubs[i].item.ID, r.Base, r.Plus)
				}
			}
			t.Logf("%s: %d pass stubs scored in %v", name, len(stubs), time.Since(t0).Round(time.Millisecond))
		})
	}
}
