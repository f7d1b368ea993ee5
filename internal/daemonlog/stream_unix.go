//go:build unix

package daemonlog

import (
	"fmt"
	"os"
	"syscall"
)

// journaldStream reports whether f is the stream $JOURNAL_STREAM names
// ("DEVICE:INODE", set by systemd when stdout or stderr goes to the
// journal).
func journaldStream(f *os.File, env string) bool {
	if env == "" {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	return env == fmt.Sprintf("%d:%d", uint64(st.Dev), uint64(st.Ino))
}
