//go:build !unix

package store

// probeLock is a no-op where flock is not available; Badger's own lock
// still refuses a second open.
func probeLock(string) error { return nil }
