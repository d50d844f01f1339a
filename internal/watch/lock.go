package watch

import (
	"fmt"
	"os"
	"syscall"
)

// lockFile holds an exclusive lock for the life of the process (it dies with the process, so a
// kill -9 leaves nothing to clean up). One watcher per embedded database: it lets the watcher
// treat jobs left running as orphans of a previous run.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another crowsnest watch uses this data directory (%s is locked); use --db postgres://... to run several", path)
	}
	return f, nil
}
