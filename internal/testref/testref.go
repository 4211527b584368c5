package testref

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Need is something of the machine that a test cannot run without.
type Need string

// The needs tests route through Missing. Each names what is missing the way
// the skip summary prints it.
const (
	NeedRefs     Need = "../shared/refs"
	NeedOpenBLAS Need = "OpenBLAS"
	NeedSandbox  Need = "sandbox (bubblewrap, python3)"
	NeedNVRTC    Need = "NVRTC"
)

// Needs lists every Need.
func Needs() []Need { return []Need{NeedRefs, NeedOpenBLAS, NeedSandbox, NeedNVRTC} }

// hint says how to get a need.
func (n Need) hint() string {
	switch n {
	case NeedRefs:
		return "the shared reference data beside the repository; a fresh clone has none"
	case NeedOpenBLAS:
		return "Debian libopenblas0: run scripts/install-deps.sh as root"
	case NeedSandbox:
		return "Debian bubblewrap and python3: run scripts/install-deps.sh as root"
	case NeedNVRTC:
		return "Debian libnvrtc11.2 (compiles the CUDA kernels the emulator runs): run scripts/install-deps.sh as root"
	}
	return "unknown need"
}

// SkipPrefix starts every skip message of Missing: "not tested, missing
// <need>: <detail>".
const SkipPrefix = "not tested, missing "

// Required reports whether Missing fails instead of skipping: the
// environment variable CI parses as true (strconv.ParseBool).
func Required() bool {
	ci, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && ci
}

// Missing stops the test because need is absent; detail says what was
// looked for. Under CI (Required) the test fails, otherwise it is skipped.
func Missing(t testing.TB, need Need, detail string) {
	t.Helper()
	if Required() {
		t.Fatalf("CI=true requires %s, which is missing: %s (%s)", need, detail, need.hint())
		return
	}
	t.Skipf("%s%s: %s (%s; with CI=true this fails)", SkipPrefix, need, detail, need.hint())
}

// ParseSkip returns the need named by a line of test output written by
// Missing's skip ("    file_test.go:12: not tested, missing ...").
func ParseSkip(line string) (Need, bool) {
	i := strings.Index(line, SkipPrefix)
	if i < 0 {
		return "", false
	}
	rest := line[i+len(SkipPrefix):]
	for _, need := range Needs() {
		if strings.HasPrefix(rest, string(need)+":") {
			return need, true
		}
	}
	return "", false
}

// Dir returns the absolute path of ../shared/refs/<sub> (a folder or a
// file) relative to the module root (the directory holding go.mod above the
// working directory), or stops the test through Missing. sub may be "".
func Dir(t testing.TB, sub string) string {
	t.Helper()
	refs, err := Root()
	if err != nil {
		Missing(t, NeedRefs, fmt.Sprintf("no shared/refs folder beside the module root: %v", err))
		return ""
	}
	p := filepath.Join(refs, sub)
	if _, err := os.Stat(p); err != nil {
		Missing(t, NeedRefs, fmt.Sprintf("%s: %v", p, err))
		return ""
	}
	return p
}

// Sandbox stops the test through Missing unless bwrap and python3 are on
// PATH (the sandbox runs python jobs with python3 inside bubblewrap). A
// sandbox that is installed but cannot start is the caller's failure.
func Sandbox(t testing.TB) {
	t.Helper()
	var missing []string
	for _, tool := range []string{"bwrap", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		Missing(t, NeedSandbox, strings.Join(missing, " and ")+" not found on PATH")
	}
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
			return "", fmt.Errorf("no go.mod above %s: %w", dir, os.ErrNotExist)
		}
		dir = parent
	}
}
