//go:build !linux

package registryproc

import "os/exec"

func setParentDeathSignal(*exec.Cmd) {}
