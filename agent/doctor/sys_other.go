//go:build !linux

package doctor

import "errors"

// diskSpace is not implemented here.
func diskSpace(string) (free, total uint64, err error) {
	return 0, 0, errors.New("not implemented on this system")
}

// clockSynced cannot tell here.
func clockSynced() (synced, known bool) { return false, false }
