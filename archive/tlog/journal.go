package tlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"

	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/store"
)

// Journal is the archive's Badger log (a store.Journal) behind Log: an
// append is durable and integrated when the journal's commit returns;
// AwaitCheckpoint signs and stores a checkpoint of the current size when
// the last stored one does not cover the size asked for.
type Journal struct {
	j        *store.Journal
	signer   note.Signer
	verifier note.Verifier
	previous []note.Verifier
	mu       sync.Mutex // one checkpoint signed at a time
}

var (
	_ Log    = (*Journal)(nil)
	_ Failer = (*Journal)(nil)
)

// NewJournal returns the Log of j, which it owns from now on (Close
// closes it). The signer's name is the checkpoint origin; verifier is
// the signer's. previous are the log's earlier keys (same name), after
// a key rotation: the checkpoints they signed still open, and
// AwaitCheckpoint signs a new one with signer rather than return one of
// theirs.
func NewJournal(j *store.Journal, signer note.Signer, verifier note.Verifier, previous ...note.Verifier) (*Journal, error) {
	if signer.Name() != verifier.Name() || signer.KeyHash() != verifier.KeyHash() {
		return nil, errors.New("tlog: journal: verifier is not the signer's")
	}
	for _, v := range previous {
		if v.Name() != signer.Name() {
			return nil, fmt.Errorf("tlog: journal: previous key %q is not named %q", v.Name(), signer.Name())
		}
	}
	return &Journal{j: j, signer: signer, verifier: verifier, previous: previous}, nil
}

// Failed implements Failer: closed when the journal failed a write, its
// own or a background one.
func (l *Journal) Failed() <-chan struct{} { return l.j.Failed() }

// Err implements Failer.
func (l *Journal) Err() error { return l.j.Err() }

// Append implements Log.
func (l *Journal) Append(ctx context.Context, entry []byte) (uint64, error) {
	if err := checkEntry(entry); err != nil {
		return 0, err
	}
	rec := append([]byte(nil), entry...)
	a, err := l.j.Append(ctx, store.Entry{Build: func(uint64, [32]byte) ([]byte, error) { return rec, nil }})
	if err != nil {
		return 0, fmt.Errorf("tlog: append: %w", err)
	}
	return a.Seq, nil
}

// AppendBatch implements Log: one journal commit.
func (l *Journal) AppendBatch(ctx context.Context, entries [][]byte) ([]uint64, error) {
	es := make([]store.Entry, len(entries))
	for i, e := range entries {
		if err := checkEntry(e); err != nil {
			return nil, err
		}
		rec := append([]byte(nil), e...)
		es[i] = store.Entry{Build: func(uint64, [32]byte) ([]byte, error) { return rec, nil }}
	}
	res, err := l.j.AppendBatch(ctx, es)
	if err != nil {
		return nil, fmt.Errorf("tlog: append: %w", err)
	}
	idx := make([]uint64, len(res))
	for i, r := range res {
		idx[i] = r.Seq
	}
	return idx, nil
}

// Size implements Log.
func (l *Journal) Size(context.Context) (uint64, error) { return l.j.Size(), nil }

// Checkpoint implements Log: the stored checkpoint of the largest size.
func (l *Journal) Checkpoint(context.Context) (Checkpoint, error) {
	_, data, err := l.j.LastCheckpoint()
	if errors.Is(err, store.ErrNotFound) {
		return Checkpoint{}, ErrNoCheckpoint
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("tlog: checkpoint: %w", err)
	}
	return OpenCheckpoint(data, l.verifier, l.previous...)
}

// AwaitCheckpoint implements Log; it never waits: a checkpoint is signed
// and stored at once, unless the last stored one covers size and is
// signed by the current key.
func (l *Journal) AwaitCheckpoint(ctx context.Context, size uint64) (Checkpoint, error) {
	if n := l.j.Size(); size > n {
		return Checkpoint{}, &RangeError{What: "checkpoint", A: size, B: size, Size: n}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, err := l.Checkpoint(ctx); err == nil && c.Size >= size && l.current(c) {
		return c, nil
	} else if err != nil && !errors.Is(err, ErrNoCheckpoint) {
		return Checkpoint{}, err
	}
	n := l.j.Size()
	root, err := l.j.Root(n)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("tlog: checkpoint: %w", err)
	}
	body := merkle.Checkpoint{Origin: l.signer.Name(), Size: n, Root: root}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(body)}, l.signer)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("tlog: sign checkpoint: %w", err)
	}
	if err := l.j.PutCheckpoint(ctx, n, signed); err != nil {
		return Checkpoint{}, fmt.Errorf("tlog: checkpoint: %w", err)
	}
	return Checkpoint{Size: n, Root: root, Origin: l.signer.Name(), Note: signed}, nil
}

// current reports whether c is signed by the current key.
func (l *Journal) current(c Checkpoint) bool {
	_, err := note.Open(c.Note, note.VerifierList(l.verifier))
	return err == nil
}

// InclusionProof implements Log.
func (l *Journal) InclusionProof(_ context.Context, index, size uint64) ([][32]byte, error) {
	if n := l.j.Size(); index >= size || size > n {
		return nil, &RangeError{What: "inclusion proof", A: index, B: size, Size: n}
	}
	p, err := l.j.InclusionProof(index, size)
	if err != nil {
		return nil, fmt.Errorf("tlog: %w", err)
	}
	return p, nil
}

// ConsistencyProof implements Log.
func (l *Journal) ConsistencyProof(_ context.Context, oldSize, newSize uint64) ([][32]byte, error) {
	if n := l.j.Size(); oldSize > newSize || newSize > n {
		return nil, &RangeError{What: "consistency proof", A: oldSize, B: newSize, Size: n}
	}
	if oldSize == 0 || oldSize == newSize {
		return nil, nil
	}
	p, err := l.j.ConsistencyProof(oldSize, newSize)
	if err != nil {
		return nil, fmt.Errorf("tlog: %w", err)
	}
	return p, nil
}

// Entry implements Log.
func (l *Journal) Entry(_ context.Context, index uint64) ([]byte, error) {
	if n := l.j.Size(); index >= n {
		return nil, &RangeError{What: "entry", A: index, B: n, Size: n}
	}
	rec, err := l.j.Record(index)
	if err != nil {
		return nil, fmt.Errorf("tlog: %w", err)
	}
	return rec, nil
}

// Entries implements Log.
func (l *Journal) Entries(ctx context.Context, from, to uint64, fn func(uint64, []byte) error) error {
	if n := l.j.Size(); from > to || to > n {
		return &RangeError{What: "entries", A: from, B: to, Size: n}
	}
	return l.j.Records(ctx, from, to, fn)
}

// Close implements Log: every append returned is already in the journal;
// the journal is closed.
func (l *Journal) Close(context.Context) error {
	if err := l.j.Close(); err != nil {
		return fmt.Errorf("tlog: close: %w", err)
	}
	return nil
}

var _ Source = (*Journal)(nil)

// ReadTile implements Source from the journal's stored hashes; a tile
// not complete in the journal is fs.ErrNotExist. The tiles are those a
// Tessera log of the same entries serves, byte for byte.
func (l *Journal) ReadTile(_ context.Context, level, index uint64, w uint8) ([]byte, error) {
	return readJournalTile(l.j, level, index, w)
}

// ReadEntryBundle implements Source from the journal's records.
func (l *Journal) ReadEntryBundle(ctx context.Context, index uint64, w uint8) ([]byte, error) {
	return readJournalBundle(ctx, l.j, index, w)
}

// NewJournalSource returns a read-only Source of a store.Journal whose
// checkpoints its owner signs and stores (store.Journal.PutCheckpoint),
// as the archive does with its log: the checkpoint served is the last
// one stored, as stored. Its signature is the owner's and is not checked
// here (a client checks it); its body must parse and name origin. The
// Source does not own j (nothing to close).
func NewJournalSource(j *store.Journal, origin string) Source {
	return &journalSource{j: j, origin: origin}
}

type journalSource struct {
	j      *store.Journal
	origin string
}

func (s *journalSource) Checkpoint(context.Context) (Checkpoint, error) {
	_, data, err := s.j.LastCheckpoint()
	if errors.Is(err, store.ErrNotFound) {
		return Checkpoint{}, ErrNoCheckpoint
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("tlog: checkpoint: %w", err)
	}
	// A signed note is its text, a blank line, then signature lines;
	// the text has no blank line.
	body, _, ok := strings.Cut(string(data), "\n\n")
	if !ok {
		return Checkpoint{}, errors.New("tlog: checkpoint: the stored checkpoint is not a signed note")
	}
	c, err := merkle.ParseAnyCheckpoint([]byte(body + "\n"))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("tlog: checkpoint: %w", err)
	}
	if c.Origin != s.origin {
		return Checkpoint{}, fmt.Errorf("tlog: checkpoint origin %q is not %q", c.Origin, s.origin)
	}
	return Checkpoint{Size: c.Size, Root: c.Root, Origin: c.Origin, Note: data}, nil
}

func (s *journalSource) ReadTile(_ context.Context, level, index uint64, w uint8) ([]byte, error) {
	return readJournalTile(s.j, level, index, w)
}

func (s *journalSource) ReadEntryBundle(ctx context.Context, index uint64, w uint8) ([]byte, error) {
	return readJournalBundle(ctx, s.j, index, w)
}

// readJournalTile reads a tile from j's stored hashes; a tile not
// complete in the journal is fs.ErrNotExist.
func readJournalTile(j *store.Journal, level, index uint64, w uint8) ([]byte, error) {
	width := int(w)
	if width == 0 {
		width = layout.TileWidth
	}
	b, err := j.TileHashes(level, index, width)
	if _, ok := errors.AsType[*store.RangeError](err); ok {
		return nil, fmt.Errorf("tlog: tile %d/%d.%d: %w", level, index, w, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("tlog: %w", err)
	}
	return b, nil
}

// readJournalBundle builds an entry bundle from j's records.
func readJournalBundle(ctx context.Context, j *store.Journal, index uint64, w uint8) ([]byte, error) {
	width := uint64(w)
	if width == 0 {
		width = layout.EntryBundleWidth
	}
	n := j.Size()
	if index >= n/layout.EntryBundleWidth+1 || index*layout.EntryBundleWidth+width > n {
		return nil, fmt.Errorf("tlog: entry bundle %d.%d: %w", index, w, fs.ErrNotExist)
	}
	from := index * layout.EntryBundleWidth
	var b []byte
	err := j.Records(ctx, from, from+width, func(_ uint64, rec []byte) error {
		b = binary.BigEndian.AppendUint16(b, uint16(len(rec)))
		b = append(b, rec...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tlog: entry bundle %d: %w", index, err)
	}
	return b, nil
}
