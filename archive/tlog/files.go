package tlog

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// Bounds of what the log's directory is allowed to hold, per resource.
const (
	maxCheckpointBytes = 16 << 10
	maxTileBytes       = 256 * 32
	maxBundleBytes     = 256 * (2 + MaxEntrySize)
)

// NotRegularError refuses a path that is not a regular file (a symbolic
// link, a folder, a device).
type NotRegularError struct{ Path string }

func (e *NotRegularError) Error() string {
	return fmt.Sprintf("tlog: %s: not a regular file", e.Path)
}

// TooLargeError refuses a file over its bound.
type TooLargeError struct {
	Path  string
	Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("tlog: %s: over %d bytes", e.Path, e.Limit)
}

// dirReader reads files of a log directory by slash-separated relative
// path, never through a symbolic link (no component may be one), never
// outside the directory, only regular files, bounded in size.
type dirReader struct{ dir string }

// read returns the file at rel (fs.ErrNotExist when it is missing).
func (d dirReader) read(rel string, limit int64) ([]byte, error) {
	if !fs.ValidPath(rel) || rel == "." || strings.Contains(rel, "\\") {
		return nil, fmt.Errorf("tlog: bad path %q: %w", rel, fs.ErrNotExist)
	}
	f, err := openNoFollow(d.dir, rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("tlog: %s: %w", rel, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, &NotRegularError{Path: rel}
	}
	if fi.Size() > limit {
		return nil, &TooLargeError{Path: rel, Limit: limit}
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("tlog: %s: %w", rel, err)
	}
	if int64(len(b)) > limit {
		return nil, &TooLargeError{Path: rel, Limit: limit}
	}
	return b, nil
}

// openPortable opens rel beneath dir with os.Root (no escape), checking
// that no component is a symbolic link and opening the last one with
// O_NOFOLLOW.
func openPortable(dir, rel string) (*os.File, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("tlog: %w", err)
	}
	defer root.Close()
	parts := strings.Split(rel, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		fi, err := root.Lstat(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("tlog: %s: %w", rel, fs.ErrNotExist)
			}
			return nil, fmt.Errorf("tlog: %w", err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 || (i < len(parts)-1 && !fi.IsDir()) {
			return nil, &NotRegularError{Path: rel}
		}
	}
	f, err := root.OpenFile(rel, os.O_RDONLY|noFollow, 0)
	if err != nil {
		return nil, fmt.Errorf("tlog: %w", err)
	}
	return f, nil
}
