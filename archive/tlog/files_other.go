//go:build unix && !linux

package tlog

import (
	"os"
	"syscall"
)

const noFollow = syscall.O_NOFOLLOW

// openNoFollow opens rel beneath dir without following a symbolic link.
func openNoFollow(dir, rel string) (*os.File, error) { return openPortable(dir, rel) }
