package testref

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the absolute path of ../shared/refs/<sub> relative to the
// module root (the directory holding go.mod above the working directory),
// or skips the test with a message naming what is missing.
func Dir(t testing.TB, sub string) string {
	t.Helper()
	root, err := ModuleRoot()
	if err != nil {
		t.Skipf("reference data unavailable: %v", err)
	}
	p := filepath.Join(filepath.Dir(root), "shared", "refs", sub)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("reference data %s not present (a fresh clone has no ../shared/refs): skipping conformance check", p)
	}
	return p
}

// ModuleRoot walks up from the working directory to the one holding go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}
