package archive

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// The archive's key and its rotations (docs/archive-keys.md). The key
// that signs receipts, rejections, enrollment answers and checkpoints is
// the current one; RotateKey switches to a new one with an announcement
// (archivesig.SignArchiveKey) signed by both, appended to the log as a key
// entry and kept in <data_dir>/archive-keys.json, whose announcements
// every receipt and rejection carries from then on.

// KeyChainFile is the archive's key chain file in its data directory.
const KeyChainFile = "archive-keys.json"

// LogKeyEntryType is the type of a key entry in the archive log.
const LogKeyEntryType = "archive.key"

// LogKeyEntry is a non-bundle entry of the archive log: the announcement
// of a key rotation. Bundle entries (archivesig.ReceiptEntry) have no type.
// Its JSON is canonical (members in this order, a base64 string).
type LogKeyEntry struct {
	Announcement []byte `json:"announcement"`
	Type         string `json:"type"` // LogKeyEntryType
	V            int    `json:"v"`    // 1
}

// KeyMismatchError is an archive opened with a key that is not the one
// its last key announcement names.
type KeyMismatchError struct {
	KeyID string // the key it was opened with
	Want  string // the last announcement's new key
}

func (e *KeyMismatchError) Error() string {
	return "archive: the configured key " + e.KeyID + " is not the archive's current key " + e.Want +
		" (the last rotation in " + KeyChainFile + " named it): configure that key"
}

// signerState is the current key.
type signerState struct {
	key   crypto.Signer
	keyID string
	note  note.Signer
	vkey  string
	chain [][]byte // every announcement, oldest first
	// retired are the public keys the chain retired that the archive
	// kept (RetiredKeysFile), by id.
	retired map[string]ed25519.PublicKey
}

// tail is the part of the chain replies carry.
func (s *signerState) tail() [][]byte {
	if len(s.chain) > archivesig.MaxKeyChain {
		return s.chain[len(s.chain)-archivesig.MaxKeyChain:]
	}
	return s.chain
}

func newSignerState(name string, key crypto.Signer, chain [][]byte) (*signerState, error) {
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("archive: the key is not an Ed25519 key")
	}
	ns, vkey, err := noteKeys(name, key)
	if err != nil {
		return nil, err
	}
	return &signerState{key: key, keyID: KeyID(pub), note: ns, vkey: vkey, chain: chain}, nil
}

// curNote is the log's note signer: the current key's.
type curNote struct{ a *Archive }

func (c curNote) Name() string                    { return c.a.cur.Load().note.Name() }
func (c curNote) KeyHash() uint32                 { return c.a.cur.Load().note.KeyHash() }
func (c curNote) Sign(msg []byte) ([]byte, error) { return c.a.cur.Load().note.Sign(msg) }

// loadKeyChain reads the chain file (none: no rotation yet) and checks
// its links and that key is the newest.
func loadKeyChain(dir, origin string, key crypto.Signer) ([][]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, KeyChainFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	f, err := archivesig.ParseKeyChainFile(b)
	if err != nil {
		return nil, fmt.Errorf("archive: %s: %w", KeyChainFile, err)
	}
	if f.Origin != origin {
		return nil, fmt.Errorf("archive: %s is for archive %q, not %q", KeyChainFile, f.Origin, origin)
	}
	var prev *archivesig.ArchiveKeyAnnouncement
	for i, raw := range f.Announcements {
		env, an, _ := archivesig.ParseArchiveKey(raw) // checked by ParseKeyChainFile
		if prev != nil && (an.OldKeyID != prev.NewKeyID || env.VerifyEd25519(an.OldKeyID, prev.NewKey) != nil) {
			return nil, fmt.Errorf("archive: %s: announcement %d is not signed by the key announced before it", KeyChainFile, i)
		}
		prev = an
	}
	if prev != nil {
		if id := KeyID(key.Public().(ed25519.PublicKey)); id != prev.NewKeyID {
			return nil, &KeyMismatchError{KeyID: id, Want: prev.NewKeyID}
		}
	}
	return f.Announcements, nil
}

// KeyChain returns the archive's key announcements, oldest first (none
// before its first rotation).
func (a *Archive) KeyChain() [][]byte { return a.cur.Load().chain }

// logKeyEntries is the number of key entries in the log.
func (a *Archive) logKeyEntries() uint64 { return uint64(len(a.cur.Load().chain)) }

// RotateKey switches the archive to next: it signs the announcement
// (archivesig.SignArchiveKey: the old key and next, overlap from now),
// appends it to the log as a key entry (LogKeyEntry), keeps it in the
// chain file and from then on signs with next, carrying the chain in
// every receipt and rejection. No receipt is signed meanwhile: the
// bundles logged before the switch are receipted by the old key, those
// after by next. A rotation to a key the log announced already (a
// rotation that crashed before the chain file was written) completes
// that one.
func (a *Archive) RotateKey(ctx context.Context, next crypto.Signer, overlap time.Duration) ([]byte, error) {
	if overlap < 0 {
		return nil, errors.New("archive: rotate key: negative overlap")
	}
	a.keyMu.Lock()
	defer a.keyMu.Unlock()
	cur := a.cur.Load()
	pub, ok := next.Public().(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("archive: rotate key: the new key is not an Ed25519 key")
	}
	nextID := KeyID(pub)
	if nextID == cur.keyID {
		return nil, errors.New("archive: rotate key: the new key is the current key")
	}
	if len(cur.chain) >= archivesig.MaxKeyChainFileLen {
		return nil, fmt.Errorf("archive: rotate key: %d rotations already, the most the chain holds", len(cur.chain))
	}
	now := a.now()
	an := &archivesig.ArchiveKeyAnnouncement{
		Origin: a.opts.Name, Seq: uint64(len(cur.chain)) + 1, LogSize: a.log.size(),
		Time: wire.FormatTime(now), OverlapUntil: wire.FormatTime(now.Add(overlap)),
	}
	raw, err := archivesig.SignArchiveKey(an, cur.keyID, cur.key, next)
	if err != nil {
		return nil, fmt.Errorf("archive: rotate key: %w", err)
	}
	oldPub := cur.key.Public().(ed25519.PublicKey)
	if err := keepRetiredKey(a.opts.Dir, oldPub); err != nil { // before the log names it retired
		return nil, fmt.Errorf("archive: rotate key: %w", err)
	}
	if raw, err = a.logKeyEntry(ctx, nextID, raw); err != nil {
		return nil, err
	}
	chain := append(cur.chain[:len(cur.chain):len(cur.chain)], raw)
	if err := writeKeyChain(a.opts.Dir, a.opts.Name, chain); err != nil {
		return nil, err
	}
	st, err := newSignerState(a.opts.Name, next, chain)
	if err != nil {
		return nil, err
	}
	st.retired = maps.Clone(cur.retired)
	if st.retired == nil {
		st.retired = map[string]ed25519.PublicKey{}
	}
	st.retired[cur.keyID] = oldPub
	a.cur.Store(st)
	// The log signs its checkpoints with next from now on; those the
	// old key signed still open.
	if err := a.log.reopen(ctx, st); err != nil {
		return nil, err
	}
	if _, err := a.log.checkpoint(ctx, a.log.size()); err != nil {
		return nil, err
	}
	a.lg.Warn("archive key rotated", "old", cur.keyID, "new", nextID, "overlapUntil", an.OverlapUntil, "logSize", an.LogSize)
	return raw, nil
}

// logKeyEntry appends the key entry of raw (idempotent by the new key):
// it returns the announcement the log holds for the key.
func (a *Archive) logKeyEntry(ctx context.Context, keyID string, raw []byte) ([]byte, error) {
	rec, err := json.Marshal(LogKeyEntry{Type: LogKeyEntryType, V: 1, Announcement: raw})
	if err != nil {
		return nil, err
	}
	lgd, err := a.log.append(ctx, rec)
	if err != nil {
		return nil, fmt.Errorf("archive: rotate key: log: %w", err)
	}
	if lgd[0].old == nil {
		return raw, nil
	}
	var e LogKeyEntry
	if err := json.Unmarshal(lgd[0].old, &e); err != nil || e.Type != LogKeyEntryType {
		return nil, fmt.Errorf("archive: rotate key: log record %d is not a key entry", lgd[0].seq)
	}
	return e.Announcement, nil
}

// writeKeyChain replaces the chain file durably.
func writeKeyChain(dir, origin string, chain [][]byte) error {
	b, err := (&archivesig.KeyChainFile{Origin: origin, Announcements: chain}).Marshal()
	if err != nil {
		return fmt.Errorf("archive: %s: %w", KeyChainFile, err)
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, KeyChainFile), b, 0o644); err != nil {
		return fmt.Errorf("archive: %s: %w", KeyChainFile, err)
	}
	return nil
}

// LogRecord returns the archive log's entry at index: a bundle's
// archivesig.ReceiptEntry or a LogKeyEntry (its JSON has a "type").
func (a *Archive) LogRecord(index uint64) ([]byte, error) {
	rec, err := a.log.record(context.Background(), index)
	if err != nil {
		return nil, fmt.Errorf("archive: log record %d: %w", index, err)
	}
	return rec, nil
}
