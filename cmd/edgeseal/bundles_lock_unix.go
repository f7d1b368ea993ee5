//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// checkJournalFree fails with *agentRunningError when another process (the
// agent daemon) holds the journal's directory lock, before anything opens
// the TPM. Badger takes the same flock on the directory when it opens.
func checkJournalFree(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("bundles: journal: %w", err)
	}
	defer d.Close()
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return &agentRunningError{Journal: dir}
		}
		return fmt.Errorf("bundles: journal %s: lock: %w", dir, err)
	}
	return syscall.Flock(int(d.Fd()), syscall.LOCK_UN)
}
