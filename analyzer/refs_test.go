package analyzer

import (
	"purpcode/internal/testref"
	"testing"
)

// refsDir returns ../shared/refs beside the module root, or skips.
func refsDir(t testing.TB) string { return testref.Dir(t, "") }

func newAnalyzer(t testing.TB) *Analyzer {
	t.Helper()
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}
