package registryproc

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal kills the registry if the test binary dies without running cleanups (a
// panic, a timeout), so no orphan keeps the port and temp dir.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
