// Package fsutil writes files durably (temp file, fsync, rename or link,
// fsync dir) and reads bounded config files.
package fsutil

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrNotDurable wraps the error of a write that put the file at path but
// could not make its name durable (the directory sync, or the removal of
// the temp name, failed): the file is there now and may be gone after a
// crash. Syncing again is no cure (a failed fsync may have dropped what it
// could not write, and a second one then reports success), so the callers
// treat the write as failed: nothing is acknowledged on it, and a
// write-once store removes the file so that a retry writes it anew.
var ErrNotDurable = errors.New("written but not durable")

// WriteFileAtomic replaces path with data so that after a crash the file
// holds either the old or the new bytes, never a mix, and a successful
// return means the new bytes and the name are on disk.
//
// A directory at path is refused up front (rename would replace nothing
// and report "file exists"): the error says path is a directory.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	if fi, err := os.Lstat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("fsutil: %w", &fs.PathError{Op: "write", Path: path, Err: syscall.EISDIR})
	}
	tmp, err := writeTemp(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // no-op after the rename
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("fsutil: %w", err)
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("%w: %w", ErrNotDurable, err)
	}
	return nil
}

// WriteNewFile creates path with the bytes write gives it, durably and
// never over an existing file (write-once stores): a temp file beside
// path, fsync, a hard link to path, fsync of the directory. An existing
// path is an error that errors.Is fs.ErrExist, and path is left as it
// was. After a crash path is absent or complete.
func WriteNewFile(path string, perm os.FileMode, write func(io.Writer) error) error {
	tmp, err := writeTemp(path, perm, write)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // on failure
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("fsutil: %w", err)
	}
	if err := os.Remove(tmp); err != nil {
		return fmt.Errorf("fsutil: %w: %w", ErrNotDurable, err)
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("%w: %w", ErrNotDurable, err)
	}
	return nil
}

// writeTemp writes a synced temp file beside path with mode perm and
// returns its name; on error nothing is left behind.
func writeTemp(path string, perm os.FileMode, write func(io.Writer) error) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("fsutil: %w", err)
	}
	err = write(f)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("fsutil: write %s: %w", path, err)
	}
	return f.Name(), nil
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
		return nil, "", err // a *fs.PathError: "read PATH: ..."
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, "", err
	}
	return data, filepath.Dir(abs), nil
}
