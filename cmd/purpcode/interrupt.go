package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"syscall"

	"purpcode/train"
)

// interrupt is a context cancelled by the first SIGINT or SIGTERM. After
// that signal the default handling is back, so a second Ctrl-C ends the
// process at once instead of waiting for the checkpoint being saved.
type interrupt struct {
	context.Context
	mu  sync.Mutex
	sig os.Signal
}

// notifyInterrupt starts listening; stop releases the signals.
func notifyInterrupt() (in *interrupt, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	in = &interrupt{Context: ctx}
	ch := make(chan os.Signal, 1)
	// A native library loaded before this point (the CUDA probe of
	// --device auto) can leave the runtime's handler installed without
	// SA_ONSTACK, and the first Ctrl-C then crashes the runtime ("non-Go
	// code set up signal handler without SA_ONSTACK flag"). Ignoring the
	// signals hands them back from the runtime, so that Notify installs
	// its handler afresh, with the flags it needs.
	signal.Ignore(os.Interrupt, syscall.SIGTERM)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			signal.Stop(ch)
			in.mu.Lock()
			in.sig = s
			in.mu.Unlock()
			cancel()
		case <-done:
		}
	}()
	return in, func() {
		signal.Stop(ch)
		close(done)
		cancel()
	}
}

// interrupted reports whether a signal arrived.
func (in *interrupt) interrupted() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.sig != nil
}

// exit is the error a command returns after a signal: mainExit exits with
// the shell's status for death by that signal (130 for SIGINT, 143 for
// SIGTERM) and prints nothing more.
func (in *interrupt) exit() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	code := 130
	if in.sig == syscall.SIGTERM {
		code = 143
	}
	return exitStatus(code)
}

// exitStatus is a command's exit status after its message was printed.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
func (e exitStatus) ExitCode() int { return int(e) }

// resumeFlag matches the flags a resumed command must not repeat: --resume
// itself and --force, which would delete the run being resumed. Both are
// booleans, so they never take the next argument as their value.
var resumeFlag = regexp.MustCompile(`^--?(resume|force)(=.*)?$`)

// resumeCommand is the command line that continues a run started with
// args: the same arguments with --resume.
func resumeCommand(name string, args []string) string {
	parts := []string{"purpcode", name}
	for _, a := range args {
		if !resumeFlag.MatchString(a) {
			parts = append(parts, shellQuote(a))
		}
	}
	return strings.Join(append(parts, "--resume"), " ")
}

// shellQuote quotes s for a POSIX shell when it holds anything but plain
// word characters.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=,:+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// reportTrainerInterrupt tells which checkpoint of a stopped trainer
// survives and how to continue.
func reportTrainerInterrupt(w io.Writer, name string, args []string, out string, in *interrupt) error {
	fmt.Fprintf(w, "purpcode %s: interrupted; %s\n", name, train.DescribeLastCheckpoint(out))
	fmt.Fprintf(w, "`%s` continues\n", resumeCommand(name, args))
	return in.exit()
}
