package analyzer

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// icdRuleMap maps CyberSecEval's insecure-code-detector rule ids to the
// analyzer rules that cover the same class.
var icdRuleMap = map[string][]string{
	"unsafe-pickle-use":               {"pickle-deserialization"},
	"unsafe-dill-use":                 {"dill-deserialization"},
	"unsafe-json-pickle-use":          {"jsonpickle-deserialization"},
	"unsafe-yaml-use":                 {"yaml-unsafe-load"},
	"insecure-eval-use":               {"eval-injection"},
	"insecure-exec-use":               {"exec-injection"},
	"insecure-os-popen-use":           {"os-popen-injection"},
	"insecure-os-system-use":          {"os-system-injection"},
	"cursor-execute-sqli":             {"sql-injection"},
	"insecure-subprocess-using-shell": {"subprocess-shell-injection"},
	"insecure-hardcoded-secrets":      {"hardcoded-credentials"},
	"crypto-fixed-nonce":              {"fixed-nonce"},
	"crypto-fixed-prng-seed":          {"fixed-prng-seed"},
	"insecure-crypto-prng-random":     {"weak-prng", "weak-prng-security"},
	"insecure-md5-hash-usage":         {"weak-hash-md5"},
	"insecure-sha1-hash-usage":        {"weak-hash-sha1"},
	"insecure-hash-function-usage":    {"weak-hash-md5", "weak-hash-sha1"},
}

var annotRe = regexp.MustCompile(`^\s*#\s*(ruleid|ok):\s*([\w.-]+)`)

// TestICDFixtures checks every `# ruleid:` line of the ICD semgrep Python
// fixtures is flagged by the mapped rule and every `# ok:` line is not.
func TestICDFixtures(t *testing.T) {
	dir := filepath.Join(refsDir(t), "bench", "icd", "semgrep", "python")
	files, _ := filepath.Glob(filepath.Join(dir, "*.py"))
	if len(files) == 0 {
		t.Skipf("no fixtures in %s", dir)
	}
	a := newAnalyzer(t)
	var want, got int
	for _, path := range files {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		res, err := a.Analyze(src, "python")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(src), "\n")
		for i, l := range lines {
			m := annotRe.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			ours, ok := icdRuleMap[m[2]]
			if !ok {
				t.Errorf("%s:%d: ICD rule %q has no mapping", filepath.Base(path), i+1, m[2])
				continue
			}
			target := i + 1
			for target < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[target]), "#") {
				target++
			}
			line := target + 1
			hit := false
			for _, f := range res.Findings {
				if f.Line == line && contains(ours, f.RuleID) {
					hit = true
				}
			}
			switch m[1] {
			case "ruleid":
				want++
				if hit {
					got++
				} else {
					t.Errorf("%s:%d: %s not flagged by %v: %s", filepath.Base(path), line, m[2], ours, strings.TrimSpace(lines[target]))
				}
			case "ok":
				if hit {
					t.Errorf("%s:%d: flagged by %v but annotated ok: %s", filepath.Base(path), line, ours, strings.TrimSpace(lines[target]))
				}
			}
		}
	}
	t.Logf("ICD fixtures: %d/%d ruleid lines flagged by the matching rule", got, want)
}

type cyberRow struct {
	OriginCode string `json:"origin_code"`
	CWE        string `json:"cwe_identifier"`
	Language   string `json:"language"`
	PatternID  string `json:"pattern_id"`
	LineText   string `json:"line_text"`
}

// TestCyberSecEvalRecall runs the analyzer on CyberSecEval instruct.json's
// Python rows and requires a finding with an equivalent CWE in >= 90% of
// the rows whose CWE class the analyzer claims.
func TestCyberSecEvalRecall(t *testing.T) {
	path := filepath.Join(refsDir(t), "bench", "cyberseceval", "instruct.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("%s: %v", path, err)
	}
	var rows []cyberRow
	if err := json.Unmarshal(data, &rows); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	a := newAnalyzer(t)
	claimed := map[string]bool{}
	for _, r := range a.Rules() {
		for _, c := range r.CWE {
			claimed[c] = true
		}
	}
	claims := func(cwe string) bool {
		for c := range claimed {
			if EquivalentCWE(c, cwe) {
				return true
			}
		}
		return false
	}
	type stat struct{ rows, hits, atLine int }
	per := map[string]*stat{}
	var total, hits, unclaimed, unparsed int
	for _, r := range rows {
		if r.Language != "python" {
			continue
		}
		if !claims(r.CWE) {
			unclaimed++
			continue
		}
		pid := r.PatternID[strings.LastIndexByte(r.PatternID, '.')+1:]
		key := r.CWE + " " + pid
		s := per[key]
		if s == nil {
			s = &stat{}
			per[key] = s
		}
		res, err := a.Analyze([]byte(r.OriginCode), "python")
		if err != nil {
			t.Fatal(err)
		}
		if !res.Parsed {
			unparsed++
		}
		s.rows++
		total++
		hit, at := false, false
		line := lineOf(r.OriginCode, r.LineText)
		for _, f := range res.Findings {
			for _, c := range f.CWE {
				if EquivalentCWE(c, r.CWE) {
					hit = true
					if f.Line <= line && line <= f.EndLine {
						at = true
					}
				}
			}
		}
		if hit {
			s.hits++
			hits++
		} else if testing.Verbose() {
			t.Logf("miss %s:\n%s", key, excerpt(r.OriginCode, line))
		}
		if at {
			s.atLine++
		}
	}
	keys := make([]string, 0, len(per))
	for k := range per {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%-48s %5s %5s %7s %8s\n", "CWE / CyberSecEval pattern", "rows", "hits", "recall", "at-line")
	for _, k := range keys {
		s := per[k]
		fmt.Fprintf(&b, "%-48s %5d %5d %6.1f%% %8d\n", k, s.rows, s.hits, 100*float64(s.hits)/float64(s.rows), s.atLine)
	}
	rate := float64(hits) / float64(total)
	fmt.Fprintf(&b, "%-48s %5d %5d %6.1f%%   (unclaimed rows %d; rows that are fragments or fail to parse %d)", "TOTAL", total, hits, 100*rate, unclaimed, unparsed)
	t.Log("\n" + b.String())
	if rate < 0.90 {
		t.Errorf("recall %.1f%% < 90%%", 100*rate)
	}
}

// lineOf returns the 1-based line of src whose text is text (the row's
// flagged line), or 0.
func lineOf(src, text string) int {
	want := strings.TrimSpace(text)
	for i, l := range strings.Split(src, "\n") {
		if strings.TrimSpace(l) == want {
			return i + 1
		}
	}
	return 0
}

func excerpt(src string, line int) string {
	ls := strings.Split(src, "\n")
	lo, hi := line-3, line+2
	if lo < 0 {
		lo = 0
	}
	if hi > len(ls) {
		hi = len(ls)
	}
	if lo > hi {
		return ""
	}
	return strings.Join(ls[lo:hi], "\n")
}

// benchPrograms loads HumanEval (prompt + canonical solution) and MBPP
// (code) programs; name identifies each for failure messages.
func benchPrograms(t testing.TB) (names, progs []string) {
	refs := refsDir(t)
	he := filepath.Join(refs, "bench", "humaneval", "HumanEval.jsonl.gz")
	fh, err := os.Open(he)
	if err != nil {
		t.Skipf("%s: %v", he, err)
	}
	defer fh.Close()
	gz, err := gzip.NewReader(fh)
	if err != nil {
		t.Fatalf("%s: %v", he, err)
	}
	sc := bufio.NewScanner(gz)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var r struct{ TaskID, Prompt, CanonicalSolution string }
		var raw map[string]any
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			t.Fatalf("%s: %v", he, err)
		}
		r.TaskID, _ = raw["task_id"].(string)
		r.Prompt, _ = raw["prompt"].(string)
		r.CanonicalSolution, _ = raw["canonical_solution"].(string)
		names = append(names, r.TaskID)
		progs = append(progs, r.Prompt+r.CanonicalSolution)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", he, err)
	}
	mb := filepath.Join(refs, "bench", "mbpp", "mbpp.jsonl")
	fm, err := os.Open(mb)
	if err != nil {
		t.Skipf("%s: %v", mb, err)
	}
	defer fm.Close()
	sc = bufio.NewScanner(fm)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var r struct {
			TaskID int    `json:"task_id"`
			Code   string `json:"code"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", mb, err)
		}
		names = append(names, fmt.Sprintf("MBPP/%d", r.TaskID))
		progs = append(progs, r.Code)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", mb, err)
	}
	return names, progs
}

// TestBenchmarkFalsePositives requires that at most 2% of HumanEval and
// MBPP reference solutions get a medium or high finding.
func TestBenchmarkFalsePositives(t *testing.T) {
	names, progs := benchPrograms(t)
	a := newAnalyzer(t)
	var flagged, unparsed int
	for i, p := range progs {
		res, err := a.Analyze([]byte(p), "python")
		if err != nil {
			t.Fatal(err)
		}
		if !res.Parsed {
			unparsed++
		}
		if fs := res.AtLeast(Medium); len(fs) > 0 {
			flagged++
			for _, f := range fs {
				t.Logf("%s: %s (%s) line %d: %s", names[i], f.RuleID, f.Severity, f.Line, f.Snippet)
			}
		}
	}
	rate := float64(flagged) / float64(len(progs))
	t.Logf("%d of %d programs (%.2f%%) have a medium+ finding; %d did not parse", flagged, len(progs), 100*rate, unparsed)
	if rate > 0.02 {
		t.Errorf("false-positive rate %.2f%% > 2%%", 100*rate)
	}
}
