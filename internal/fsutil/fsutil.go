// Package fsutil writes files durably (temp file, fsync, rename, fsync dir)
// and reads bounded config files.
package fsutil

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteFileAtomic replaces path with data so that after a crash the file
// holds either the old or the new bytes, never a mix, and a successful
// return means the new bytes and the name are on disk.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("fsutil: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("fsutil: write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("fsutil: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsutil: sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("fsutil: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("fsutil: %w", err)
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory so that entries created or renamed in it last.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsutil: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsutil: sync dir %s: %w", dir, err)
	}
	return nil
}

// ReadConfig reads the file at path, up to max+1 bytes (a longer file
// reads as max+1 bytes, for the caller to refuse), and returns it with the
// absolute directory it is in (for resolving relative paths in it).
func ReadConfig(path string, max int64) (data []byte, dir string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	if data, err = io.ReadAll(io.LimitReader(f, max+1)); err != nil {
		return nil, "", fmt.Errorf("read %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, "", err
	}
	return data, filepath.Dir(abs), nil
}
