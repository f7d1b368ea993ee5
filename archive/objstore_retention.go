package archive

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// FSStore's retention: each object's retain-until and legal hold are kept
// in <root>/retention/<hex>.json ({"retainUntil":"…","hold":true}),
// written durably; Delete refuses an object without that file, before its
// retain-until or under hold. The clock is SetClock's (default time.Now).

type fsRetention struct {
	RetainUntil string `json:"retainUntil,omitempty"`
	Hold        bool   `json:"hold,omitempty"`
}

// SetClock sets the clock Delete compares retain-until with.
func (s *FSStore) SetClock(now func() time.Time) { s.now = now }

func (s *FSStore) clock() time.Time {
	if s.now == nil {
		return time.Now()
	}
	return s.now()
}

func (s *FSStore) retentionPath(digest [32]byte) string {
	return filepath.Join(s.root, "retention", hex.EncodeToString(digest[:])+".json")
}

func (s *FSStore) readRetention(digest [32]byte) (fsRetention, error) {
	var r fsRetention
	b, err := os.ReadFile(s.retentionPath(digest))
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("archive: retention: %w", err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("archive: retention of sha256:%x: %w", digest, err)
	}
	return r, nil
}

func (s *FSStore) writeRetention(digest [32]byte, r fsRetention) error {
	dir := filepath.Join(s.root, "retention")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("archive: retention: %w", err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(s.retentionPath(digest), b, 0o644); err != nil {
		return fmt.Errorf("archive: retention: %w", err)
	}
	return nil
}

// update changes the retention file of a stored object under the lock.
func (s *FSStore) update(ctx context.Context, digest [32]byte, fn func(*fsRetention) bool) error {
	if ok, err := s.Has(ctx, digest); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("archive: object sha256:%x: %w", digest, ErrNotFound)
	}
	s.umu.Lock()
	defer s.umu.Unlock()
	r, err := s.readRetention(digest)
	if err != nil {
		return err
	}
	if !fn(&r) {
		return nil
	}
	return s.writeRetention(digest, r)
}

// Retain implements Retainer.
func (s *FSStore) Retain(ctx context.Context, digest [32]byte, until time.Time) error {
	return s.update(ctx, digest, func(r *fsRetention) bool {
		if old, err := wire.ParseTime(r.RetainUntil); err == nil && !old.Before(until) {
			return false
		}
		r.RetainUntil = wire.FormatTime(until)
		return true
	})
}

// Retained implements Retainer.
func (s *FSStore) Retained(ctx context.Context, digest [32]byte) (time.Time, bool, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, false, err
	}
	r, err := s.readRetention(digest)
	if err != nil {
		return time.Time{}, false, err
	}
	until, _ := wire.ParseTime(r.RetainUntil)
	return until, r.Hold, nil
}

// SetLegalHold implements Retainer.
func (s *FSStore) SetLegalHold(ctx context.Context, digest [32]byte, on bool) error {
	return s.update(ctx, digest, func(r *fsRetention) bool {
		if r.Hold == on {
			return false
		}
		r.Hold = on
		return true
	})
}

// Delete implements Retainer.
func (s *FSStore) Delete(ctx context.Context, digest [32]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.umu.Lock()
	defer s.umu.Unlock()
	r, err := s.readRetention(digest)
	if err != nil {
		return err
	}
	until, _ := wire.ParseTime(r.RetainUntil)
	now := s.clock()
	if r.Hold || until.IsZero() || now.Before(until) {
		return &RetentionError{Digest: digest, Until: until, Held: r.Hold, Now: now}
	}
	var errs []error
	for _, p := range []string{s.Path(digest), s.legacyPath(digest)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		} else if err == nil {
			errs = append(errs, fsutil.SyncDir(filepath.Dir(p)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("archive: delete: %w", err)
	}
	return nil
}
