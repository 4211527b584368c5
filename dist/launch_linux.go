package dist

import "syscall"

// rankSysProcAttr puts a rank in its own process group, so that a
// terminal's Ctrl-C reaches it once, through the launcher, and has the
// kernel kill it if the launcher dies (even by SIGKILL), so that no rank
// outlives its job.
func rankSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
