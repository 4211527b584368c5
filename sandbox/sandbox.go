package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Limits bounds one job. A zero field means "use the runner's default".
type Limits struct {
	// CPUSeconds is RLIMIT_CPU of every process: SIGXCPU at the limit, SIGKILL
	// one second later.
	CPUSeconds int
	// MemoryBytes is RLIMIT_AS (virtual address space) of every process.
	MemoryBytes int64
	// Procs is RLIMIT_NPROC for the job's uid: processes plus threads.
	Procs int
	// FileBytes is RLIMIT_FSIZE: the largest file a process may write.
	FileBytes int64
	// Wall is the wall-clock limit of the whole job, setup included.
	Wall time.Duration
	// OutputBytes caps stdout and stderr each; a job that writes more is
	// killed and its Result has OutputTruncated set.
	OutputBytes int
	// TmpBytes is the size of the /tmp tmpfs (the work dir, the only
	// writable place); it bounds a disk fill across many files.
	TmpBytes int64
}

// DefaultLimits are small enough that many jobs fit on a 2-core machine and
// large enough for test suites of generated code.
func DefaultLimits() Limits {
	return Limits{
		CPUSeconds:  10,
		MemoryBytes: 1 << 30,
		Procs:       64,
		FileBytes:   16 << 20,
		Wall:        20 * time.Second,
		OutputBytes: 1 << 20,
		TmpBytes:    64 << 20,
	}
}

// merged returns l with every zero field taken from def.
func (l Limits) merged(over *Limits) Limits {
	if over == nil {
		return l
	}
	o := *over
	if o.CPUSeconds > 0 {
		l.CPUSeconds = o.CPUSeconds
	}
	if o.MemoryBytes > 0 {
		l.MemoryBytes = o.MemoryBytes
	}
	if o.Procs > 0 {
		l.Procs = o.Procs
	}
	if o.FileBytes > 0 {
		l.FileBytes = o.FileBytes
	}
	if o.Wall > 0 {
		l.Wall = o.Wall
	}
	if o.OutputBytes > 0 {
		l.OutputBytes = o.OutputBytes
	}
	if o.TmpBytes > 0 {
		l.TmpBytes = o.TmpBytes
	}
	return l
}

// Job is one program to run.
type Job struct {
	// Lang is "python" (Code runs as /tmp/main.py) or "sh" (/tmp/main.sh
	// under /bin/sh).
	Lang string
	Code string
	// Files are extra files in the work dir, by relative slash-separated path.
	Files map[string]string
	Stdin string
	// Args follow the script name on the command line.
	Args   []string
	Limits *Limits
}

// Result is what a job did. A non-zero exit, a signal or a timeout is a
// Result, not an error; Run's error means the job could not be run.
type Result struct {
	// ExitCode is the program's exit status, or -1 when it was killed by the
	// runner (timeout, cancellation, output cap).
	ExitCode int
	// Signal names the signal that ended the program ("SIGKILL", "SIGXCPU"),
	// empty when it exited normally.
	Signal          string
	Stdout, Stderr  string
	TimedOut        bool
	OutputTruncated bool
	Duration        time.Duration
}

// OK reports a clean exit with status 0.
func (r Result) OK() bool {
	return r.ExitCode == 0 && r.Signal == "" && !r.TimedOut && !r.OutputTruncated
}

// Options configure a Runner. Zero values take the documented defaults.
type Options struct {
	// Workers bounds concurrent jobs (default: runtime.NumCPU()).
	Workers int
	// BwrapPath is the bubblewrap binary (default: "bwrap" from PATH).
	BwrapPath string
	// Python is the interpreter for python jobs (default: "python3" from PATH,
	// resolved once at New to the real executable so that version managers'
	// shims do not run inside the sandbox).
	Python string
	// Limits are the defaults for jobs; zero fields take DefaultLimits.
	Limits Limits
	// UIDBase is the first of the unprivileged uids that jobs run as when the
	// runner is root (uid = UIDBase + worker slot). Default: derived from the
	// process id so that runners of different processes rarely share uids
	// (RLIMIT_NPROC is counted per uid).
	UIDBase int
}

const maxWorkers = 256

// Runner runs jobs in bubblewrap with at most Workers at a time. It is safe
// for concurrent use.
type Runner struct {
	bwrap, prlimit, setpriv string
	python                  string   // real interpreter path
	pyDirs                  []string // interpreter dirs outside /usr to bind
	etcFiles                []string
	rootDirs                [][2]string // top-level entries: {name, symlink target or ""}
	privileged              bool        // running as root: drop to a per-slot uid
	uidBase                 int
	defaults                Limits
	slots                   chan int
}

// New finds bubblewrap and the interpreter and verifies, by running a trivial
// job, that namespaces can be created here.
func New(opts Options) (*Runner, error) {
	r := &Runner{privileged: os.Geteuid() == 0}
	bw := opts.BwrapPath
	if bw == "" {
		bw = "bwrap"
	}
	p, err := exec.LookPath(bw)
	if err != nil {
		return nil, fmt.Errorf("sandbox: bubblewrap %q not found (install the Debian package bubblewrap): %w", bw, err)
	}
	r.bwrap = p
	for _, tool := range []struct {
		name string
		dst  *string
	}{{"prlimit", &r.prlimit}, {"setpriv", &r.setpriv}} {
		p, err := exec.LookPath(tool.name)
		if err != nil {
			return nil, fmt.Errorf("sandbox: %s not found (install the Debian package util-linux): %w", tool.name, err)
		}
		*tool.dst = p
	}
	if err := r.findPython(opts.Python); err != nil {
		return nil, err
	}
	r.findRoot()

	r.defaults = DefaultLimits().merged(&opts.Limits)
	w := opts.Workers
	if w <= 0 {
		w = runtime.NumCPU()
	}
	if w > maxWorkers {
		return nil, fmt.Errorf("sandbox: Workers = %d, at most %d supported", w, maxWorkers)
	}
	r.uidBase = opts.UIDBase
	if r.uidBase <= 0 {
		r.uidBase = 1<<20 + (os.Getpid()%16384)*maxWorkers
	}
	r.slots = make(chan int, w)
	for i := 0; i < w; i++ {
		r.slots <- i
	}
	if err := r.selfCheck(); err != nil {
		return nil, err
	}
	return r, nil
}

// Workers is the number of jobs that may run at once.
func (r *Runner) Workers() int { return cap(r.slots) }

// Python is the interpreter path python jobs run with.
func (r *Runner) Python() string { return r.python }

// Defaults are the limits a job gets for fields it leaves zero.
func (r *Runner) Defaults() Limits { return r.defaults }

func (r *Runner) findPython(name string) error {
	if name == "" {
		name = "python3"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return fmt.Errorf("sandbox: python interpreter %q not found: %w", name, err)
	}
	// Ask the interpreter (trusted, ours) where it really lives; a pyenv shim
	// is a shell script that must not be what runs in the sandbox.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, p, "-c",
		"import sys,json;print(json.dumps([sys.executable,sys.prefix,sys.base_prefix,sys.exec_prefix,sys.base_exec_prefix]))").Output()
	if err != nil {
		return fmt.Errorf("sandbox: python interpreter %s: cannot query sys.executable: %w", p, err)
	}
	var paths []string
	if err := json.Unmarshal(out, &paths); err != nil || len(paths) != 5 || paths[0] == "" {
		return fmt.Errorf("sandbox: python interpreter %s: unexpected answer %q", p, out)
	}
	exe, err := filepath.EvalSymlinks(paths[0])
	if err != nil {
		return fmt.Errorf("sandbox: python interpreter %s: resolve %s: %w", p, paths[0], err)
	}
	r.python = exe
	var dirs []string
	for _, d := range append([]string{filepath.Dir(exe)}, paths[1:]...) {
		if d == "" {
			continue
		}
		if rd, err := filepath.EvalSymlinks(d); err == nil {
			d = rd
		}
		if underSystem(d) {
			continue
		}
		dirs = append(dirs, filepath.Clean(d))
	}
	r.pyDirs = outermost(dirs)
	return nil
}

// underSystem reports paths that the sandbox's /usr bind already covers.
func underSystem(p string) bool {
	for _, root := range []string{"/usr", "/bin", "/lib", "/lib64", "/sbin"} {
		if p == root || strings.HasPrefix(p, root+"/") {
			return true
		}
	}
	return false
}

// outermost drops duplicates and directories nested inside another listed one.
func outermost(dirs []string) []string {
	sort.Strings(dirs)
	var out []string
	for _, d := range dirs {
		if len(out) > 0 {
			last := out[len(out)-1]
			if d == last || strings.HasPrefix(d, last+"/") {
				continue
			}
		}
		out = append(out, d)
	}
	return out
}

// etcFiles are the few /etc entries that the dynamic loader, Python and
// common tools read; /etc/shadow and the rest of /etc stay out.
var etcCandidates = []string{
	"ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "passwd", "group",
	"nsswitch.conf", "alternatives", "ssl", "mime.types",
}

func (r *Runner) findRoot() {
	for _, name := range []string{"bin", "sbin", "lib", "lib32", "lib64", "libx32"} {
		host := "/" + name
		fi, err := os.Lstat(host)
		if err != nil {
			continue
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			if t, err := os.Readlink(host); err == nil {
				r.rootDirs = append(r.rootDirs, [2]string{name, t})
			}
			continue
		}
		if fi.IsDir() {
			r.rootDirs = append(r.rootDirs, [2]string{name, ""})
		}
	}
	for _, e := range etcCandidates {
		if _, err := os.Stat("/etc/" + e); err == nil {
			r.etcFiles = append(r.etcFiles, "/etc/"+e)
		}
	}
	if m, err := filepath.Glob("/etc/python3*"); err == nil {
		r.etcFiles = append(r.etcFiles, m...)
	}
}

func (r *Runner) selfCheck() error {
	lim := Limits{Wall: 20 * time.Second}
	res, err := r.Run(context.Background(), Job{
		Lang:   "python",
		Code:   "import os, sys\nprint('sandbox-ok', os.getuid(), sys.argv[1])\n",
		Args:   []string{"arg"},
		Limits: &lim,
	})
	if err != nil {
		return fmt.Errorf("sandbox: self-check job could not run: %w", err)
	}
	if !res.OK() || !strings.HasPrefix(res.Stdout, "sandbox-ok ") || !strings.HasSuffix(strings.TrimSpace(res.Stdout), " arg") {
		return fmt.Errorf("sandbox: self-check failed: bubblewrap %s could not create the sandbox "+
			"(namespaces disallowed? not root and no unprivileged user namespaces?): exit %d %s, stdout %q, stderr %q",
			r.bwrap, res.ExitCode, res.Signal, clip(res.Stdout, 400), clip(res.Stderr, 800))
	}
	if r.privileged {
		uid := strings.Fields(res.Stdout)[1]
		if n, err := strconv.Atoi(uid); err != nil || n < r.uidBase || n >= r.uidBase+maxWorkers {
			return fmt.Errorf("sandbox: self-check: job ran as uid %s, want an unprivileged uid >= %d", uid, r.uidBase)
		}
	}
	return nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// workFile is one file placed in /tmp.
type workFile struct {
	name    string // relative, slash-separated, cleaned
	content string
}

func (j Job) workFiles(maxBytes int64) ([]workFile, error) {
	var main string
	switch j.Lang {
	case "python":
		main = "main.py"
	case "sh":
		main = "main.sh"
	default:
		return nil, fmt.Errorf("sandbox: job language %q: want \"python\" or \"sh\"", j.Lang)
	}
	files := []workFile{{main, j.Code}}
	total := int64(len(j.Code))
	names := make([]string, 0, len(j.Files))
	for n := range j.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := path.Clean(n)
		if n == "" || c != n || path.IsAbs(c) || c == "." || c == ".." || strings.HasPrefix(c, "../") || strings.ContainsRune(c, 0) {
			return nil, fmt.Errorf("sandbox: job file %q: want a clean relative path inside the work dir", n)
		}
		if c == main {
			return nil, fmt.Errorf("sandbox: job file %q collides with the program file", n)
		}
		files = append(files, workFile{c, j.Files[n]})
		total += int64(len(j.Files[n]))
	}
	if total >= maxBytes {
		return nil, fmt.Errorf("sandbox: job files total %d bytes, more than the %d-byte work dir", total, maxBytes)
	}
	return files, nil
}

// Run runs job, waiting for a free worker first. Its error is non-nil only
// when the job could not be run (bad job, ctx done before start, bwrap could
// not be started); everything the program does is reported in Result.
func (r *Runner) Run(ctx context.Context, job Job) (Result, error) {
	lim := r.defaults.merged(job.Limits)
	files, err := job.workFiles(lim.TmpBytes)
	if err != nil {
		return Result{}, err
	}
	var slot int
	select {
	case slot = <-r.slots:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("sandbox: waiting for a worker: %w", ctx.Err())
	}
	defer func() { r.slots <- slot }()
	return r.run(ctx, job, files, lim, r.uidBase+slot)
}

// cappedBuffer keeps the first max bytes written and signals overflow once.
type cappedBuffer struct {
	buf      bytes.Buffer
	max      int
	overflow func()
	over     bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room > 0 {
		if len(p) <= room {
			c.buf.Write(p)
			return len(p), nil
		}
		c.buf.Write(p[:room])
	}
	if !c.over {
		c.over = true
		c.overflow()
	}
	// Keep draining so the writer never blocks on a full pipe while the
	// sandbox is being killed.
	return len(p), nil
}

func (r *Runner) run(ctx context.Context, job Job, files []workFile, lim Limits, uid int) (Result, error) {
	var extra []*os.File
	defer func() {
		for _, f := range extra {
			f.Close()
		}
	}()
	// Child fds are 3+i for extra[i].
	addFD := func(f *os.File) string {
		extra = append(extra, f)
		return strconv.Itoa(2 + len(extra))
	}

	infoR, infoW, err := os.Pipe()
	if err != nil {
		return Result{}, fmt.Errorf("sandbox: info pipe: %w", err)
	}
	defer infoR.Close()
	infoFD := addFD(infoW)

	args := r.baseArgs(lim)
	made := map[string]bool{}
	for _, f := range files {
		// Parent directories of a nested file, writable by the job.
		dir := path.Dir(f.name)
		var parents []string
		for d := dir; d != "." && !made[d]; d = path.Dir(d) {
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			made[parents[i]] = true
			args = append(args, "--perms", "0777", "--dir", "/tmp/"+parents[i])
		}
		mf, err := memFile(f.name, f.content)
		if err != nil {
			return Result{}, err
		}
		args = append(args, "--perms", "0666", "--file", addFD(mf), "/tmp/"+f.name)
	}
	args = append(args, "--chdir", "/tmp", "--info-fd", infoFD, "--")
	args = append(args, r.command(job, lim, uid)...)

	cmd := exec.Command(r.bwrap, args...)
	cmd.Dir = "/"
	cmd.Env = []string{}
	cmd.ExtraFiles = extra
	cmd.Stdin = strings.NewReader(job.Stdin)
	overflow := make(chan struct{})
	var once sync.Once
	signalOverflow := func() { once.Do(func() { close(overflow) }) }
	stdout := &cappedBuffer{max: lim.OutputBytes, overflow: signalOverflow}
	stderr := &cappedBuffer{max: lim.OutputBytes, overflow: signalOverflow}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true, Pdeathsig: unix.SIGKILL}
	// Bounds the wait for the output pipes after the process is gone; the
	// PID namespace teardown closes them, this is only a backstop.
	cmd.WaitDelay = 2 * time.Second

	start := time.Now()
	if err := cmd.Start(); err != nil {
		infoW.Close()
		return Result{}, fmt.Errorf("sandbox: start %s: %w", r.bwrap, err)
	}
	infoW.Close()

	// The sandbox's PID 1, as a pidfd so that killing it can never hit a
	// recycled pid.
	var mu sync.Mutex
	pidfd := -1
	infoDone := make(chan struct{})
	go func() {
		defer close(infoDone)
		var info struct {
			ChildPID int `json:"child-pid"`
		}
		if err := json.NewDecoder(infoR).Decode(&info); err != nil || info.ChildPID <= 0 {
			return
		}
		fd, err := unix.PidfdOpen(info.ChildPID, 0)
		if err != nil {
			return
		}
		mu.Lock()
		pidfd = fd
		mu.Unlock()
	}()
	killAll := func() {
		mu.Lock()
		if pidfd >= 0 {
			_ = unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		}
		mu.Unlock()
		_ = cmd.Process.Kill()
	}

	waitDone := make(chan error, 1)
	go func() { waitDone <- cmd.Wait() }()
	timer := time.NewTimer(lim.Wall)
	defer timer.Stop()

	var res Result
	var waitErr error
	killed := false
	select {
	case waitErr = <-waitDone:
	case <-timer.C:
		res.TimedOut, killed = true, true
		killAll()
		waitErr = <-waitDone
	case <-overflow:
		res.OutputTruncated, killed = true, true
		killAll()
		waitErr = <-waitDone
	case <-ctx.Done():
		killed = true
		killAll()
		waitErr = <-waitDone
	}
	res.Duration = time.Since(start)
	<-infoDone
	// Make sure nothing of the sandbox is left, whatever path ended the job:
	// killing PID 1 of the namespace kills every process in it, and the
	// pidfd becomes readable only once PID 1 (and so the namespace) is gone.
	mu.Lock()
	fd := pidfd
	mu.Unlock()
	if fd >= 0 {
		_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			n, err := unix.Poll(pfd, 1000)
			if n > 0 || (err != nil && !errors.Is(err, unix.EINTR)) {
				break
			}
		}
		unix.Close(fd)
	}

	res.Stdout, res.Stderr = stdout.buf.String(), stderr.buf.String()
	if stdout.over || stderr.over {
		res.OutputTruncated = true
	}
	if ctx.Err() != nil && !res.TimedOut && !res.OutputTruncated {
		return res, fmt.Errorf("sandbox: job cancelled: %w", ctx.Err())
	}
	st := cmd.ProcessState
	switch {
	case killed || st == nil:
		res.ExitCode, res.Signal = -1, "SIGKILL"
	case st.Exited():
		res.ExitCode = st.ExitCode()
		// bwrap reports a child killed by signal s as exit status 128+s.
		if c := res.ExitCode; c > 128 && c <= 128+64 {
			if name := unix.SignalName(unix.Signal(c - 128)); name != "" {
				res.Signal = name
			}
		}
	default:
		res.ExitCode = -1
		if ws, ok := st.Sys().(unix.WaitStatus); ok && ws.Signaled() {
			res.Signal = unix.SignalName(ws.Signal())
		}
	}
	if waitErr != nil && !killed && st == nil {
		return res, fmt.Errorf("sandbox: wait for %s: %w", r.bwrap, waitErr)
	}
	return res, nil
}

// memFile is an in-memory file holding content, positioned at its start, for
// bwrap's --file.
func memFile(name, content string) (*os.File, error) {
	fd, err := unix.MemfdCreate("sandbox-file", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("sandbox: memfd for %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), "memfd:"+name)
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return nil, fmt.Errorf("sandbox: write %s: %w", name, err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("sandbox: rewind %s: %w", name, err)
	}
	return f, nil
}

// baseArgs is the sandbox layout shared by all jobs.
func (r *Runner) baseArgs(lim Limits) []string {
	a := []string{
		"--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
		"--hostname", "sandbox",
		"--die-with-parent", "--new-session",
		"--clearenv",
	}
	pathEnv := "/usr/local/bin:/usr/bin:/bin"
	if d := filepath.Dir(r.python); !underSystem(d) {
		pathEnv = d + ":" + pathEnv
	}
	for _, kv := range [][2]string{
		{"PATH", pathEnv}, {"HOME", "/tmp"}, {"TMPDIR", "/tmp"}, {"LANG", "C.UTF-8"},
		{"PYTHONUNBUFFERED", "1"}, {"PYTHONDONTWRITEBYTECODE", "1"}, {"PYTHONHASHSEED", "0"},
	} {
		a = append(a, "--setenv", kv[0], kv[1])
	}
	if r.privileged {
		a = append(a, "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID")
	} else {
		// Without root the job keeps our own (non-root) uid, which
		// RLIMIT_NPROC already binds; a user namespace is needed for the
		// other namespaces.
		a = append(a, "--unshare-user")
	}
	a = append(a, "--ro-bind", "/usr", "/usr")
	for _, d := range r.rootDirs {
		if d[1] != "" {
			a = append(a, "--symlink", d[1], "/"+d[0])
		} else {
			a = append(a, "--ro-bind", "/"+d[0], "/"+d[0])
		}
	}
	a = append(a, "--perms", "0755", "--dir", "/etc")
	for _, f := range r.etcFiles {
		a = append(a, "--ro-bind-try", f, f)
	}
	made := map[string]bool{}
	for _, d := range r.pyDirs {
		// Create the parents world-traversable: bwrap would copy host modes
		// such as /root's 0700, which the unprivileged job could not cross.
		var parents []string
		for p := filepath.Dir(d); p != "/" && !made[p]; p = filepath.Dir(p) {
			parents = append(parents, p)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			made[parents[i]] = true
			a = append(a, "--perms", "0755", "--dir", parents[i])
		}
		a = append(a, "--ro-bind", d, d)
	}
	a = append(a,
		"--proc", "/proc", "--dev", "/dev",
		"--size", strconv.FormatInt(lim.TmpBytes, 10), "--perms", "1777", "--tmpfs", "/tmp",
		"--size", strconv.FormatInt(min(lim.TmpBytes, 16<<20), 10), "--perms", "1777", "--tmpfs", "/dev/shm",
	)
	return a
}

// command is what runs inside the sandbox: set rlimits, drop to the job's
// uid with no capabilities, exec the interpreter.
func (r *Runner) command(job Job, lim Limits, uid int) []string {
	c := []string{r.prlimit,
		fmt.Sprintf("--cpu=%d:%d", lim.CPUSeconds, lim.CPUSeconds+1),
		fmt.Sprintf("--as=%d", lim.MemoryBytes),
		fmt.Sprintf("--nproc=%d", lim.Procs),
		fmt.Sprintf("--fsize=%d", lim.FileBytes),
		"--core=0",
		"--",
	}
	if r.privileged {
		u := strconv.Itoa(uid)
		c = append(c, r.setpriv, "--reuid", u, "--regid", u, "--clear-groups",
			"--inh-caps=-all", "--bounding-set=-all", "--")
	}
	if job.Lang == "python" {
		c = append(c, r.python, "-c", pythonBoot, "/tmp/main.py")
	} else {
		c = append(c, r.python, "-S", "-E", "-c", shellBoot, "/bin/sh", "/tmp/main.sh")
	}
	return append(c, job.Args...)
}

// Descriptors that this process inherited without close-on-exec (or that a
// C library opened without it, such as a GPU driver's) pass through bwrap;
// the job's first act is to close them. pythonBoot then runs main.py as
// __main__ with the usual argv and sys.path; shellBoot execs the shell.
const (
	closeFDs   = "import os, sys\nos.closerange(3, 1 << 20)\n"
	pythonBoot = closeFDs + "sys.argv = sys.argv[1:]\nsys.path[0] = '/tmp'\n" +
		"import runpy\nrunpy.run_path('/tmp/main.py', run_name='__main__')\n"
	shellBoot = closeFDs + "os.execv(sys.argv[1], sys.argv[1:])\n"
)
