package redteam

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"purpcode/analyzer"
	"purpcode/internal/testref"
	"purpcode/oracle"
	"purpcode/sandbox"
)

// allTasks returns the world's tasks sorted by id plus one extra draw per
// template, so every template is covered whatever the split.
func allTasks(t *testing.T) []Task {
	t.Helper()
	w := mustGenerate(t, DefaultOptions())
	var out []Task
	for _, id := range sortedKeys(w.Tasks) {
		out = append(out, w.Tasks[id])
	}
	rng := newRand(99, 99)
	for fi := range families {
		f := &families[fi]
		for ti := range f.templates {
			out = append(out, f.drawTasks(&f.templates[ti], rng, 1, "extra-"+f.templates[ti].id)...)
		}
	}
	return out
}

// pyRunner executes (code, check, entry point) cases in one interpreter,
// each in a fresh namespace inside a scratch directory, and prints a JSON
// list of failures. Our own trusted code, so it runs outside the sandbox.
const pyRunner = `
import json, os, sys, tempfile, traceback
cases = json.load(open(sys.argv[1]))
os.chdir(tempfile.mkdtemp())
failures = []
for c in cases:
    ns = {"__name__": "solution"}
    try:
        exec(compile(c["code"] + "\n\n" + c["check"], c["name"], "exec"), ns)
        ns["check"](ns[c["entry"]])
        if c["expect"] == "fail":
            failures.append({"name": c["name"], "error": "check passed but should fail"})
    except BaseException:
        if c["expect"] == "pass":
            failures.append({"name": c["name"], "error": traceback.format_exc(limit=2)})
print(json.dumps(failures))
`

type pyCase struct {
	Name   string `json:"name"`
	Code   string `json:"code"`
	Check  string `json:"check"`
	Entry  string `json:"entry"`
	Expect string `json:"expect"` // "pass" or "fail"
}

func findPython(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	testref.Missing(t, testref.NeedSandbox, "python3 not found on PATH: cannot run the functional checks")
	return ""
}

func runPyCases(t *testing.T, cases []pyCase) {
	t.Helper()
	py := findPython(t)
	dir := t.TempDir()
	data, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	casesPath := filepath.Join(dir, "cases.json")
	runnerPath := filepath.Join(dir, "runner.py")
	if err := os.WriteFile(casesPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(runnerPath, []byte(pyRunner), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, runnerPath, casesPath)
	cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python runner: %v\n%s", err, out)
	}
	var failures []struct{ Name, Error string }
	if err := json.Unmarshal(out, &failures); err != nil {
		t.Fatalf("python runner output %q: %v", out, err)
	}
	for _, f := range failures {
		t.Errorf("%s: %s", f.Name, f.Error)
	}
}

// TestImplementationsPassChecks: both implementations of every task pass
// its check, and the check is not vacuous: a stub entry point fails it.
func TestImplementationsPassChecks(t *testing.T) {
	var cases []pyCase
	for _, task := range allTasks(t) {
		cases = append(cases,
			pyCase{task.ID + "/insecure", task.Insecure, task.Check, task.EntryPoint, "pass"},
			pyCase{task.ID + "/secure", task.Secure, task.Check, task.EntryPoint, "pass"},
			pyCase{task.ID + "/stub", task.Secure + "\n\ndef " + task.EntryPoint + "(*args, **kwargs):\n    return None\n", task.Check, task.EntryPoint, "fail"},
		)
	}
	runPyCases(t, cases)
}

// TestChecksInSandbox runs one task per template through the correctness
// oracle in the real sandbox (no network, read-only root, private /tmp).
func TestChecksInSandbox(t *testing.T) {
	if testing.Short() {
		t.Skip("sandbox runs skipped in -short mode")
	}
	testref.Sandbox(t)
	sb, err := sandbox.New(sandbox.Options{Workers: 2})
	if err != nil {
		t.Fatalf("sandbox.New: %v", err)
	}
	one := map[string]Task{}
	for _, task := range allTasks(t) {
		if _, ok := one[task.Template]; !ok {
			one[task.Template] = task
		}
	}
	type job struct {
		name, code string
		tests      *oracle.Tests
	}
	var jobs []job
	for _, id := range sortedKeys(one) {
		task := one[id]
		jobs = append(jobs, job{id + "/insecure", task.Insecure, task.Tests()}, job{id + "/secure", task.Secure, task.Tests()})
	}
	errs := make(chan string, len(jobs))
	sem := make(chan struct{}, 2)
	for _, j := range jobs {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			res, err := oracle.Correctness(context.Background(), sb, j.code, j.tests, oracle.DefaultTestOptions())
			switch {
			case err != nil:
				errs <- j.name + ": " + err.Error()
			case res.Score != 1:
				errs <- j.name + ": " + res.Detail + "\n" + res.Output
			default:
				errs <- ""
			}
		}()
	}
	var failed []string
	for range jobs {
		if e := <-errs; e != "" {
			failed = append(failed, e)
		}
	}
	sort.Strings(failed)
	for _, f := range failed {
		t.Error(f)
	}
}

func newAnalyzer(t *testing.T) *analyzer.Analyzer {
	t.Helper()
	a, err := analyzer.New()
	if err != nil {
		t.Fatalf("analyzer: %v", err)
	}
	t.Cleanup(a.Close)
	return a
}

// TestAnalyzerAgreement: every insecure implementation is flagged medium+
// by one of its family's rules (with a CWE of the family), and every secure
// one has no medium+ finding.
func TestAnalyzerAgreement(t *testing.T) {
	a := newAnalyzer(t)
	fam := map[string]*family{}
	for i := range families {
		fam[families[i].name] = &families[i]
	}
	missed := map[string]bool{}
	for _, task := range allTasks(t) {
		f := fam[task.Family]
		res, err := a.Analyze([]byte(task.Insecure), "python")
		if err != nil || !res.Parsed {
			t.Fatalf("%s: insecure code does not parse: %v %v", task.ID, err, res.ParseErrors)
		}
		hit := false
		for _, fd := range res.AtLeast(analyzer.Medium) {
			for _, c := range fd.CWE {
				if analyzer.EquivalentCWE(c, f.cwe) && contains(f.rules, fd.RuleID) {
					hit = true
				}
			}
		}
		if !hit && !missed[task.Template] {
			missed[task.Template] = true
			t.Errorf("%s (%s): insecure implementation not flagged medium+ with %s by %v; findings %+v\n%s", task.ID, task.Template, f.cwe, f.rules, res.Findings, task.Insecure)
		}
		res, err = a.Analyze([]byte(task.Secure), "python")
		if err != nil || !res.Parsed {
			t.Fatalf("%s: secure code does not parse: %v %v", task.ID, err, res.ParseErrors)
		}
		if bad := res.AtLeast(analyzer.Medium); len(bad) > 0 {
			t.Errorf("%s: secure implementation flagged: %+v\n%s", task.ID, bad, task.Secure)
		}
	}
}

// TestCorpusCodeAgreesWithLabels runs the oracle's codesec scoring over the
// corpus's coding answers: secure answers score 1, insecure ones 0. Benign
// answers must not teach insecure code either.
func TestCorpusCodeAgreesWithLabels(t *testing.T) {
	a := newAnalyzer(t)
	o := DefaultOptions()
	o.Corpus.Size = 400
	w := mustGenerate(t, o)
	for i, c := range w.Corpus {
		resp := c.Messages[len(c.Messages)-1].Content
		if c.Meta.Kind == KindMalicious {
			continue
		}
		res, err := oracle.CodeSec(a, resp, oracle.DefaultCodeSecOptions())
		if err != nil {
			t.Fatalf("conversation %d: %v", i, err)
		}
		want := 1.0
		switch c.Behaviour {
		case BehaviourInsecure:
			want = 0
		case BehaviourOverRefusal:
			want = oracle.DefaultCodeSecOptions().NoCodeScore
		case BehaviourAnswer:
			if !strings.Contains(resp, "```python") {
				want = oracle.DefaultCodeSecOptions().NoCodeScore
			}
		}
		if res.Score != want {
			t.Errorf("conversation %d (%s %s, %s): codesec %v, want %v: %+v\n%s", i, c.Meta.Kind, c.Behaviour, c.Meta.Template, res.Score, want, res, resp)
		}
	}
	// Every benign answer, whether or not the sample above drew it.
	for bi := range benignTemplates {
		bt := &benignTemplates[bi]
		resp := drawBenign(bt, newRand(1, 1), 1)[0].answer(0)
		res, err := oracle.CodeSec(a, resp, oracle.DefaultCodeSecOptions())
		if err != nil {
			t.Fatalf("benign %s: %v", bt.id, err)
		}
		want := 1.0
		if !strings.Contains(resp, "```python") {
			want = oracle.DefaultCodeSecOptions().NoCodeScore
		}
		if res.Score != want {
			t.Errorf("benign %s: codesec %v, want %v: %+v\n%s", bt.id, res.Score, want, res, resp)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
