package testref

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the absolute path of ../shared/refs/<sub> relative to the
// module root (the directory holding go.mod above the working directory),
// or skips the test with a message naming what is missing. sub may be "".
func Dir(t testing.TB, sub string) string {
	t.Helper()
	refs, err := Root()
	if err != nil {
		t.Skipf("reference data ../shared/refs (beside the module root) not present (a fresh clone has none): skipping conformance check: %v", err)
	}
	p := filepath.Join(refs, sub)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("reference data %s not present: skipping conformance check", p)
	}
	return p
}

// Root returns ../shared/refs beside the module root, or an error when it
// does not exist.
func Root() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	refs := filepath.Join(filepath.Dir(root), "shared", "refs")
	if _, err := os.Stat(refs); err != nil {
		return "", err
	}
	return refs, nil
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
