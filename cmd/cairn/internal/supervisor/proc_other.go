//go:build !linux

package supervisor

import "syscall"

// sysProcAttr puts the child in its own process group so that a terminal's
// Ctrl-C reaches only the supervisor.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
