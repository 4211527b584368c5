package oracle

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"purpcode/internal/testref"
	"purpcode/sandbox"
)

var (
	sbOnce sync.Once
	sbVal  *sandbox.Runner
	sbErr  error
)

func testSandbox(t *testing.T) *sandbox.Runner {
	t.Helper()
	testref.Sandbox(t)
	sbOnce.Do(func() { sbVal, sbErr = sandbox.New(sandbox.Options{}) })
	if sbErr != nil {
		t.Fatalf("sandbox.New: %v", sbErr)
	}
	return sbVal
}

func TestCorrectness(t *testing.T) {
	sb := testSandbox(t)
	const add = "def add(a, b):\n    return a + b\n"
	const wrongAdd = "def add(a, b):\n    return a - b\n"
	const echoSum = "import sys\nnums = [int(x) for x in sys.stdin.read().split()]\nprint(sum(nums))\n"
	pytestFile := "import pytest\nfrom solution import add\n\ndef test_add():\n    assert add(2, 3) == 5\n\n" +
		"@pytest.mark.parametrize('a,b', [(1, 1), (0, 5)])\ndef test_commutes(a, b):\n    assert add(a, b) == add(b, a)\n\n" +
		"def test_raises():\n    with pytest.raises(TypeError):\n        add(1, None)\n"
	check := "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n"
	cases := []struct {
		name     string
		solution string
		tests    Tests
		score    float64
		output   string // substring of the kept output
	}{
		{name: "pytest pass", solution: add, tests: Tests{Pytest: pytestFile}, score: 1, output: "passed"},
		{name: "pytest fail", solution: wrongAdd, tests: Tests{Pytest: pytestFile}, score: 0, output: "FAILED test_add"},
		{name: "pytest names without import", solution: add, tests: Tests{Pytest: "def test_x():\n    assert add(1, 1) == 2\n"}, score: 1},
		{name: "pytest no tests", solution: add, tests: Tests{Pytest: "x = 1\n"}, score: 0, output: "no tests"},
		{name: "pytest solution crashes", solution: "raise SystemExit(0)\n", tests: Tests{Pytest: "def test_x():\n    pass\n"}, score: 0, output: "ERROR loading solution.py"},
		{name: "functional pass", solution: add, tests: Tests{Functional: "assert add(2, 2) == 4\n"}, score: 1},
		{name: "functional fail", solution: wrongAdd, tests: Tests{Functional: "assert add(2, 2) == 4\n"}, score: 0, output: "AssertionError"},
		{name: "humaneval check pass", solution: add, tests: Tests{Check: check, EntryPoint: "add"}, score: 1},
		{name: "humaneval check fail", solution: wrongAdd, tests: Tests{Check: check, EntryPoint: "add"}, score: 0, output: "AssertionError"},
		{name: "humaneval missing entry point", solution: "def other(a, b):\n    return a + b\n", tests: Tests{Check: check, EntryPoint: "add"}, score: 0, output: "NameError"},
		{name: "stdio pass", solution: echoSum, tests: Tests{Inputs: []string{"1 2 3\n", "10\n", ""}, Outputs: []string{"6", "10\n", "0"}}, score: 1},
		{name: "stdio wrong output", solution: echoSum, tests: Tests{Inputs: []string{"1 2\n", "5 5\n"}, Outputs: []string{"3", "11"}}, score: 0, output: "expected: \"11\""},
		{name: "stdio crash", solution: "raise ValueError('boom')\n", tests: Tests{Inputs: []string{"1"}, Outputs: []string{"1"}}, score: 0, output: "boom"},
		{name: "infinite loop times out", solution: "while True:\n    pass\n", tests: Tests{Functional: "pass\n", TimeoutSeconds: 1}, score: 0},
		{name: "no code", solution: "", tests: Tests{Functional: "pass\n"}, score: 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			tests := c.tests
			r, err := Correctness(context.Background(), sb, c.solution, &tests, DefaultTestOptions())
			if err != nil {
				t.Fatal(err)
			}
			if r.Score != c.score {
				t.Errorf("score %v (%s), want %v; output:\n%s", r.Score, r.Detail, c.score, r.Output)
			}
			if !strings.Contains(r.Output, c.output) {
				t.Errorf("output lacks %q:\n%s", c.output, r.Output)
			}
		})
	}
}

func TestCorrectnessBadTests(t *testing.T) {
	for name, tests := range map[string]*Tests{
		"nil":          nil,
		"empty":        {},
		"two forms":    {Pytest: "x", Functional: "y"},
		"check alone":  {Check: "def check(c): pass"},
		"io mismatch":  {Inputs: []string{"1"}},
		"entry alone":  {EntryPoint: "f"},
		"outputs only": {Outputs: []string{"1"}},
	} {
		if _, err := Correctness(context.Background(), nil, "x = 1", tests, DefaultTestOptions()); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := Correctness(context.Background(), nil, "x = 1", &Tests{Functional: "pass"}, DefaultTestOptions()); err == nil {
		t.Error("nil sandbox: no error")
	}
}

func TestCorrectnessTimeoutIsBounded(t *testing.T) {
	sb := testSandbox(t)
	start := time.Now()
	r, err := Correctness(context.Background(), sb, "import time\ntime.sleep(60)\n",
		&Tests{Inputs: []string{"", ""}, Outputs: []string{"", ""}, TimeoutSeconds: 1}, DefaultTestOptions())
	if err != nil {
		t.Fatal(err)
	}
	if r.Score != 0 || !strings.Contains(r.Detail, "timed out") {
		t.Errorf("got %+v", r)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("took %v", d)
	}
}
