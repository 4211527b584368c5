//go:build !linux

package dist

import "syscall"

// rankSysProcAttr: elsewhere the ranks stay in the launcher's process
// group and are not killed with it.
func rankSysProcAttr() *syscall.SysProcAttr { return nil }
