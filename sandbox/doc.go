// Package sandbox runs untrusted Python and shell programs inside bubblewrap.
//
// Every job gets its own mount, PID, network, IPC, UTS and cgroup namespaces:
// a read-only view of /usr (plus the interpreter's prefix and a few /etc
// files), a fresh size-limited tmpfs at /tmp that is both the working
// directory and the only writable place, a minimal /dev, no network except a
// private loopback, a new session, and death with the parent.
//
// Resource limits are rlimits (CPU seconds, address space, processes, file
// size) plus a wall-clock timeout and an output cap. RLIMIT_NPROC counts
// processes per real uid and is not enforced for root, so a user namespace
// that maps the job to uid 0 (what bwrap does when started as root) would not
// stop a fork bomb. Instead bwrap runs as root without a user namespace, keeps
// only CAP_SETUID/CAP_SETGID, and the job drops to an unprivileged uid
// (prlimit + setpriv from util-linux) that is unique to the runner's worker
// slot, so the process limit binds and concurrent jobs do not share it. The
// job then holds no capabilities at all and NO_NEW_PRIVS is set.
//
// When a job ends (normally, by timeout, by cancellation or because its output
// exceeded the cap) the sandbox's PID 1 is killed through a pidfd and Run
// waits until it is gone; the kernel kills every other process of the PID
// namespace with it, so double-forked daemons cannot outlive the job.
//
// Descriptors the host process holds without close-on-exec (inherited from
// its parent, or opened by C libraries such as GPU drivers) would pass
// through bwrap; the job's interpreter closes every descriptor above 2
// before running any job code.
//
// Known limits: the job may still create nested user namespaces (harmless to
// the host's files and processes but a larger kernel attack surface; there is
// no seccomp filter yet), and exit statuses 129..192 are reported as the
// matching signal because bwrap encodes a signal death as 128+signo.
package sandbox
