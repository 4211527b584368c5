package main

import (
	"bytes"
	"strings"
	"testing"
)

// testdata/events.jsonl is `go test -json ./...` of a scratch module (times
// zeroed): package a has a passing test with a log line, a skip through
// testref.Missing for each of two needs, a -short style skip, a failing
// subtest and a test printing to stdout; b passes; c does not build.
func TestRewritesEventsAsPlainGoTest(t *testing.T) {
	var out, stderr bytes.Buffer
	code := run([]string{"sh", "-c", "cat testdata/events.jsonl; exit 3"}, &out, &stderr)
	if code != 3 {
		t.Errorf("exit status %d, want the command's 3", code)
	}
	got := out.String()
	// The lines plain go test prints, in its order.
	want := []string{
		"# jt/c [jt/c.test]\n",
		"--- FAIL: TestFail ",
		"stdout of a failing test\n",
		"--- FAIL: TestFail/sub",
		"a_test.go:15: boom\n",
		"FAIL\tjt/a\t0.01s\n",
		"FAIL\tjt/c [build failed]\n",
		"ok  \tjt/b\t0.01s\n",
		"not tested: 3 tests skipped (1: ../shared/refs missing; 1: sandbox (bubblewrap, python3) missing; 1: other reasons, see go test -v: a.TestShort)\n",
		"FAIL\n",
	}
	at := 0
	for _, w := range want {
		i := strings.Index(got[at:], w)
		if i < 0 {
			t.Fatalf("output lacks %q after offset %d:\n%s", w, at, got)
		}
		at += i + len(w)
	}
	if !strings.HasSuffix(got, "FAIL\n") {
		t.Errorf("output does not end with go test's closing FAIL:\n%s", got)
	}
	for _, absent := range []string{"hidden log", "=== RUN", "\nPASS\n", "--- SKIP", "--- PASS"} {
		if strings.Contains(got, absent) {
			t.Errorf("output has %q, which plain go test does not print:\n%s", absent, got)
		}
	}
}

func TestSummaryLineWithoutSkips(t *testing.T) {
	var out, stderr bytes.Buffer
	code := run([]string{"sh", "-c", `printf '%s\n' '{"Action":"output","Package":"p","Output":"ok  \tp\t0.1s\n"}' '{"Action":"pass","Package":"p"}'`}, &out, &stderr)
	if code != 0 || out.String() != "ok  \tp\t0.1s\nnot tested: nothing, no test was skipped\n" {
		t.Fatalf("exit %d, output %q", code, out.String())
	}
}
