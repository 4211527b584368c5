package testref

import (
	"fmt"
	"strings"
	"testing"
)

// recorder stands in for a test so Missing's skip or failure can be
// observed instead of ending the calling test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                      {}
func (r *recorder) Skipf(f string, args ...any)  { r.skipped = fmt.Sprintf(f, args...) }
func (r *recorder) Fatalf(f string, args ...any) { r.failed = fmt.Sprintf(f, args...) }

func TestMissingSkipsOutsideCIAndFailsInCI(t *testing.T) {
	for _, c := range []struct {
		ci   string
		fail bool
	}{{"", false}, {"false", false}, {"true", true}, {"1", true}} {
		t.Setenv("CI", c.ci)
		for _, need := range Needs() {
			r := &recorder{TB: t}
			Missing(r, need, "looked in /nowhere")
			msg := r.skipped
			if c.fail {
				msg = r.failed
			}
			if (r.failed != "") != c.fail || (r.skipped != "") == c.fail {
				t.Fatalf("CI=%q %s: skipped %q failed %q", c.ci, need, r.skipped, r.failed)
			}
			if !strings.Contains(msg, string(need)) || !strings.Contains(msg, "/nowhere") {
				t.Errorf("CI=%q: message %q does not name %s and the detail", c.ci, msg, need)
			}
			// The skip summary recognises the skip line as go test prints it.
			got, ok := ParseSkip("    x_test.go:12: " + r.skipped)
			if !c.fail && (!ok || got != need) {
				t.Errorf("ParseSkip(%q) = %q, %v; want %q", r.skipped, got, ok, need)
			}
		}
	}
	if _, ok := ParseSkip("    x_test.go:12: skipped in -short mode"); ok {
		t.Error("ParseSkip accepted a skip that is not Missing's")
	}
}

func TestDirOutsideModuleNamesRefs(t *testing.T) {
	t.Setenv("CI", "true")
	t.Chdir(t.TempDir())
	r := &recorder{TB: t}
	Dir(r, "qwen2-tiny")
	if !strings.Contains(r.failed, "../shared/refs") {
		t.Fatalf("failure %q does not name ../shared/refs", r.failed)
	}
}
