package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"sort"
	"strings"
	"syscall"

	"purpcode/internal/testref"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testsummary go test -json [flags] [packages]")
		os.Exit(2)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command, rewrites its stdout and returns its exit status.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintf(stderr, "testsummary: %v\n", err)
		return 2
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "testsummary: start %s: %v\n", args[0], err)
		return 2
	}
	// Ctrl-C reaches go test through the terminal's process group; staying
	// alive until it exits lets the summary of what ran so far be printed.
	// A SIGTERM sent to this process alone is passed on.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		for s := range sigs {
			if s == syscall.SIGTERM {
				_ = cmd.Process.Signal(s)
			}
		}
	}()
	s := newSummary(stdout)
	readErr := s.read(out)
	waitErr := cmd.Wait()
	signal.Stop(sigs)
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(waitErr, &exit):
		code = exit.ExitCode()
		if code < 0 { // killed by a signal
			code = 1
		}
	case waitErr != nil:
		fmt.Fprintf(stderr, "testsummary: %s: %v\n", args[0], waitErr)
		code = 2
	}
	if readErr != nil {
		fmt.Fprintf(stderr, "testsummary: reading %s output: %v\n", args[0], readErr)
		code = max(code, 1)
	}
	s.finish(code != 0)
	return code
}

// event is one line of `go test -json` (cmd/test2json's TestEvent).
type event struct {
	Action     string
	Package    string
	ImportPath string // build-output events
	Test       string
	Output     string
}

// summary turns the event stream into plain go test output and counts
// skips.
type summary struct {
	w        io.Writer
	buf      map[string][]string // output of tests that have not ended, by package + test
	needs    map[testref.Need]int
	other    []string // tests skipped for reasons other than a missing need
	skipped  int
	sawEvent bool
}

func newSummary(w io.Writer) *summary {
	return &summary{w: w, buf: map[string][]string{}, needs: map[testref.Need]int{}}
}

// read consumes the stream; lines that are not JSON events are copied.
func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		var ev event
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &ev) != nil || ev.Action == "" {
			fmt.Fprintln(s.w, line)
			continue
		}
		s.sawEvent = true
		s.event(ev)
	}
	return sc.Err()
}

func (s *summary) event(ev event) {
	key := ev.Package + "\x00" + ev.Test
	switch {
	case ev.Action == "build-output":
		io.WriteString(s.w, ev.Output)
	case ev.Action == "output" && ev.Test == "":
		// Package lines: keep "ok", "FAIL", "?", panics; drop what only
		// -v prints.
		if ev.Output != "PASS\n" && !strings.HasPrefix(ev.Output, "=== ") {
			io.WriteString(s.w, ev.Output)
		}
	case ev.Action == "output":
		if !strings.HasPrefix(ev.Output, "=== ") {
			s.buf[key] = append(s.buf[key], ev.Output)
		}
	case ev.Test != "" && ev.Action == "fail":
		s.failed(ev.Package, ev.Test)
	case ev.Test != "" && ev.Action == "skip":
		s.skip(ev, s.buf[key])
		delete(s.buf, key)
	case ev.Test != "" && ev.Action == "pass":
		delete(s.buf, key)
	case ev.Test == "" && ev.Action == "fail":
		// Tests that never ended (the binary crashed or timed out) show
		// their output, as plain go test does.
		prefix := ev.Package + "\x00"
		var open []string
		for k := range s.buf {
			if strings.HasPrefix(k, prefix) {
				open = append(open, k)
			}
		}
		sort.Strings(open)
		for _, k := range open {
			s.flush(k)
		}
	}
}

// failed moves a failed test's output, its "--- FAIL" line first as plain
// go test prints it, into its parent's (printed when the parent ends) or,
// for a top-level test, to the output.
func (s *summary) failed(pkg, test string) {
	key := pkg + "\x00" + test
	lines := s.buf[key]
	if n := len(lines); n > 0 && strings.HasPrefix(strings.TrimSpace(lines[n-1]), "--- FAIL") {
		lines = append(lines[n-1:n:n], lines[:n-1]...)
	}
	if i := strings.LastIndex(test, "/"); i >= 0 {
		parent := pkg + "\x00" + test[:i]
		s.buf[parent] = append(s.buf[parent], lines...)
		delete(s.buf, key)
		return
	}
	s.buf[key] = lines
	s.flush(key)
}

func (s *summary) flush(key string) {
	for _, l := range s.buf[key] {
		io.WriteString(s.w, l)
	}
	delete(s.buf, key)
}

func (s *summary) skip(ev event, out []string) {
	s.skipped++
	for _, l := range out {
		if need, ok := testref.ParseSkip(l); ok {
			s.needs[need]++
			return
		}
	}
	s.other = append(s.other, path.Base(ev.Package)+"."+ev.Test)
}

// Line is the one-line account of the skips.
func (s *summary) Line() string {
	if s.skipped == 0 {
		return "not tested: nothing, no test was skipped"
	}
	var parts []string
	for _, need := range testref.Needs() {
		if n := s.needs[need]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d: %s missing", n, need))
		}
	}
	if len(s.other) > 0 {
		names := s.other
		if len(names) > 4 {
			names = append(names[:4:4], "...")
		}
		parts = append(parts, fmt.Sprintf("%d: other reasons, see go test -v: %s", len(s.other), strings.Join(names, ", ")))
	}
	noun := "tests"
	if s.skipped == 1 {
		noun = "test"
	}
	return fmt.Sprintf("not tested: %d %s skipped (%s)", s.skipped, noun, strings.Join(parts, "; "))
}

// finish prints the skip line and, when the run failed, go test's closing
// FAIL line (which -json leaves out).
func (s *summary) finish(failed bool) {
	if s.sawEvent {
		fmt.Fprintln(s.w, s.Line())
	}
	if failed {
		fmt.Fprintln(s.w, "FAIL")
	}
}
