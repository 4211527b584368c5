package dist

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// launchHelper runs nproc ranks of this test binary in role with Launch.
func launchHelper(t *testing.T, ctx context.Context, nproc int, role string, extraEnv []string, cfg LaunchConfig) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb syncBuffer
	cfg.NProc = nproc
	cfg.Exe = os.Args[0]
	cfg.Args = []string{"-test.run=^$"}
	cfg.Env = append(append(os.Environ(), helperEnv+"="+role), extraEnv...)
	if cfg.Stdout == nil {
		cfg.Stdout = &out
	}
	cfg.Stderr = &errb
	err = Launch(ctx, cfg)
	return out.String(), errb.String(), err
}

// syncBuffer is a bytes.Buffer safe for the launcher's writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var digestLine = regexp.MustCompile(`(?m)^\[rank (\d+)\] digest (\d) ([0-9a-f]{64})$`)

// TestProcessCollectives runs the collectives suite in 2, 3 and 4 separate
// processes started by Launch, and requires the very bits of the in-process
// run: the backend's results depend on neither scheduling nor transport.
// It also checks the launcher's prefixed output and per-rank log files.
func TestProcessCollectives(t *testing.T) {
	for _, p := range []int{2, 3, 4} {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			want := suiteDigests(t, connectAll(t, p, nil))
			logDir := t.TempDir()
			stdout, stderr, err := launchHelper(t, context.Background(), p, "collectives", nil, LaunchConfig{LogDir: logDir})
			if err != nil {
				t.Fatalf("launch: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
			}
			seen := map[string]bool{}
			for _, m := range digestLine.FindAllStringSubmatch(stdout, -1) {
				seed, _ := strconv.Atoi(m[2])
				if m[3] != want[seed-1] {
					t.Errorf("rank %s, seed %d: digest differs from the in-process run", m[1], seed)
				}
				seen[m[1]+"/"+m[2]] = true
				log, err := os.ReadFile(filepath.Join(logDir, "rank-"+m[1]+".log"))
				if err != nil || !strings.Contains(string(log), "digest "+m[2]+" "+m[3]+"\n") {
					t.Errorf("rank %s's log file lacks its digest line (%v):\n%s", m[1], err, log)
				}
			}
			if len(seen) != 2*p {
				t.Fatalf("got %d digest lines, want %d\nstdout:\n%s\nstderr:\n%s", len(seen), 2*p, stdout, stderr)
			}
		})
	}
}

// TestLaunchStopsOthersWhenOneFails: a rank that exits non-zero or is
// killed ends the launch with an error naming it and its status, and the
// other ranks (blocked forever) are stopped.
func TestLaunchStopsOthersWhenOneFails(t *testing.T) {
	for _, tc := range []struct{ mode, status string }{{"exit", "exit status 3"}, {"kill", "signal: killed"}} {
		t.Run(tc.mode, func(t *testing.T) {
			logDir := t.TempDir()
			_, stderr, err := launchHelper(t, context.Background(), 3, "fail",
				[]string{failRankEnv + "=1", failModeEnv + "=" + tc.mode}, LaunchConfig{LogDir: logDir})
			var re *RankExitError
			if !errors.As(err, &re) || re.Rank != 1 || !strings.Contains(err.Error(), "rank 1 failed: "+tc.status) {
				t.Fatalf("launch: %v; want rank 1 failed with %q\nstderr:\n%s", err, tc.status, stderr)
			}
			if !strings.Contains(stderr, "stopping the other ranks") {
				t.Errorf("the launcher did not say it stops the others:\n%s", stderr)
			}
		})
	}
}

// lineWaiter is a Stdout that closes ready once it has seen n lines
// containing want.
type lineWaiter struct {
	mu    sync.Mutex
	want  string
	n     int
	ready chan struct{}
	buf   bytes.Buffer
}

func (w *lineWaiter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.n > 0 && strings.Count(w.buf.String(), w.want) >= w.n {
		w.n = 0
		close(w.ready)
	}
	return len(p), nil
}

// TestLaunchForwardsSignal: SIGTERM to the launcher reaches every rank
// (which sit in their own process group) and the launch reports it.
func TestLaunchForwardsSignal(t *testing.T) {
	const p = 2
	sigs := make(chan os.Signal, 1)
	w := &lineWaiter{want: "] ready\n", n: p, ready: make(chan struct{})}
	logDir := t.TempDir()
	done := make(chan error, 1)
	go func() {
		_, _, err := launchHelper(t, context.Background(), p, "signal", nil, LaunchConfig{LogDir: logDir, Signals: sigs, Stdout: w})
		done <- err
	}()
	select {
	case <-w.ready:
	case err := <-done:
		t.Fatalf("launch ended before the ranks were ready: %v", err)
	}
	sigs <- syscall.SIGTERM
	err := <-done
	var se *SignalError
	if !errors.As(err, &se) || se.Signal != syscall.SIGTERM {
		t.Fatalf("launch: %v, want stopped by SIGTERM", err)
	}
	for r := range p {
		log, err := os.ReadFile(filepath.Join(logDir, fmt.Sprintf("rank-%d.log", r)))
		if err != nil || !strings.Contains(string(log), "got terminated") {
			t.Errorf("rank %d did not get SIGTERM (%v):\n%s", r, err, log)
		}
	}
}

// TestKill9MidCollective kills one of three rank processes (the middle
// one) with SIGKILL while all three loop over all-reduces; both survivors
// must exit non-zero naming rank 1, through the lost connections rather
// than the 30 s per-call timeout. The 60 s context only turns a hang into
// a failure.
func TestKill9MidCollective(t *testing.T) {
	const p, victim = 3, 1
	port := freeTestPort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmds := make([]*exec.Cmd, p)
	stderrs := make([]*syncBuffer, p)
	var victimOut *bufio.Scanner
	for r := range p {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"=loop", timeoutEnv+"=30s",
			"RANK="+strconv.Itoa(r), "WORLD_SIZE="+strconv.Itoa(p),
			"MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(port))
		stderrs[r] = &syncBuffer{}
		cmd.Stderr = stderrs[r]
		if r == victim {
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			victimOut = bufio.NewScanner(out)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[r] = cmd
	}
	// Let the group run a few all-reduces, so that the kill lands in the
	// middle of the loop.
	for victimOut.Scan() && victimOut.Text() != "iter 3" {
	}
	if err := cmds[victim].Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmds[victim].Wait() //nolint:errcheck // killed on purpose
	for r, cmd := range cmds {
		if r == victim {
			continue
		}
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("rank %d: %v, want exit status 1\nstderr: %s", r, err, stderrs[r])
			continue
		}
		if msg := stderrs[r].String(); !strings.Contains(msg, fmt.Sprintf("rank %d lost", victim)) {
			t.Errorf("rank %d's error does not name rank %d: %s", r, victim, msg)
		}
	}
}

func freeTestPort(t *testing.T) int {
	t.Helper()
	port, err := freePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return port
}
