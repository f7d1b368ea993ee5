package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// The outbox: bundles waiting for delivery, one file each under
// Dir/outbox, named by id, sealed like a journal value (the additional
// data is "outbox/" + id) when the journal has a key. Bundles are large
// and short-lived: as Badger values they were copied three times per
// write and stayed in the never-collected value log after delivery; as
// files they are written once and their space comes back when the
// receipt deletes them.
//
// A file appears complete or not at all: written to a temp file,
// fsynced, linked to its name (which fails if the name exists), the
// directory fsynced. Temp files a crash left are removed at Open.

const outboxDirName = "outbox"

func (j *Journal) outboxDir() string { return filepath.Join(j.opts.Dir, outboxDirName) }

func outboxAD(id string) []byte { return []byte("outbox/" + id) }

// checkOutboxID accepts ids that are plain file names: letters, digits,
// '-', '_' and '.', not starting with '.', at most 128 bytes.
func checkOutboxID(id string) error {
	if id == "" || len(id) > 128 || id[0] == '.' {
		return fmt.Errorf("outbox id %q: empty, too long or starting with '.'", id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("outbox id %q: character %q not allowed", id, r)
		}
	}
	return nil
}

// openOutbox creates the outbox directory and removes temp files.
func (j *Journal) openOutbox() error {
	dir := j.outboxDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// PutOutbox stores an outbox entry (a bundle waiting for delivery),
// synced. The same bytes again is a no-op; other bytes under the same id
// a *ConflictError. Ids are plain file names (letters, digits, '-', '_',
// '.'; not starting with '.').
func (j *Journal) PutOutbox(ctx context.Context, id string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkOutboxID(id); err != nil {
		return fmt.Errorf("store: put outbox: %w", err)
	}
	if err := j.enter(); err != nil {
		return fmt.Errorf("store: put outbox: %w", err)
	}
	defer j.leave()
	if err := j.putOutbox(id, data); err != nil {
		var ce *ConflictError
		if !errors.As(err, &ce) {
			// A failed write of an entry is a failed journal write: the
			// journal fails (Failed), and its owner exits. The entry may
			// be in place already (fsutil.ErrNotDurable: its directory
			// sync failed) and seen by a reader of the outbox; it is left
			// for the next Open to find (the agent adopts an outbox bundle
			// past its last checkpoint) rather than sealed over from the
			// older checkpoint, which a reader that sent it would see as a
			// rewritten history.
			f := &failure{err: fmt.Errorf("store: put outbox %q: %w: %w", id, err, ErrFailed)}
			if j.failed.Load() == nil {
				j.log.Error("outbox write failed; refusing writes until reopened", "id", id, "err", err)
			}
			j.fail(f)
			return f.err
		}
		return fmt.Errorf("store: put outbox %q: %w", id, err)
	}
	return nil
}

// maxOutboxScratch bounds the buffer putOutbox keeps between puts.
const maxOutboxScratch = 16 << 20

func (j *Journal) putOutbox(id string, data []byte) error {
	dir := j.outboxDir()
	path := filepath.Join(dir, id)
	if old, ok, err := j.readOutbox(id, nil); err != nil {
		return err
	} else if ok {
		if bytes.Equal(old, data) {
			return nil
		}
		return &ConflictError{Kind: "outbox", Key: id}
	}
	err := fsutil.WriteNewFile(path, 0o600, func(w io.Writer) error {
		// The sealed bytes go through a buffer kept between puts: a bundle
		// is megabytes, and fresh pages for each cost more than the
		// encryption.
		j.omu.Lock()
		defer j.omu.Unlock()
		stored := j.c.sealAppend(j.obuf[:0], outboxAD(id), data)
		_, err := w.Write(stored)
		if j.c.sealed() && cap(stored) <= maxOutboxScratch {
			j.obuf = stored
		}
		return err
	})
	if errors.Is(err, fs.ErrExist) { // a concurrent put of the same id
		return j.putOutbox(id, data)
	}
	return err
}

// readOutbox reads and opens entry id; ok false when there is none.
func (j *Journal) readOutbox(id string, buf *[]byte) ([]byte, bool, error) {
	f, err := os.Open(filepath.Join(j.outboxDir(), id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	var stored []byte
	if buf != nil {
		if n := int(fi.Size()); cap(*buf) < n {
			// With room for the next bundles, a little larger than
			// this one: bundles differ in size, and each fresh buffer
			// costs its clearing and page faults.
			*buf = make([]byte, 0, n+n/4)
		}
		stored = (*buf)[:fi.Size()]
	} else {
		stored = make([]byte, fi.Size())
	}
	// An entry is written once (temp, fsync, link) and never changes
	// size; a short or long file is corrupt, reported by openInPlace.
	n, err := io.ReadFull(f, stored)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, false, err
	}
	data, err := j.c.openInPlace(outboxAD(id), stored[:n])
	if err != nil {
		return nil, false, err
	}
	return data, true, nil
}

// outboxNames lists the entries' ids in id order.
func (j *Journal) outboxNames() ([]string, error) {
	ents, err := os.ReadDir(j.outboxDir())
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(ents))
	for _, e := range ents {
		if n := e.Name(); e.Type().IsRegular() && checkOutboxID(n) == nil {
			ids = append(ids, n)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// OutboxIDs calls fn with each outbox id, in id order, without reading
// the bundles. It stops at the first error from fn or ctx.
func (j *Journal) OutboxIDs(ctx context.Context, fn func(id string) error) error {
	if err := j.enter(); err != nil {
		return fmt.Errorf("store: outbox: %w", err)
	}
	defer j.leave()
	ids, err := j.outboxNames()
	if err != nil {
		return fmt.Errorf("store: outbox: %w", err)
	}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(id); err != nil {
			return err
		}
	}
	return nil
}

// OutboxGet returns a copy of the outbox entry id; ok is false when there
// is none (delivered meanwhile).
func (j *Journal) OutboxGet(ctx context.Context, id string) (data []byte, ok bool, err error) {
	return j.OutboxGetInto(ctx, id, nil)
}

// OutboxGetInto is OutboxGet reading into *buf, grown as needed and kept
// by the caller for the next read: data then shares *buf's memory and is
// valid until *buf is used again. A nil buf reads into a fresh slice.
func (j *Journal) OutboxGetInto(ctx context.Context, id string, buf *[]byte) (data []byte, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if err := checkOutboxID(id); err != nil {
		return nil, false, fmt.Errorf("store: outbox: %w", err)
	}
	if err := j.enter(); err != nil {
		return nil, false, fmt.Errorf("store: outbox: %w", err)
	}
	defer j.leave()
	data, ok, err = j.readOutbox(id, buf)
	if err != nil {
		return nil, false, fmt.Errorf("store: outbox %q: %w", id, err)
	}
	return data, ok, nil
}

// Outbox calls fn with each outbox entry (a copy), in id order. It stops
// at the first error from fn or ctx. Each bundle is read when fn is about
// to get it (a scan that stops early reads no more than it returns); an
// entry deleted after the listing is skipped.
func (j *Journal) Outbox(ctx context.Context, fn func(id string, data []byte) error) error {
	return j.OutboxIDs(ctx, func(id string) error {
		data, ok, err := j.readOutbox(id, nil)
		if err != nil {
			return fmt.Errorf("store: outbox %q: %w", id, err)
		}
		if !ok {
			return nil
		}
		return fn(id, data)
	})
}

// DeleteOutbox removes a delivered outbox entry, synced. Deleting an id
// that is absent is a no-op, so a duplicated receipt is harmless.
func (j *Journal) DeleteOutbox(ctx context.Context, id string) error {
	return j.DeleteOutboxes(ctx, []string{id})
}

// DeleteOutboxes deletes several outbox entries and makes that durable
// with one sync of the outbox directory; absent ids are no-ops. Every id
// is checked before anything is deleted. On an error the entries before
// the failing one may be gone (the directory is still synced).
func (j *Journal) DeleteOutboxes(ctx context.Context, ids []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		if err := checkOutboxID(id); err != nil {
			return fmt.Errorf("store: delete outbox: %w", err)
		}
	}
	if err := j.enter(); err != nil {
		return fmt.Errorf("store: delete outbox: %w", err)
	}
	defer j.leave()
	removed := false
	var rerr error
	for _, id := range ids {
		err := os.Remove(filepath.Join(j.outboxDir(), id))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			rerr = fmt.Errorf("store: delete outbox %q: %w", id, err)
			break
		}
		removed = true
	}
	if removed {
		if err := fsutil.SyncDir(j.outboxDir()); err != nil && rerr == nil {
			rerr = fmt.Errorf("store: delete outbox %q: %w", ids, err)
		}
	}
	return rerr
}

// OutboxSize counts the outbox entries and their bundle bytes without
// reading them.
func (j *Journal) OutboxSize(ctx context.Context) (entries int, size int64, err error) {
	err = j.OutboxIDs(ctx, func(id string) error {
		fi, err := os.Stat(filepath.Join(j.outboxDir(), id))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		entries++
		size += fi.Size()
		if j.c.sealed() {
			size -= sealedExtra
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("store: outbox size: %w", err)
	}
	return entries, size, nil
}
