package analyzer

import (
	"os"
	"path/filepath"
	"purpcode/internal/testref"
	"regexp"
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
		testref.Missing(t, testref.NeedRefs, "no ICD Python fixtures in "+dir)
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

// benchPrograms loads the HumanEval and MBPP reference programs the
// false-positive measurement uses, or skips.
func benchPrograms(t testing.TB) (names, progs []string) {
	names, progs, err := cleanPrograms(filepath.Join(refsDir(t), "bench"))
	if err != nil {
		testref.Missing(t, testref.NeedRefs, err.Error())
	}
	return names, progs
}
