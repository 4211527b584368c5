package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hostEnv is what a hostile program may try to reach on the host.
type hostEnv struct {
	token      string // unique marker for processes and files of this case
	secretPath string // a file in the test's temp dir, outside the sandbox
	secret     string
	hostDir    string // the test's temp dir, where writes must not land
	tcpPort    int    // a listener on the host's 127.0.0.1
	udpPort    int
	victimPID  int // a host process that must survive
}

type hostileCase struct {
	name   string
	lang   string
	code   string // with {{TOKEN}}, {{SECRET}}, {{HOSTDIR}}, {{TCP}}, {{UDP}}, {{VICTIM}}
	limits Limits
	check  func(t *testing.T, res Result, env hostEnv)
}

func (c hostileCase) render(env hostEnv) string {
	return strings.NewReplacer(
		"{{TOKEN}}", env.token, "{{SECRET}}", env.secretPath, "{{HOSTDIR}}", env.hostDir,
		"{{TCP}}", strconv.Itoa(env.tcpPort), "{{UDP}}", strconv.Itoa(env.udpPort),
		"{{VICTIM}}", strconv.Itoa(env.victimPID),
	).Replace(c.code)
}

// Each program prints ESCAPED when an attack it tries works.
func noEscape(t *testing.T, res Result, _ hostEnv) {
	t.Helper()
	if strings.Contains(res.Stdout, "ESCAPED") || strings.Contains(res.Stderr, "ESCAPED") {
		t.Errorf("attack succeeded:\nstdout: %s\nstderr: %s", clip(res.Stdout, 2000), clip(res.Stderr, 2000))
	}
}

// blocked runs noEscape and also requires that the program reached its end
// (printed DONE), so that a crash before the attack does not pass vacuously.
func blocked(t *testing.T, res Result, env hostEnv) {
	t.Helper()
	noEscape(t, res, env)
	if !strings.Contains(res.Stdout, "DONE") {
		t.Errorf("program did not reach its end:\nstdout: %s\nstderr: %s", clip(res.Stdout, 2000), clip(res.Stderr, 2000))
	}
}

func ended(t *testing.T, res Result, _ hostEnv) {
	t.Helper()
	if res.OK() {
		t.Errorf("hostile program ended cleanly, want it stopped by a limit: %+v", res)
	}
}

func timedOut(t *testing.T, res Result, _ hostEnv) {
	t.Helper()
	if !res.TimedOut || res.Signal != "SIGKILL" {
		t.Errorf("want wall-clock kill, got %+v", res)
	}
}

func all(checks ...func(*testing.T, Result, hostEnv)) func(*testing.T, Result, hostEnv) {
	return func(t *testing.T, res Result, env hostEnv) {
		t.Helper()
		for _, c := range checks {
			c(t, res, env)
		}
	}
}

// hostPathAbsent checks that nothing named after the token appeared in the
// host directories a program tried to write to.
func hostPathAbsent(dirs ...string) func(*testing.T, Result, hostEnv) {
	return func(t *testing.T, _ Result, env hostEnv) {
		t.Helper()
		for _, d := range append(dirs, env.hostDir) {
			p := filepath.Join(d, env.token)
			if _, err := os.Lstat(p); err == nil {
				os.RemoveAll(p)
				t.Errorf("host file %s was created", p)
			}
		}
	}
}

// noProcessWithToken scans the host's /proc for a command line carrying the
// case's token: a daemon that outlived Run.
func noProcessWithToken(t *testing.T, _ Result, env hostEnv) {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cl, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(cl, []byte(env.token)) {
			t.Errorf("process %s outlived the job: %q", e.Name(), bytes.ReplaceAll(cl, []byte{0}, []byte{' '}))
			if pid, err := strconv.Atoi(e.Name()); err == nil {
				unix.Kill(pid, unix.SIGKILL)
			}
		}
	}
}

func victimAlive(t *testing.T, _ Result, env hostEnv) {
	t.Helper()
	if err := unix.Kill(env.victimPID, 0); err != nil {
		t.Errorf("host process %d was killed: %v", env.victimPID, err)
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", env.victimPID))
	if err != nil {
		t.Errorf("host process %d gone: %v", env.victimPID, err)
		return
	}
	if !bytes.Contains(st, []byte("TracerPid:\t0\n")) {
		t.Errorf("host process %d is being traced", env.victimPID)
	}
	if bytes.Contains(st, []byte("State:\tT")) {
		t.Errorf("host process %d was stopped", env.victimPID)
	}
}

func withinWall(t *testing.T, res Result, lim Limits) {
	t.Helper()
	// Generous slack for a loaded 2-core machine; the point is that the job
	// is bounded, not how fast teardown is.
	if res.Duration > lim.Wall+5*time.Second {
		t.Errorf("job ran %v, wall limit %v", res.Duration, lim.Wall)
	}
}

var hostileCases = []hostileCase{
	{name: "connect external address", lang: "python", code: `
import socket
for addr in [("1.1.1.1", 53), ("8.8.8.8", 443), ("93.184.216.34", 80)]:
    try:
        socket.create_connection(addr, timeout=2)
        print("ESCAPED", addr)
    except OSError as e:
        print("blocked", addr, e)
print("DONE")
`, check: blocked},
	{name: "connect host loopback listener", lang: "python", code: `
import socket
for fam, addr in [(socket.AF_INET, ("127.0.0.1", {{TCP}}))]:
    try:
        s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(2); s.connect(addr)
        print("ESCAPED tcp")
    except OSError as e:
        print("blocked", e)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.sendto(b"{{TOKEN}}", ("127.0.0.1", {{UDP}}))
except OSError as e:
    print("udp", e)
print("DONE")
`, check: blocked}, // the listeners are checked for every case
	{name: "dns lookup", lang: "python", code: `
import socket
for host in ["example.com", "google.com", "localhost.localdomain"]:
    try:
        print("ESCAPED", host, socket.getaddrinfo(host, 80)[0][4])
    except OSError as e:
        print("blocked", host, e)
print("DONE")
`, check: func(t *testing.T, res Result, env hostEnv) {
		// localhost-style names may resolve inside the private namespace;
		// only external names matter.
		for _, l := range strings.Split(res.Stdout, "\n") {
			if strings.HasPrefix(l, "ESCAPED example.com") || strings.HasPrefix(l, "ESCAPED google.com") {
				t.Errorf("DNS resolved: %s", l)
			}
		}
		if !strings.Contains(res.Stdout, "DONE") {
			t.Errorf("did not finish: %+v", res)
		}
	}},
	{name: "raw and packet sockets", lang: "python", code: `
import socket
for fam, typ in [(socket.AF_PACKET, socket.SOCK_RAW), (socket.AF_INET, socket.SOCK_RAW)]:
    try:
        socket.socket(fam, typ, 0 if fam == socket.AF_INET else 3)
        print("ESCAPED raw", fam)
    except (OSError, AttributeError) as e:
        print("blocked", e)
print("DONE")
`, check: blocked},
	{name: "python fork bomb", lang: "python", limits: Limits{Procs: 16, Wall: 3 * time.Second}, code: `
import os
print("{{TOKEN}}")
while True:
    try:
        os.fork()
    except OSError:
        pass
`, check: all(timedOut, noProcessWithToken)},
	{name: "shell fork bomb", lang: "sh", limits: Limits{Procs: 16, Wall: 3 * time.Second}, code: `
bomb() { bomb | bomb & }
bomb
sleep 100 # {{TOKEN}}
`, check: all(ended, noProcessWithToken)},
	{name: "thread bomb", lang: "python", limits: Limits{Procs: 16, Wall: 5 * time.Second}, code: `
import threading, time
n = 0
try:
    while True:
        threading.Thread(target=time.sleep, args=(100,), daemon=True).start()
        n += 1
except RuntimeError as e:
    print("stopped after", n, e)
print("ESCAPED" if n >= 16 else "DONE")
import os; os._exit(0)
`, check: blocked},
	{name: "memory bomb", lang: "python", limits: Limits{MemoryBytes: 256 << 20}, code: `
blocks = []
try:
    while True:
        blocks.append(bytearray(32 << 20))
except MemoryError:
    print("stopped at", len(blocks) * 32, "MiB")
print("ESCAPED" if len(blocks) * 32 > 256 else "DONE")
`, check: blocked},
	{name: "memory bomb in children", lang: "python", limits: Limits{MemoryBytes: 128 << 20, Procs: 8, Wall: 4 * time.Second}, code: `
import os
for i in range(20):
    try:
        if os.fork() == 0:
            x = []
            while True:
                x.append(bytearray(16 << 20))
    except OSError:
        pass
print("{{TOKEN}} parent done")
os.wait()
`, check: all(noProcessWithToken)},
	{name: "disk fill in tmp", lang: "python", limits: Limits{TmpBytes: 8 << 20, FileBytes: 64 << 20}, code: `
total = 0
try:
    with open("/tmp/{{TOKEN}}", "wb") as f:
        while True:
            f.write(b"x" * (1 << 20)); f.flush(); total += 1 << 20
except OSError as e:
    print("stopped", total, e)
print("ESCAPED" if total > 8 << 20 else "DONE")
`, check: all(blocked, hostPathAbsent("/tmp"))},
	{name: "disk fill many files", lang: "python", limits: Limits{TmpBytes: 4 << 20}, code: `
n = 0
try:
    while True:
        open("/tmp/f%d" % n, "wb").write(b"y" * 65536); n += 1
except OSError as e:
    print("stopped", n, e)
print("ESCAPED" if n * 65536 > 4 << 20 else "DONE")
`, check: blocked},
	{name: "file size limit", lang: "python", limits: Limits{FileBytes: 1 << 20}, code: `
import signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
try:
    open("/tmp/big", "wb").write(b"z" * (4 << 20))
    print("ESCAPED wrote 4 MiB")
except OSError as e:
    print("blocked", e)
print("DONE")
`, check: blocked},
	{name: "disk fill elsewhere", lang: "python", code: `
import os
for d in ["/", "/usr", "/usr/local", "/etc", "/var", "/var/tmp", "/root", "/home", "/dev", "/dev/shm", "/proc", "{{HOSTDIR}}"]:
    try:
        with open(os.path.join(d, "{{TOKEN}}"), "wb") as f:
            f.write(b"w" * (64 << 20))
        print("wrote", d)
        if d != "/dev/shm":
            print("ESCAPED write", d)
    except OSError as e:
        print("blocked", d, e)
print("DONE")
`, check: all(blocked, hostPathAbsent("/", "/usr", "/usr/local", "/etc", "/var/tmp", "/root", "/dev", "/dev/shm"))},
	{name: "read shadow", lang: "python", code: `
for p in ["/etc/shadow", "/etc/gshadow", "/proc/1/root/etc/shadow", "/etc/ssh/ssh_host_rsa_key"]:
    try:
        print("ESCAPED", p, open(p).read()[:100])
    except OSError as e:
        print("blocked", p, e)
print("DONE")
`, check: blocked},
	{name: "read test temp dir", lang: "python", code: `
import os
for p in ["{{SECRET}}", "/proc/1/root{{SECRET}}"]:
    try:
        print("ESCAPED", open(p).read())
    except OSError as e:
        print("blocked", p, e)
try:
    print("listing", os.listdir("{{HOSTDIR}}"))
    print("ESCAPED listed")
except OSError as e:
    print("blocked listing", e)
print("DONE")
`, check: all(blocked, func(t *testing.T, res Result, env hostEnv) {
		if strings.Contains(res.Stdout, env.secret) {
			t.Errorf("secret read: %s", res.Stdout)
		}
	})},
	{name: "write host files", lang: "sh", code: `
for f in {{HOSTDIR}}/{{TOKEN}} /root/{{TOKEN}} /usr/{{TOKEN}} /etc/{{TOKEN}} /{{TOKEN}}; do
  if echo owned > "$f" 2>/dev/null; then echo "ESCAPED $f"; else echo "blocked $f"; fi
done
if echo x >> {{SECRET}} 2>/dev/null; then echo ESCAPED append; fi
echo DONE
`, check: all(blocked, hostPathAbsent("/root", "/usr", "/etc", "/"), func(t *testing.T, _ Result, env hostEnv) {
		if b, _ := os.ReadFile(env.secretPath); string(b) != env.secret {
			t.Errorf("host file changed: %q", b)
		}
	})},
	{name: "kill parent and init", lang: "python", code: `
import os, signal
for pid in [os.getppid(), 1, {{VICTIM}}, -1]:
    try:
        os.kill(pid, signal.SIGKILL)
        print("signalled", pid)
    except OSError as e:
        print("blocked", pid, e)
print("DONE")
`, check: all(victimAlive, func(t *testing.T, res Result, env hostEnv) {
		// kill(-1) kills the program itself, which is allowed; the point is
		// that nothing outside the sandbox died.
		if strings.Contains(res.Stdout, "signalled 1\n") {
			t.Errorf("sandbox init was killed by the job: %s", res.Stdout)
		}
	})},
	{name: "signal host processes", lang: "sh", code: `
for s in TERM STOP HUP INT USR1 KILL; do
  kill -s $s {{VICTIM}} 2>/dev/null && echo "ESCAPED $s"
done
for p in 1 2 3 100 1000 {{VICTIM}}; do [ $p = $$ ] || kill -9 $p 2>/dev/null; done
echo DONE
`, check: all(blocked, victimAlive)},
	{name: "infinite loop", lang: "python", limits: Limits{CPUSeconds: 1, Wall: 10 * time.Second}, code: `
while True:
    pass
`, check: func(t *testing.T, res Result, _ hostEnv) {
		if res.Signal != "SIGXCPU" && res.Signal != "SIGKILL" {
			t.Errorf("want CPU limit signal, got %+v", res)
		}
		if res.TimedOut {
			t.Errorf("CPU limit did not act before the wall clock: %+v", res)
		}
	}},
	{name: "cpu burn in threads", lang: "python", limits: Limits{CPUSeconds: 1, Wall: 10 * time.Second}, code: `
import threading
def burn():
    x = 0
    while True:
        x += 1
for _ in range(4):
    threading.Thread(target=burn).start()
`, check: func(t *testing.T, res Result, _ hostEnv) {
		if res.Signal != "SIGXCPU" && res.Signal != "SIGKILL" || res.TimedOut {
			t.Errorf("want CPU limit signal, got %+v", res)
		}
	}},
	{name: "sleep beyond wall", lang: "python", limits: Limits{Wall: 1 * time.Second}, code: `
import time
print("{{TOKEN}}")
time.sleep(1000)
print("ESCAPED woke up")
`, check: all(timedOut, noEscape)},
	{name: "huge stdout", lang: "python", limits: Limits{OutputBytes: 64 << 10, Wall: 10 * time.Second}, code: `
import sys
while True:
    sys.stdout.write("A" * 65536)
`, check: func(t *testing.T, res Result, _ hostEnv) {
		if !res.OutputTruncated || len(res.Stdout) != 64<<10 || res.TimedOut {
			t.Errorf("truncated=%v len=%d timedOut=%v", res.OutputTruncated, len(res.Stdout), res.TimedOut)
		}
	}},
	{name: "huge stderr", lang: "sh", limits: Limits{OutputBytes: 64 << 10, Wall: 10 * time.Second}, code: `
yes ERRORERRORERROR >&2
`, check: func(t *testing.T, res Result, _ hostEnv) {
		if !res.OutputTruncated || len(res.Stderr) != 64<<10 || res.TimedOut {
			t.Errorf("truncated=%v len=%d timedOut=%v", res.OutputTruncated, len(res.Stderr), res.TimedOut)
		}
	}},
	{name: "double fork daemon", lang: "python", code: `
import os, sys
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sh", ["/bin/sh", "-c", "sleep 1000; echo {{TOKEN}}"])
    os._exit(0)
os.wait()
print("DONE")
`, check: all(blocked, noProcessWithToken)},
	{name: "background shell daemons", lang: "sh", code: `
nohup sh -c 'sleep 1000; echo {{TOKEN}}' >/dev/null 2>&1 &
(setsid sh -c 'trap "" HUP TERM; while true; do sleep 1; done # {{TOKEN}}' &) 
echo DONE
`, check: all(blocked, noProcessWithToken)},
	{name: "device and kernel memory", lang: "python", code: `
for p in ["/dev/mem", "/dev/kmem", "/dev/port", "/proc/kcore", "/dev/sda", "/dev/vda", "/dev/nvme0n1", "/dev/kmsg"]:
    try:
        open(p, "rb").read(16)
        print("ESCAPED", p)
    except OSError as e:
        print("blocked", p, e)
import os
print("devices", sorted(os.listdir("/dev")))
print("DONE")
`, check: blocked},
	{name: "mount attempts", lang: "sh", code: `
mount -t tmpfs none /usr 2>/dev/null && echo "ESCAPED mount"
mount --bind /tmp /etc 2>/dev/null && echo "ESCAPED bind"
umount /tmp 2>/dev/null && echo "ESCAPED umount"
# A nested user namespace may mount privately; it must not reach the host.
unshare -Urm sh -c 'mount -t tmpfs none /usr && touch /usr/{{TOKEN}}' 2>/dev/null && echo "private mount in nested namespace"
echo DONE
`, check: all(blocked, hostPathAbsent("/usr"))},
	{name: "change hostname", lang: "python", code: `
import socket
try:
    socket.sethostname("pwned-{{TOKEN}}")
    print("ESCAPED hostname")
except OSError as e:
    print("blocked", e)
try:
    open("/proc/sys/kernel/hostname", "w").write("pwned")
    print("ESCAPED proc hostname")
except OSError as e:
    print("blocked", e)
print("DONE")
`, check: all(blocked, func(t *testing.T, _ Result, env hostEnv) {
		if b, _ := os.ReadFile("/proc/sys/kernel/hostname"); strings.Contains(string(b), "pwned") {
			t.Errorf("host hostname changed to %q", b)
		}
	})},
	{name: "ptrace", lang: "python", code: `
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH = 16
for pid in [1, os.getppid(), {{VICTIM}}]:
    if libc.ptrace(PTRACE_ATTACH, pid, 0, 0) == 0:
        print("ESCAPED ptrace", pid)
    else:
        print("blocked", pid, os.strerror(ctypes.get_errno()))
print("DONE")
`, check: all(blocked, victimAlive)},
	{name: "kernel knobs and sysrq", lang: "sh", code: `
for f in /proc/sysrq-trigger /proc/sys/kernel/panic /proc/sys/vm/drop_caches /sys/kernel/mm/transparent_hugepage/enabled; do
  if echo 1 > $f 2>/dev/null; then echo "ESCAPED $f"; else echo "blocked $f"; fi
done
echo DONE
`, check: blocked},
	{name: "privilege escalation", lang: "python", code: `
import os
for f in (lambda: os.setuid(0), lambda: os.setgid(0), lambda: os.chroot("/tmp"), lambda: os.mknod("/tmp/mem", 0o600 | 0o020000, os.makedev(1, 1))):
    try:
        f(); print("ESCAPED", f)
    except OSError as e:
        print("blocked", e)
print("caps", [l for l in open("/proc/self/status") if l.startswith("CapEff")])
if "0000000000000000" not in [l for l in open("/proc/self/status") if l.startswith("CapEff")][0]:
    print("ESCAPED capabilities")
print("DONE")
`, check: blocked},
	{name: "inherited descriptors", lang: "python", code: `
import os
fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
print("fds", fds)
extra = [f for f in fds if f > 2 and os.path.exists("/proc/self/fd/%d" % f) and not os.readlink("/proc/self/fd/%d" % f).startswith("/proc")]
print("ESCAPED extra fds" if extra else "DONE", [(f, os.readlink("/proc/self/fd/%d" % f)) for f in extra])
`, check: blocked},
	{name: "environment leak", lang: "python", code: `
import os
allowed = {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED", "LC_CTYPE", "PWD"}
extra = sorted(set(os.environ) - allowed)
print("ESCAPED env" if extra else "DONE", extra)
`, check: blocked},
}

func TestHostileSuite(t *testing.T) {
	r := testRunner(t)
	if len(hostileCases) < 25 {
		t.Fatalf("only %d hostile programs", len(hostileCases))
	}

	victim := exec.Command("sleep", "600")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { victim.Process.Kill(); victim.Wait() })
	hostDir := t.TempDir()
	secretPath := filepath.Join(hostDir, "secret.txt")
	const secret = "host-secret-5f3a9c"
	if err := os.WriteFile(secretPath, []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	// The temp dir is made traversable on purpose: isolation must come from
	// the sandbox's mount namespace, not from file modes.
	if err := os.Chmod(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}

	t.Run("group", func(t *testing.T) {
		for i, c := range hostileCases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				tcp, err := net.Listen("tcp4", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer tcp.Close()
				udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer udp.Close()
				env := hostEnv{
					token:      fmt.Sprintf("hostile%d-%d-%d", i, os.Getpid(), time.Now().UnixNano()),
					secretPath: secretPath, secret: secret, hostDir: hostDir,
					tcpPort:   tcp.Addr().(*net.TCPAddr).Port,
					udpPort:   udp.LocalAddr().(*net.UDPAddr).Port,
					victimPID: victim.Process.Pid,
				}
				lim := c.limits
				if lim.Wall == 0 {
					lim.Wall = 8 * time.Second
				}
				if lim.CPUSeconds == 0 {
					lim.CPUSeconds = 4
				}
				if lim.MemoryBytes == 0 {
					lim.MemoryBytes = 512 << 20
				}
				if lim.Procs == 0 {
					lim.Procs = 32
				}
				res, err := r.Run(context.Background(), Job{Lang: c.lang, Code: c.render(env), Limits: &lim})
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				t.Logf("exit %d %s timedOut=%v truncated=%v in %v; stdout: %s",
					res.ExitCode, res.Signal, res.TimedOut, res.OutputTruncated, res.Duration.Round(time.Millisecond),
					clip(strings.ReplaceAll(res.Stdout, "\n", " | "), 300))
				withinWall(t, res, r.defaults.merged(&lim))
				c.check(t, res, env)
				if n := pendingConns(t, tcp); n > 0 {
					t.Errorf("host TCP listener got %d connection(s)", n)
				}
				if got := pendingDatagram(t, udp); got != "" {
					t.Errorf("host UDP socket got %q", got)
				}
				noProcessWithToken(t, res, env)
			})
		}
	})
	if err := unix.Kill(victim.Process.Pid, 0); err != nil {
		t.Errorf("victim process died: %v", err)
	}
}

// pendingConns accepts, without blocking, whatever sits in the listen queue.
func pendingConns(t *testing.T, l net.Listener) int {
	t.Helper()
	rc, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	rc.Control(func(fd uintptr) {
		for {
			nfd, _, err := unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			if err != nil {
				return
			}
			unix.Close(nfd)
			n++
		}
	})
	return n
}

func pendingDatagram(t *testing.T, c net.PacketConn) string {
	t.Helper()
	rc, err := c.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got string
	rc.Control(func(fd uintptr) {
		buf := make([]byte, 512)
		n, _, err := unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
		if err == nil {
			got = string(buf[:n])
		}
	})
	return got
}
