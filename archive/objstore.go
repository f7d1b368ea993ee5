package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// ObjectStore is write-once, content-addressed storage for bundles and
// receipts. The contract, checked by objstoretest.Run for every backend:
//
//   - Put stores data under digest, durably before it returns. data must
//     hash (SHA-256) to digest, else *DigestError and nothing is stored.
//     Putting the same bytes again is a no-op returning nil. An object
//     already stored under digest with other bytes is never replaced:
//     Put returns *ConflictError (an alarm: the stored copy was altered).
//   - Get returns the bytes, re-hashed: bytes that no longer match their
//     digest (a bit flip at rest) give *CorruptError; an absent object
//     ErrNotFound.
//   - Has reports presence without reading the bytes (false, nil when
//     absent).
//   - Objects are never deleted through this interface (a purge deletes
//     through Retainer, past the object's retain-until and without legal
//     hold, and logs a signed statement).
//   - All methods are safe for concurrent use; concurrent Puts of the same
//     object all succeed and store it once.
//
// The filesystem backend is FSStore; the S3 backend, with Object Lock in
// COMPLIANCE mode, is archive/s3store.Store.
type ObjectStore interface {
	Put(ctx context.Context, digest [32]byte, data []byte) error
	Get(ctx context.Context, digest [32]byte) ([]byte, error)
	Has(ctx context.Context, digest [32]byte) (bool, error)
}

// HashedPutter is an ObjectStore that can store bytes whose SHA-256 was
// computed by wire.HashBytes over exactly those bytes: PutHashed is Put
// of h.Bytes() under h.Sum() without hashing them again (same contract
// otherwise). The archive uses it when it has such bytes.
type HashedPutter interface {
	PutHashed(ctx context.Context, h wire.Hashed) error
}

// put stores a bundle in the archive's object store; h, when Valid, is
// data with digest, computed by wire.HashBytes, which spares a
// HashedPutter the second pass of SHA-256.
func (a *Archive) put(digest [32]byte, data []byte, h wire.Hashed) error {
	if hp, ok := a.objects.(HashedPutter); ok && h.Valid() {
		return hp.PutHashed(a.bg, h)
	}
	return a.objects.Put(a.bg, digest, data)
}

// FSStore is the filesystem ObjectStore: objects live at
// <root>/sha256/ab/<hex>, written to a temp file, fsynced, made read-only
// (0444) and hard-linked into place (link, not rename, so an existing
// object is never replaced), then the directory is fsynced. The 256
// fan-out directories are made when the store is opened, so a Put never
// creates one.
//
// Objects stored by earlier builds at <root>/sha256/ab/cd/<hex> (two
// fan-out levels: nearly every Put made a directory and synced its parent)
// are still found there, and count for write-once.
type FSStore struct {
	root string
	now  func() time.Time // retention (objstore_retention.go)
	umu  sync.Mutex       // a retention update or a delete
	// pmu serialises the Puts of one digest (striped by its first byte):
	// a failed Put removes what it linked (put) while another Put of the
	// same bytes must not take that file for stored.
	pmu [16]sync.Mutex
}

// NewFSStore opens (creating) a filesystem object store under root.
func NewFSStore(root string) (*FSStore, error) {
	if root == "" {
		return nil, errors.New("archive: object store root is empty")
	}
	top := filepath.Join(root, "sha256")
	if err := os.MkdirAll(top, 0o755); err != nil {
		return nil, fmt.Errorf("archive: object store: %w", err)
	}
	made := false
	for i := range 256 {
		err := os.Mkdir(filepath.Join(top, fmt.Sprintf("%02x", i)), 0o755)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("archive: object store: %w", err)
		}
		made = made || err == nil
	}
	if made {
		if err := fsutil.SyncDir(top); err != nil {
			return nil, fmt.Errorf("archive: object store: %w", err)
		}
	}
	return &FSStore{root: root}, nil
}

// Path returns where the object of digest is stored (present or not).
func (s *FSStore) Path(digest [32]byte) string {
	h := hex.EncodeToString(digest[:])
	return filepath.Join(s.root, "sha256", h[0:2], h)
}

// Key names the object of digest relative to the store's root (the
// export index's "object").
func (s *FSStore) Key(digest [32]byte) string {
	h := hex.EncodeToString(digest[:])
	return "sha256/" + h[0:2] + "/" + h
}

// legacyPath is where builds before the one-level fan-out stored it.
func (s *FSStore) legacyPath(digest [32]byte) string {
	h := hex.EncodeToString(digest[:])
	return filepath.Join(s.root, "sha256", h[0:2], h[2:4], h)
}

// read reads the object of digest from where it is (Path, else
// legacyPath); fs.ErrNotExist when absent.
func (s *FSStore) read(digest [32]byte) (data []byte, path string, err error) {
	path = s.Path(digest)
	data, err = os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		path = s.legacyPath(digest)
		data, err = os.ReadFile(path)
	}
	return data, path, err
}

// Put implements ObjectStore.
func (s *FSStore) Put(ctx context.Context, digest [32]byte, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if got := sha256.Sum256(data); got != digest {
		return &DigestError{Want: digest, Got: got}
	}
	return s.put(digest, data)
}

// PutHashed implements HashedPutter.
func (s *FSStore) PutHashed(ctx context.Context, h wire.Hashed) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !h.Valid() {
		return errors.New("archive: put: bytes not hashed by wire.HashBytes")
	}
	return s.put(h.Sum(), h.Bytes())
}

// put stores data, known to hash to digest. The object is durable when
// put returns nil: written to a temp file, fsynced, linked, directory
// fsynced. When any of that fails the error is returned (the bundle is not
// receipted; its device sends it again) and a file already linked is
// removed (fsutil.ErrNotDurable), so the next Put writes and syncs a new
// file instead of finding this one and syncing nothing.
func (s *FSStore) put(digest [32]byte, data []byte) error {
	mu := &s.pmu[digest[0]&15]
	mu.Lock()
	defer mu.Unlock()
	path := s.Path(digest)
	if same, err := s.sameAs(digest, data); err == nil {
		return same
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	err := fsutil.WriteNewFile(path, 0o444, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if errors.Is(err, fs.ErrExist) { // a concurrent Put won
		same, serr := s.sameAs(digest, data)
		if serr != nil {
			return serr
		}
		return same
	}
	if errors.Is(err, fsutil.ErrNotDurable) {
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	if err != nil {
		return fmt.Errorf("archive: put: %w", err)
	}
	return nil
}

// sameAs compares an existing object with data: (nil, nil) when equal,
// (*ConflictError, nil) when different, (nil, fs.ErrNotExist) when absent.
func (s *FSStore) sameAs(digest [32]byte, data []byte) (error, error) {
	old, path, err := s.read(digest)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("archive: put: %w", err)
	}
	if bytes.Equal(old, data) {
		return nil, nil
	}
	return &ConflictError{Digest: digest, Where: path}, nil
}

// Get implements ObjectStore.
func (s *FSStore) Get(ctx context.Context, digest [32]byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	data, path, err := s.read(digest)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("archive: object sha256:%x: %w", digest, ErrNotFound)
		}
		return nil, fmt.Errorf("archive: get: %w", err)
	}
	if got := sha256.Sum256(data); got != digest {
		return nil, &CorruptError{Digest: digest, Got: got, Where: path}
	}
	return data, nil
}

// Has implements ObjectStore.
func (s *FSStore) Has(ctx context.Context, digest [32]byte) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	_, err := os.Stat(s.Path(digest))
	if errors.Is(err, fs.ErrNotExist) {
		_, err = os.Stat(s.legacyPath(digest))
	}
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("archive: has: %w", err)
}
