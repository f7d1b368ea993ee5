//go:build !linux

package store

// freeBytes cannot read the free space on this platform: the
// MinFreeBytes check is off.
func freeBytes(string) (int64, bool) { return 0, false }
