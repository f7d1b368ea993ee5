//go:build unix

package agent

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// CheckJournalFree fails with *RunningError when another process (the
// agent daemon) holds the journal's directory lock, before anything opens
// the TPM. Badger takes the same flock on the directory when it opens.
func CheckJournalFree(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("bundles: journal: %w", err)
	}
	defer d.Close()
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return &RunningError{Journal: dir}
		}
		return fmt.Errorf("bundles: journal %s: lock: %w", dir, err)
	}
	return syscall.Flock(int(d.Fd()), syscall.LOCK_UN)
}
