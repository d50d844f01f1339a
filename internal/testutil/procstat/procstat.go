// Package procstat reads the CPU time a process has used, so benchmarks can say which process
// of a multi-process setup (registry, emulator, watcher) the machine's CPU went to.
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the kernel's USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every Linux
// architecture Go supports.
const clockTick = 10 * time.Millisecond

// CPU returns the user plus system CPU time process pid has used so far (Linux only).
func CPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: count fields after it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("procstat: unexpected /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	// utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
	if len(fields) < 13 {
		return 0, fmt.Errorf("procstat: short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("procstat: bad times in /proc/%d/stat", pid)
	}
	return time.Duration(utime+stime) * clockTick, nil
}
