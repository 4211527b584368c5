package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"purpcode/internal/testref"
)

var (
	sharedOnce   sync.Once
	sharedRunner *Runner
	sharedErr    error
)

// testRunner is one Runner shared by the package's tests (creating one runs a
// self-check job). Tests skip (fail under CI) only when bubblewrap or
// python3 is not installed at all.
func testRunner(t *testing.T) *Runner {
	t.Helper()
	testref.Sandbox(t)
	sharedOnce.Do(func() { sharedRunner, sharedErr = New(Options{}) })
	if sharedErr != nil {
		t.Fatalf("sandbox.New: %v", sharedErr)
	}
	return sharedRunner
}

func TestRunBasics(t *testing.T) {
	r := testRunner(t)
	t.Parallel()
	code := `import os, sys
print("args", sys.argv[1:])
print("stdin", sys.stdin.read().strip())
print("cwd", os.getcwd())
print("data", open("pkg/data.txt").read())
import helper
print("helper", helper.VALUE)
print("env", sorted(os.environ))
print("uid0", os.getuid() == 0)
sys.stderr.write("to stderr\n")
sys.exit(3)
`
	res, err := r.Run(context.Background(), Job{
		Lang:  "python",
		Code:  code,
		Files: map[string]string{"pkg/data.txt": "payload", "helper.py": "VALUE = 42\n"},
		Stdin: "from stdin\n",
		Args:  []string{"a", "b c"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"args ['a', 'b c']", "stdin from stdin", "cwd /tmp", "data payload", "helper 42", "uid0 False",
	} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("stdout lacks %q:\n%s\nstderr: %s", want, res.Stdout, res.Stderr)
		}
	}
	if strings.Contains(res.Stdout, "GOPATH") || strings.Contains(res.Stdout, "'USER'") {
		t.Errorf("host environment leaked: %s", res.Stdout)
	}
	if res.ExitCode != 3 || res.Signal != "" || res.TimedOut || res.OK() {
		t.Errorf("exit = %d signal %q timedOut %v, want 3", res.ExitCode, res.Signal, res.TimedOut)
	}
	if res.Stderr != "to stderr\n" {
		t.Errorf("stderr = %q", res.Stderr)
	}
}

func TestShellJob(t *testing.T) {
	r := testRunner(t)
	t.Parallel()
	res, err := r.Run(context.Background(), Job{Lang: "sh", Code: `echo "$1-$(cat in.txt)"; python3 -c 'print(6*7)'`,
		Args: []string{"x"}, Files: map[string]string{"in.txt": "file"}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Stdout != "x-file\n42\n" {
		t.Errorf("got %+v", res)
	}
}

func TestSignalReported(t *testing.T) {
	r := testRunner(t)
	t.Parallel()
	res, err := r.Run(context.Background(), Job{Lang: "python", Code: "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Signal != "SIGTERM" || res.TimedOut {
		t.Errorf("got %+v, want SIGTERM", res)
	}
}

func TestBadJobs(t *testing.T) {
	r := testRunner(t)
	t.Parallel()
	small := &Limits{TmpBytes: 1000}
	for name, job := range map[string]Job{
		"lang":      {Lang: "ruby"},
		"abs":       {Lang: "python", Files: map[string]string{"/etc/x": ""}},
		"dotdot":    {Lang: "python", Files: map[string]string{"../x": ""}},
		"unclean":   {Lang: "python", Files: map[string]string{"a//b": ""}},
		"collision": {Lang: "python", Files: map[string]string{"main.py": ""}},
		"too big":   {Lang: "python", Code: strings.Repeat("#", 2000), Limits: small},
	} {
		if _, err := r.Run(context.Background(), job); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestLimitsMerged(t *testing.T) {
	d := DefaultLimits()
	got := d.merged(&Limits{CPUSeconds: 3, Wall: time.Second})
	if got.CPUSeconds != 3 || got.Wall != time.Second || got.MemoryBytes != d.MemoryBytes || got.OutputBytes != d.OutputBytes {
		t.Errorf("merged = %+v", got)
	}
	if d.merged(nil) != d {
		t.Error("merged(nil) changed the defaults")
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Options{BwrapPath: "/nonexistent/bwrap"}); err == nil || !strings.Contains(err.Error(), "bubblewrap") {
		t.Errorf("missing bwrap: err = %v", err)
	}
	// A bwrap that cannot create namespaces fails the self-check with its
	// message in the error.
	fake := filepath.Join(t.TempDir(), "bwrap")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{BwrapPath: fake, Workers: 1})
	if err == nil || !strings.Contains(err.Error(), "self-check") || !strings.Contains(err.Error(), "No permissions") {
		t.Errorf("broken bwrap: err = %v", err)
	}
	if _, err := New(Options{Python: "/nonexistent/python3"}); err == nil || !strings.Contains(err.Error(), "python") {
		t.Errorf("missing python: err = %v", err)
	}
}

func TestPoolBoundsConcurrency(t *testing.T) {
	testref.Sandbox(t)
	r, err := New(Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctxA, cancelA := context.WithCancel(context.Background())
	doneA := make(chan error, 1)
	go func() {
		_, err := r.Run(ctxA, Job{Lang: "sh", Code: "sleep 30", Limits: &Limits{Wall: 60 * time.Second}})
		doneA <- err
	}()
	for len(r.slots) != 0 { // until A holds the only worker
		time.Sleep(time.Millisecond)
	}
	ctxB, cancelB := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelB()
	if _, err := r.Run(ctxB, Job{Lang: "sh", Code: "true"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second job with the only worker busy: err = %v, want deadline exceeded", err)
	}
	start := time.Now()
	cancelA()
	if err := <-doneA; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled job: err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancellation took %v", d)
	}
	res, err := r.Run(context.Background(), Job{Lang: "sh", Code: "echo free"})
	if err != nil || res.Stdout != "free\n" {
		t.Errorf("worker not released: %+v %v", res, err)
	}
}

// BenchmarkRunTrivial measures the per-job overhead (namespaces, mounts,
// interpreter start) of a python job that does nothing.
func BenchmarkRunTrivial(b *testing.B) {
	testref.Sandbox(b)
	r, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := r.Run(context.Background(), Job{Lang: "python", Code: "pass\n"})
			if err != nil || !res.OK() {
				b.Errorf("%+v %v", res, err)
			}
		}
	})
}
