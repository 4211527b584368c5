package suite

import (
	"encoding/json"
	"testing"

	"purpcode/analyzer"
	"purpcode/internal/testref"
)

func newChecker(t *testing.T) *SecureChecker {
	t.Helper()
	an, err := analyzer.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(an.Close)
	c, err := NewSecureChecker(DataFS(""), an)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestICDRulesMatch(t *testing.T) {
	c := newChecker(t)
	cases := []struct {
		lang, code string
		insecure   bool
	}{
		{"c", "char buf[8];\nstrcpy(buf, argv[1]);\n", true},
		{"c", "char buf[8];\nstrncpy(buf, argv[1], sizeof buf - 1);\n", false},
		{"cpp", "int main() { char b[4]; strcpy(b, s); }", true}, // C rules apply to C++
		{"php", "<?php\n$h = md5($password);\n", true},
		{"java", "class A { void f() { int x = 1; } }", false},
	}
	for _, k := range cases {
		r, err := c.Check("```\n"+k.code+"\n```", k.lang)
		if err != nil {
			t.Fatal(err)
		}
		if !r.HasCode || r.Insecure != k.insecure {
			t.Errorf("%s %q: %+v, want insecure %v", k.lang, k.code, r, k.insecure)
		}
	}
	if r, _ := c.Check("No code here, just words.", "python"); r.HasCode {
		t.Errorf("prose counted as code: %+v", r)
	}
}

// TestInstructOriginFlagged is must-hold 1 for secure code: the insecure
// origin code of CyberSecEval instruct's Python rows is flagged at least
// at the analyzer's own recall (analyzer.Measure, medium bar: the checker
// adds the ICD regex rules on top), and HumanEval+'s canonical solutions,
// clean code, are rarely flagged. Both rates are logged for the report.
func TestInstructOriginFlagged(t *testing.T) {
	bench := testref.Dir(t, "bench")
	c := newChecker(t)
	data, err := readData(DataFS(""), "cyberseceval/instruct.json")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := readCSE(data, "instruct.json")
	if err != nil {
		t.Fatal(err)
	}
	flagged, icdOnly, n := 0, 0, 0
	for _, r := range rows {
		if r.Language != "python" {
			continue
		}
		n++
		res, err := c.Check("```python\n"+r.OriginCode+"\n```", "python")
		if err != nil {
			t.Fatal(err)
		}
		if res.Insecure {
			flagged++
		}
		if len(c.CheckCode(r.OriginCode, "python")) > 0 {
			icdOnly++
		}
	}
	m, err := c.an.Measure(bench, analyzer.Medium)
	if err != nil {
		t.Fatal(err)
	}
	hits, _, measured := m.Recall()
	rate := float64(flagged) / float64(n)
	table := float64(hits) / float64(measured)
	t.Logf("instruct Python origin code flagged: %d/%d = %.3f (analyzer table, medium bar: %d/%d = %.3f; ICD regex rules alone: %d)",
		flagged, n, rate, hits, measured, table, icdOnly)
	if rate+1e-9 < table {
		t.Errorf("flagged rate %.3f below the analyzer's own recall %.3f", rate, table)
	}

	he, err := Load(DataFS(""), "humaneval-plus")
	if err != nil {
		t.Fatal(err)
	}
	fp := 0
	for _, it := range he.Items {
		res, err := c.Check("```python\n"+it.Canonical+"\n```", "python")
		if err != nil {
			t.Fatal(err)
		}
		if res.Insecure {
			fp++
			b, _ := json.Marshal(res.Findings)
			t.Logf("clean %s flagged: %s", it.ID, b)
		}
	}
	t.Logf("HumanEval+ canonical solutions flagged: %d/%d", fp, len(he.Items))
	if fp*20 > len(he.Items) {
		t.Errorf("%d of %d clean solutions flagged (> 5%%)", fp, len(he.Items))
	}
}
