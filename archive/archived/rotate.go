package archived

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/archive/keystore"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// ErrKeyInToken: a rotation of a token key needs the new key made in the
// token first (RotateKey's newKey).
var ErrKeyInToken = errors.New("archive key rotate: the key is in a token")

// Rotation is what RotateKey did.
type Rotation struct {
	OldKeyID, NewKeyID string
	Retired            string // the old key file, kept for the operator to destroy; "" for a token key
}

// RotateKey switches the (stopped) archive to a new key: the token key
// the pkcs11: URI newKey names (in the token p logs in to), or with
// newKey "" a new key file: written beside key_file first
// (key_file.next), the announcement logged and kept, then key_file
// replaced (the old key kept as key_file.retired-<time>, 0600, for the
// operator to destroy). overlap is how long agents still accept the old
// key for new receipts. A rotation interrupted at any step is completed
// by running it again. A key in a token with newKey "" is ErrKeyInToken.
func RotateKey(ctx context.Context, cfg *config.Config, p config.PKCS11, newKey string, overlap time.Duration, log *slog.Logger) (*Rotation, error) {
	old, closeOld, err := OpenKeyNoCreate(cfg)
	if err != nil {
		return nil, err
	}
	defer closeOld()
	var next crypto.Signer
	nextFile := cfg.KeyFile + ".next"
	switch {
	case newKey != "":
		tk, err := OpenTokenKey(newKey, p)
		if err != nil {
			return nil, err
		}
		defer tk.Close()
		next = tk
	case cfg.KeyInToken():
		return nil, ErrKeyInToken
	default:
		k, err := keystore.LoadFile(nextFile)
		if errors.Is(err, fs.ErrNotExist) {
			if k, err = keystore.Generate(); err == nil {
				err = keystore.WriteFile(nextFile, k)
			}
		}
		if err != nil {
			return nil, err
		}
		next = k
	}
	nextID := archivesig.ArchiveKeyID(next.Public().(ed25519.PublicKey))
	a, closeAll, err := Open(ctx, cfg, old, nil, log) // no content key operation: nothing unwrapped
	var mismatch *archive.KeyMismatchError
	switch {
	case errors.As(err, &mismatch) && mismatch.Want == nextID:
		// Announced and kept already: only the key file is left to switch.
	case err != nil:
		return nil, fmt.Errorf("%w (a rotation needs the archive daemon stopped)", err)
	default:
		_, err = a.RotateKey(ctx, next, overlap)
		if cerr := closeAll(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
	}
	oldID := archivesig.ArchiveKeyID(old.Public().(ed25519.PublicKey))
	if newKey == "" {
		retired := fmt.Sprintf("%s.retired-%s", cfg.KeyFile, time.Now().UTC().Format("20060102T150405Z"))
		// The old key stays reachable (a hard link) and the new one
		// replaces it in one rename: key_file always holds a key.
		if err := os.Link(cfg.KeyFile, retired); err != nil {
			return nil, fmt.Errorf("archive key rotate: %w", err)
		}
		if err := os.Rename(nextFile, cfg.KeyFile); err != nil {
			return nil, fmt.Errorf("archive key rotate: %w", err)
		}
		if err := fsutil.SyncDir(filepath.Dir(cfg.KeyFile)); err != nil {
			return nil, err
		}
		if err := keystore.WritePublic(cfg.KeyFile+".pub", next.Public().(ed25519.PublicKey)); err != nil {
			return nil, err
		}
		_ = os.Remove(nextFile + ".pub")
		return &Rotation{OldKeyID: oldID, NewKeyID: nextID, Retired: retired}, nil
	}
	return &Rotation{OldKeyID: oldID, NewKeyID: nextID}, nil
}
