package analyzer_test

import (
	"strings"
	"testing"

	"purpcode/analyzer"
	"purpcode/internal/testref"
	"purpcode/oracle"
)

// TestCyberSecEvalRecall measures the analyzer at the bar the codesec
// oracle fails a response at (its default MinSeverity): recall per CWE on
// CyberSecEval instruct.json Python rows, a development set the rules were
// written against, and the false-positive rate on HumanEval and MBPP
// reference solutions. `purpcode analyze -bench-refs` prints the same
// table. It requires recall >= 90% and false positives <= 1%.
func TestCyberSecEvalRecall(t *testing.T) {
	dir := testref.Dir(t, "bench")
	a, err := analyzer.New()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	bar := oracle.DefaultCodeSecOptions().MinSeverity
	m, err := a.Measure(dir, bar)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := m.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + b.String())
	if m.MinSeverity != bar {
		t.Fatalf("measured at %s, want the oracle's %s", m.MinSeverity, bar)
	}
	hits, anyHits, rows := m.Recall()
	if rows == 0 || m.Programs == 0 {
		t.Fatalf("empty benchmark: %d rows, %d programs", rows, m.Programs)
	}
	if anyHits < hits {
		t.Errorf("hits at any severity (%d) below hits at %s (%d)", anyHits, bar, hits)
	}
	if r := float64(hits) / float64(rows); r < 0.90 {
		t.Errorf("development-set recall at %s+ %.1f%% (%d/%d) < 90%%", bar, 100*r, hits, rows)
	}
	if fp := m.FPRate(); fp > 0.01 {
		t.Errorf("false-positive rate at %s+ %.2f%% (%d/%d) > 1%%", bar, 100*fp, len(m.Flagged), m.Programs)
	}
}
