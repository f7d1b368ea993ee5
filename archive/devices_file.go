package archive

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/edgeseal/edgeseal/archive/state"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// FileRegistry is the embedded engine of the device registry
// (state.Registry): the file devices.json, rewritten atomically (temp
// file, fsync, rename, fsync dir) under an exclusive lock on
// devices.json.lock that operator commands and the daemon share. A
// Read is a stat when the file did not change (same file, time and
// size). The replicated engine is state.SQL.Registry.
type FileRegistry struct {
	path string

	mu    sync.Mutex
	stamp fs.FileInfo // the file last read or written
	gen   uint64      // counts the files seen: the tag
}

var _ state.Registry = (*FileRegistry)(nil)

// NewFileRegistry is the registry in the file at path (a missing file
// is a registry never written).
func NewFileRegistry(path string) *FileRegistry { return &FileRegistry{path: path} }

// Path is the registry file's path.
func (r *FileRegistry) Path() string { return r.path }

// Read returns the file's bytes when it changed since tag.
func (r *FileRegistry) Read(ctx context.Context, tag string) ([]byte, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.read(tag)
}

func (r *FileRegistry) read(tag string) ([]byte, string, error) {
	fi, err := os.Stat(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		r.stamp = nil
		return nil, state.NoRegistry, nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("archive: devices: %w", err)
	}
	cur := strconv.FormatUint(r.gen, 10)
	if r.stamp != nil && tag == cur && os.SameFile(fi, r.stamp) && fi.ModTime().Equal(r.stamp.ModTime()) && fi.Size() == r.stamp.Size() {
		return nil, tag, nil
	}
	data, err := fsutil.ReadRegular(r.path, state.MaxRegistry)
	if err != nil {
		return nil, "", fmt.Errorf("archive: devices: %w", err)
	}
	r.gen++
	r.stamp = fi
	return data, strconv.FormatUint(r.gen, 10), nil
}

// Update runs fn on the file's bytes under the file lock and writes
// what it returns durably.
func (r *FileRegistry) Update(ctx context.Context, fn func(doc []byte) ([]byte, error)) (string, error) {
	unlock, err := lockFile(ctx, r.path+".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	// r.mu is not held while fn runs: fn may wait for its caller's
	// locks, whose holders may be in Read.
	r.mu.Lock()
	doc, tag, err := r.read("")
	r.mu.Unlock()
	if err != nil {
		return "", err
	}
	next, err := fn(doc)
	if err != nil {
		return "", err
	}
	if next == nil {
		return tag, nil
	}
	if len(next) > state.MaxRegistry {
		return "", fmt.Errorf("archive: devices: registry of %d bytes over %d", len(next), state.MaxRegistry)
	}
	if err := fsutil.WriteFileAtomic(r.path, next, 0o644); err != nil {
		return "", err
	}
	fi, err := os.Stat(r.path)
	if err != nil {
		return "", fmt.Errorf("archive: devices: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen++
	r.stamp = fi
	return strconv.FormatUint(r.gen, 10), nil
}

// setAside moves an unreadable file aside (its name returned); the
// registry reads as never written. It does not take the file lock: its
// caller holds locks that an Update's fn waits for.
func (r *FileRegistry) setAside() (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	aside := fmt.Sprintf("%s.unreadable-%d", r.path, time.Now().UnixNano())
	if err := os.Rename(r.path, aside); err != nil {
		return "", fmt.Errorf("archive: devices: %w", err)
	}
	r.stamp = nil
	return aside, nil
}

// SeedRegistry fills reg, when it was never written, with the registry
// in the file at path (none: nothing to do): an archive whose registry
// moves into a shared database keeps its devices. A file that does not
// parse is refused, not copied.
func SeedRegistry(ctx context.Context, reg state.Registry, path string) error {
	_, err := reg.Update(ctx, func(doc []byte) ([]byte, error) {
		if doc != nil {
			return nil, nil
		}
		b, err := fsutil.ReadRegular(path, state.MaxRegistry)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("archive: devices: %w", err)
		}
		if _, err := parseRegistry(b); err != nil {
			return nil, fmt.Errorf("archive: devices %s: %w", path, err)
		}
		return b, nil
	})
	return err
}
