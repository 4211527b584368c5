package analyzer

import (
	"os"
	"path/filepath"
	"testing"
)

// refsDir returns ../shared/refs relative to the repository root, or skips.
func refsDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("go.mod not found above the package directory")
		}
		dir = parent
	}
	refs := filepath.Join(dir, "..", "shared", "refs")
	if _, err := os.Stat(refs); err != nil {
		t.Skipf("reference data %s not present: %v", refs, err)
	}
	return refs
}

func newAnalyzer(t testing.TB) *Analyzer {
	t.Helper()
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}
