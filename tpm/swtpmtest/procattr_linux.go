//go:build linux

package swtpmtest

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes swtpm die if the test binary dies without cleanup.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
