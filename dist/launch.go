package dist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// LaunchConfig describes the local ranks that Launch starts: NProc copies
// of Exe with Args, each with torchrun's environment.
type LaunchConfig struct {
	NProc int
	// MasterHost is where rank 0 listens (default 127.0.0.1); MasterPort
	// 0 picks a free port.
	MasterHost string
	MasterPort int
	Exe        string
	Args       []string
	// Env is the ranks' base environment; the launch variables replace
	// any of the same name in it.
	Env []string
	// LogDir, when set, receives rank-N.log: everything rank N writes to
	// standard output and error, unprefixed.
	LogDir string
	// Stdout and Stderr receive the ranks' output line by line, each line
	// prefixed with "[rank N] "; the launcher's own messages go to Stderr.
	Stdout, Stderr io.Writer
	// Grace is how long ranks may take to stop after being signalled
	// before they are killed (default 10 s).
	Grace time.Duration
	// Signals (SIGINT, SIGTERM) are forwarded to every rank; a second
	// one kills them.
	Signals <-chan os.Signal
}

// RankExitError is a rank that failed: it exited non-zero, was killed, or
// could not be started.
type RankExitError struct {
	Rank int
	Err  error // *exec.ExitError ("exit status 3", "signal: killed") or a start error
}

func (e *RankExitError) Error() string { return fmt.Sprintf("rank %d failed: %v", e.Rank, e.Err) }
func (e *RankExitError) Unwrap() error { return e.Err }

// SignalError is a launch stopped by a signal it forwarded to the ranks.
type SignalError struct{ Signal os.Signal }

func (e *SignalError) Error() string {
	return fmt.Sprintf("stopped by %v (forwarded to every rank)", e.Signal)
}

// launchVars are the variables Launch sets for each rank.
var launchVars = []string{envRank, envWorldSize, envLocalRank, envLocalWorldSize, envMasterAddr, envMasterPort}

// Launch runs cfg.NProc ranks to completion. When one fails the others are
// stopped (SIGTERM, then SIGKILL after Grace) and the error names the first
// that failed; when ctx ends or a signal arrives, the ranks are stopped the
// same way and the result is a *SignalError (ctx: SIGTERM). A rank that
// succeeds leaves the others running.
func Launch(ctx context.Context, cfg LaunchConfig) error {
	if cfg.NProc < 1 {
		return fmt.Errorf("dist: launch: --nproc-per-node %d: want at least 1", cfg.NProc)
	}
	if cfg.Exe == "" {
		return errors.New("dist: launch: no program to run")
	}
	cfg.MasterHost = cmpOr(cfg.MasterHost, "127.0.0.1")
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.MasterPort == 0 {
		port, err := freePort(cfg.MasterHost)
		if err != nil {
			return err
		}
		cfg.MasterPort = port
	}
	if cfg.LogDir != "" {
		if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
			return fmt.Errorf("dist: launch: log dir: %w", err)
		}
	}
	stdout := &lockedWriter{w: cmpOr[io.Writer](cfg.Stdout, io.Discard)}
	stderr := &lockedWriter{w: cmpOr[io.Writer](cfg.Stderr, io.Discard)}
	stderr.printf("purpcode launch: %d ranks, MASTER_ADDR=%s MASTER_PORT=%d\n", cfg.NProc, cfg.MasterHost, cfg.MasterPort)

	type exit struct {
		rank int
		err  error
	}
	exited := make(chan exit, cfg.NProc)
	ranks := make([]*rankProc, 0, cfg.NProc)
	var startErr error
	for r := range cfg.NProc {
		p, err := startRank(cfg, r, stdout, stderr)
		if err != nil {
			startErr = &RankExitError{Rank: r, Err: err}
			break
		}
		ranks = append(ranks, p)
		go func() { exited <- exit{r, p.wait()} }()
	}

	var (
		failure  error
		sigErr   *SignalError
		stopping bool
		grace    <-chan time.Time
		running  = len(ranks)
		alive    = make([]bool, len(ranks))
	)
	for r := range alive {
		alive[r] = true
	}
	signalAll := func(sig os.Signal) {
		for r, p := range ranks {
			if alive[r] {
				p.cmd.Process.Signal(sig) //nolint:errcheck // it may have exited since
			}
		}
	}
	stop := func(sig os.Signal) {
		signalAll(sig)
		if !stopping {
			stopping = true
			grace = time.After(cfg.Grace)
		}
	}
	if startErr != nil {
		failure = startErr
		stderr.printf("purpcode launch: %v; stopping the other ranks\n", startErr)
		stop(syscall.SIGTERM)
	}
	done := ctx.Done()
	for running > 0 {
		select {
		case e := <-exited:
			running--
			alive[e.rank] = false
			if e.err == nil {
				continue
			}
			if failure == nil && sigErr == nil {
				failure = &RankExitError{Rank: e.rank, Err: e.err}
				stderr.printf("purpcode launch: rank %d failed (%v); stopping the other ranks\n", e.rank, e.err)
				stop(syscall.SIGTERM)
			} else {
				stderr.printf("purpcode launch: rank %d ended: %v\n", e.rank, e.err)
			}
		case sig := <-cfg.Signals:
			if stopping {
				signalAll(syscall.SIGKILL)
				continue
			}
			sigErr = &SignalError{Signal: sig}
			stop(sig)
		case <-done:
			done = nil
			if !stopping {
				sigErr = &SignalError{Signal: syscall.SIGTERM}
				stop(syscall.SIGTERM)
			}
		case <-grace:
			stderr.printf("purpcode launch: ranks still running %s after the stop signal; killing them\n", cfg.Grace)
			signalAll(syscall.SIGKILL)
		}
	}
	var logErr error
	for _, p := range ranks {
		logErr = cmpOr(logErr, p.close())
	}
	switch {
	case failure != nil:
		return failure
	case sigErr != nil:
		return sigErr
	}
	return logErr
}

// rankProc is one started rank and its output plumbing.
type rankProc struct {
	cmd      *exec.Cmd
	out, err *prefixWriter
	log      *os.File
	logW     *logWriter
}

func startRank(cfg LaunchConfig, r int, stdout, stderr *lockedWriter) (*rankProc, error) {
	cmd := exec.Command(cfg.Exe, cfg.Args...)
	set := map[string]string{
		envRank: strconv.Itoa(r), envWorldSize: strconv.Itoa(cfg.NProc),
		envLocalRank: strconv.Itoa(r), envLocalWorldSize: strconv.Itoa(cfg.NProc),
		envMasterAddr: cfg.MasterHost, envMasterPort: strconv.Itoa(cfg.MasterPort),
	}
	for _, kv := range cfg.Env {
		if k, _, _ := strings.Cut(kv, "="); !slices.Contains(launchVars, k) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for _, k := range launchVars {
		cmd.Env = append(cmd.Env, k+"="+set[k])
	}
	cmd.SysProcAttr = rankSysProcAttr()
	// Output pipes held open by a rank's own children must not keep the
	// launcher waiting once the rank itself is gone.
	cmd.WaitDelay = 5 * time.Second
	prefix := fmt.Sprintf("[rank %d] ", r)
	p := &rankProc{cmd: cmd, out: &prefixWriter{dst: stdout, prefix: prefix}, err: &prefixWriter{dst: stderr, prefix: prefix}}
	var outW, errW io.Writer = p.out, p.err
	if cfg.LogDir != "" {
		path := filepath.Join(cfg.LogDir, fmt.Sprintf("rank-%d.log", r))
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("log file: %w", err)
		}
		p.log = f
		lw := &logWriter{w: f, path: path}
		p.logW = lw
		outW, errW = teeWriter{lw, p.out}, teeWriter{lw, p.err}
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	if err := cmd.Start(); err != nil {
		p.close() //nolint:errcheck // the start error is the one to report
		return nil, fmt.Errorf("start %s: %w", cfg.Exe, err)
	}
	return p, nil
}

// wait waits for the rank and flushes its last partial lines.
func (p *rankProc) wait() error {
	err := p.cmd.Wait()
	p.out.flush()
	p.err.flush()
	return err
}

func (p *rankProc) close() error {
	if p.log == nil {
		return nil
	}
	err := p.log.Close()
	p.logW.mu.Lock()
	defer p.logW.mu.Unlock()
	return cmpOr(p.logW.err, err)
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("dist: launch: find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// lockedWriter serialises the writes of several ranks to one stream.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (l *lockedWriter) printf(format string, args ...any) {
	fmt.Fprintf(l, format, args...) //nolint:errcheck // the launcher's own notes are best effort
}

// prefixWriter writes whole lines to dst, each with prefix, so that ranks'
// lines do not interleave mid-line.
type prefixWriter struct {
	dst    io.Writer
	prefix string
	buf    []byte
}

// maxLine is where a line without a newline is cut and written anyway.
const maxLine = 64 << 10

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 && len(w.buf) < maxLine {
			break
		}
		if i < 0 {
			i = len(w.buf) - 1
		}
		w.emit(w.buf[:i+1])
		w.buf = w.buf[:copy(w.buf, w.buf[i+1:])]
	}
	return len(b), nil
}

func (w *prefixWriter) emit(line []byte) {
	out := make([]byte, 0, len(w.prefix)+len(line)+1)
	out = append(append(out, w.prefix...), line...)
	if out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	w.dst.Write(out) //nolint:errcheck // the terminal may be gone; the log file keeps the output
}

func (w *prefixWriter) flush() {
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = w.buf[:0]
	}
}

// logWriter writes a rank's log file, keeping its first error instead of
// returning it: a full disk must not stop the rank's output pipe.
type logWriter struct {
	mu   sync.Mutex // the rank's stdout and stderr both write here
	w    io.Writer
	path string
	err  error
}

func (l *logWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		if _, err := l.w.Write(b); err != nil {
			l.err = fmt.Errorf("dist: launch: write %s: %w", l.path, err)
		}
	}
	return len(b), nil
}

// teeWriter writes to the log and to the prefixed stream.
type teeWriter struct {
	log *logWriter
	out *prefixWriter
}

func (t teeWriter) Write(b []byte) (int, error) {
	t.log.Write(b) //nolint:errcheck // logWriter keeps its error
	return t.out.Write(b)
}
