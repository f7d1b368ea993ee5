//go:build unix

package store

import (
	"errors"
	"os"
	"syscall"
)

// probeLock fails with ErrLocked when another process holds the journal
// open: Badger takes an exclusive flock on the directory, and so does
// this probe, releasing it at once.
func probeLock(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return ErrLocked
		}
		return err
	}
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
