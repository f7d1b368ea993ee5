package archive

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/merkle"
)

// Reading a store's bundles without the archive: `edgeseal policy
// history --archive-config` lists the object store (ObjectLister) and
// reads each bundle, while the daemon runs: it opens neither journal
// and writes nothing.

// ObjectLister is an ObjectStore that lists its objects: List calls fn
// with each object's digest, in no particular order, until fn returns an
// error (returned).
type ObjectLister interface {
	List(ctx context.Context, fn func(digest [32]byte) error) error
}

// OpenFSStoreReadOnly opens an existing filesystem object store under
// root for reading (Get, Has, List), creating nothing.
func OpenFSStoreReadOnly(root string) (*FSStore, error) {
	fi, err := os.Lstat(filepath.Join(root, "sha256"))
	if err != nil {
		return nil, fmt.Errorf("archive: object store: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("archive: object store: %s/sha256 is not a directory", root)
	}
	return &FSStore{root: root}, nil
}

// List implements ObjectLister: the regular files named by a digest under
// sha256/ab/ (and sha256/ab/cd/ of earlier builds); temp files and
// symlinks are skipped.
func (s *FSStore) List(ctx context.Context, fn func(digest [32]byte) error) error {
	top := filepath.Join(s.root, "sha256")
	var walk func(dir string, depth int) error
	walk = func(dir string, depth int) error {
		ents, err := os.ReadDir(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && depth > 0 {
				return nil
			}
			return fmt.Errorf("archive: object store: %w", err)
		}
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return err
			}
			name := e.Name()
			switch {
			case e.IsDir() && len(name) == 2 && depth < 2 && isHex(name):
				if err := walk(filepath.Join(dir, name), depth+1); err != nil {
					return err
				}
			case e.Type().IsRegular() && depth > 0:
				if d, ok := digestName(name); ok {
					if err := fn(d); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}
	return walk(top, 0)
}

// digestName reads an object name: 64 lowercase hex digits.
func digestName(name string) ([32]byte, bool) {
	var d [32]byte
	if len(name) != 64 || !isHex(name) {
		return d, false
	}
	_, err := hex.Decode(d[:], []byte(name))
	return d, err == nil
}

func isHex(s string) bool {
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// StoredBundlesOf calls fn with each bundle (or purged skeleton) of
// device ("<site>/<name>", by its bag-info Origin) in the object store,
// read with lim; a stored object that is not a bundle is an error.
func StoredBundlesOf(ctx context.Context, objs ObjectStore, device string, lim bundle.Limits, fn func(digest [32]byte, b *bundle.Bundle) error) error {
	l, ok := objs.(ObjectLister)
	if !ok {
		return errors.New("archive: the object store does not list its objects")
	}
	want := merkle.Origin(device)
	return l.List(ctx, func(d [32]byte) error {
		raw, err := objs.Get(ctx, d)
		if errors.Is(err, ErrNotFound) {
			return nil // deleted (purged) meanwhile
		}
		if err != nil {
			return err
		}
		b, err := bundle.ReadBytes(raw, lim)
		if err != nil {
			return fmt.Errorf("archive: stored object sha256:%x: %w", d, err)
		}
		if o, _ := bagOrigin(b.Files[bundle.PathBagInfo]); o != want {
			return nil
		}
		return fn(d, b)
	})
}
