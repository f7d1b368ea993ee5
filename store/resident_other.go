//go:build !linux

package store

// trimResident is a no-op off Linux.
func trimResident(dir string) int64 { return 0 }

// residentFileBytes is unknown off Linux.
func residentFileBytes(dir string) int64 { return -1 }
