//go:build linux

package doctor

import (
	"fmt"
	"syscall"
)

// diskSpace is the space available to the process and the size of the
// filesystem holding dir.
func diskSpace(dir string) (free, total uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}

// timeError is adjtimex's TIME_ERROR state: the clock is not synchronised.
const timeError = 5

// clockSynced asks the kernel (adjtimex) whether NTP keeps the clock
// synchronised; known is false when it cannot tell.
func clockSynced() (synced, known bool) {
	var tx syscall.Timex
	state, err := syscall.Adjtimex(&tx)
	if err != nil {
		return false, false
	}
	return state != timeError, true
}
