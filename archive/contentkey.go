package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/store"
)

// The archive's content keys (docs/operators.md, "Content keys"): the
// HPKE key pairs agents seal payloads to (bundle/payloadcipher). Each is
// announced by a content key announcement signed by the archive key
// (archivesig.SignContentKey), appended to the archive log as a
// content-key entry, and kept in <data_dir>/content-keys/ as <seq>.json
// (the announcement agents are given) and <seq>.key (the private key,
// 0600), or <seq>.key.wrapped when a token key wraps them
// (contentkey_wrap.go). A rotation adds a key with the next seq; old
// private keys stay for decryption, and the receipt of a bundle holding
// a payload sealed to an older key carries the newest announcement, from
// which agents learn the rotation. The private keys never leave the
// archive but through the escrow the operator makes at set-up
// (EscrowContentKey); escrows and restores are archive log entries too.

// ContentKeyDir is the folder of content keys in the archive's data directory.
const ContentKeyDir = "content-keys"

// LogContentKeyEntryType is the type of a content-key entry in the archive log.
const LogContentKeyEntryType = "content.key"

// LogContentKeyEntry is the archive log entry of a content key
// announcement. Its JSON is canonical (members in this order).
type LogContentKeyEntry struct {
	Announcement []byte `json:"announcement"`
	Type         string `json:"type"` // LogContentKeyEntryType
	V            int    `json:"v"`    // 1
}

// CheckDecrypt is the archive's check that every encrypted payload of a
// bundle opens with the content key it names, to the plaintext its
// record names: a ciphertext moved from another record, sealed to a key
// the archive does not hold, or cut short with its digest updated is
// refused with it.
const CheckDecrypt = "archive.decrypt"

// ErrNoContentKey is a content key operation on an archive without one.
var ErrNoContentKey = errors.New("archive: no content key (edgeseal archive content-key new)")

type contentKeys struct {
	mu     sync.RWMutex
	keys   map[string]*payloadcipher.PrivateKey // by key id
	bySeq  map[uint64]*payloadcipher.PrivateKey
	latest []byte // the newest announcement
	newest string // its key id
	seq    uint64
	// opener keeps the decapsulated windows of payload cipher version 2
	// (one decapsulation per window for admission and every decrypt).
	opener *payloadcipher.Opener
}

// loadContentKeys reads <dir>/content-keys: every <seq>.key and
// <seq>.key.wrapped (opened with wrap) and the newest <seq>.json.
func loadContentKeys(dir, origin string, wrap ContentKeyWrapper) (*contentKeys, error) {
	ck := &contentKeys{keys: map[string]*payloadcipher.PrivateKey{}, bySeq: map[uint64]*payloadcipher.PrivateKey{},
		opener: payloadcipher.NewOpener(payloadcipher.DefaultOpenerSize)}
	d := filepath.Join(dir, ContentKeyDir)
	ents, err := os.ReadDir(d)
	if errors.Is(err, os.ErrNotExist) {
		return ck, nil
	}
	if err != nil {
		return nil, fmt.Errorf("archive: content keys: %w", err)
	}
	var seqs []uint64
	for _, e := range ents {
		n, ok := strings.CutSuffix(e.Name(), ".key")
		if !ok {
			n, ok = strings.CutSuffix(e.Name(), wrappedSuffix)
		}
		if !ok || !e.Type().IsRegular() {
			continue
		}
		seq, err := strconv.ParseUint(n, 10, 32)
		if err != nil {
			continue
		}
		if ck.bySeq[seq] != nil {
			return nil, fmt.Errorf("archive: content key %d: both %s and %s", seq, n+".key", n+wrappedSuffix)
		}
		k, err := readContentKey(d, e.Name(), origin, seq, wrap)
		if err != nil {
			return nil, fmt.Errorf("archive: content key %s: %w", e.Name(), err)
		}
		ck.keys[k.ID], ck.bySeq[seq] = k, k
		seqs = append(seqs, seq)
	}
	if len(seqs) == 0 {
		return ck, nil
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	ck.seq = seqs[len(seqs)-1]
	// The newest announcement: a key restored from its escrow alone has
	// none (it decrypts; agents are given the newest one announced).
	for i := len(seqs) - 1; i >= 0; i-- {
		b, err := fsutil.ReadLimited(filepath.Join(d, strconv.FormatUint(seqs[i], 10)+".json"), archivesig.MaxContentKeySize)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("archive: content key announcement %d: %w", seqs[i], err)
		}
		_, an, err := archivesig.ParseContentKey(b)
		if err != nil {
			return nil, fmt.Errorf("archive: content key announcement %d: %w", seqs[i], err)
		}
		ck.latest, ck.newest = b, an.KeyID
		break
	}
	return ck, nil
}

// contentKeyState loads the content keys once.
func (a *Archive) contentKeyState() (*contentKeys, error) {
	a.contentOnce.Do(func() { a.content, a.contentErr = loadContentKeys(a.opts.Dir, a.opts.Name, a.opts.ContentKeyWrap) })
	return a.content, a.contentErr
}

// NewContentKey makes a content key and announces it: the first one, or
// a rotation (agents given the new announcement seal to it; the old
// private keys are kept for decryption). The private key is written
// (0600) before the announcement is logged, so an announced key is
// never lost. It returns the announcement, the file agents are given
// (encryption.content_key).
func (a *Archive) NewContentKey(ctx context.Context) ([]byte, error) {
	ck, err := a.contentKeyState()
	if err != nil {
		return nil, err
	}
	ck.mu.Lock()
	defer ck.mu.Unlock()
	priv, err := payloadcipher.GenerateKey()
	if err != nil {
		return nil, err
	}
	seq := ck.seq + 1
	cur := a.cur.Load()
	an := &archivesig.ContentKeyAnnouncement{Origin: a.opts.Name, Seq: seq, Time: wire.FormatTime(a.now())}
	raw, err := archivesig.SignContentKey(an, priv.Public(), cur.keyID, cur.key)
	if err != nil {
		return nil, fmt.Errorf("archive: content key: %w", err)
	}
	d := filepath.Join(a.opts.Dir, ContentKeyDir)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, fmt.Errorf("archive: content key: %w", err)
	}
	base := filepath.Join(d, strconv.FormatUint(seq, 10))
	if err := writeContentKey(d, a.opts.Name, seq, priv, a.opts.ContentKeyWrap); err != nil {
		return nil, fmt.Errorf("archive: content key: %w", err)
	}
	rec, err := json.Marshal(LogContentKeyEntry{Type: LogContentKeyEntryType, V: 1, Announcement: raw})
	if err != nil {
		return nil, err
	}
	lgd, err := a.log.append(ctx, rec)
	if err != nil {
		return nil, fmt.Errorf("archive: content key: log: %w", err)
	}
	if lgd[0].old != nil {
		return nil, fmt.Errorf("archive: content key: log: %w", &store.DuplicateError{Key: []byte("content-key/" + priv.ID), Seq: lgd[0].seq})
	}
	if err := fsutil.WriteFileAtomic(base+".json", raw, 0o644); err != nil {
		return nil, fmt.Errorf("archive: content key: %w", err)
	}
	if _, err := a.log.checkpoint(ctx, lgd[0].seq+1); err != nil {
		return nil, err
	}
	ck.keys[priv.ID], ck.bySeq[seq], ck.latest, ck.newest, ck.seq = priv, priv, raw, priv.ID, seq
	a.lg.Warn("archive content key announced", "keyId", priv.ID, "seq", seq)
	return raw, nil
}

// ContentKeyAnnouncement returns the newest content key announcement,
// ErrNoContentKey when there is none.
func (a *Archive) ContentKeyAnnouncement() ([]byte, error) {
	ck, err := a.contentKeyState()
	if err != nil {
		return nil, err
	}
	ck.mu.RLock()
	defer ck.mu.RUnlock()
	if ck.latest == nil {
		return nil, ErrNoContentKey
	}
	return ck.latest, nil
}

// UnknownContentKeyError is a payload sealed to a content key the
// archive does not hold.
type UnknownContentKeyError struct{ KeyID string }

func (e *UnknownContentKeyError) Error() string {
	return "archive: payload sealed to content key " + e.KeyID + ", which this archive does not hold"
}

// OpenPayload decrypts the ciphertext file of the export record rec (its
// canonical bytes) with the archive's content key the record names, and
// checks the plaintext against the record's digest and size. It logs
// nothing: a caller that hands the plaintext to someone (the read API,
// evidence) records that decryption in the archive log. Errors: an
// *UnknownContentKeyError, and those of custody.DecryptPayload.
func (a *Archive) OpenPayload(rec, file []byte) ([]byte, error) {
	r, k, err := a.payloadKey(rec)
	if err != nil {
		return nil, err
	}
	return custody.DecryptPayload(r, k, file, a.content.opener)
}

// openPayload is OpenPayload dropping the plaintext; it returns the
// content key id the record names ("" when it names none).
func (a *Archive) openPayload(rec, file []byte) (string, error) {
	r, k, err := a.payloadKey(rec)
	if k == nil {
		if uk, ok := errors.AsType[*UnknownContentKeyError](err); ok {
			return uk.KeyID, err
		}
		return "", err
	}
	_, err = custody.DecryptPayload(r, k, file, a.content.opener)
	return k.ID, err
}

// payloadKey parses an encrypted export's record and finds the content
// key it names.
func (a *Archive) payloadKey(rec []byte) (*custody.Record, *payloadcipher.PrivateKey, error) {
	r, err := custody.ParseRecord(rec)
	if err != nil {
		return nil, nil, err
	}
	e, err := r.ExportBody()
	if err != nil {
		return nil, nil, err
	}
	if e.PayloadCipher == nil {
		return nil, nil, fmt.Errorf("archive: export %s is not encrypted", e.ExportID)
	}
	ck, err := a.contentKeyState()
	if err != nil {
		return nil, nil, err
	}
	ck.mu.RLock()
	k := ck.keys[e.PayloadCipher.KeyID]
	ck.mu.RUnlock()
	if k == nil {
		return nil, nil, &UnknownContentKeyError{KeyID: e.PayloadCipher.KeyID}
	}
	return r, k, nil
}

// newestContentKey is the newest announcement and its key id; nil when
// the archive has none.
func (a *Archive) newestContentKey() ([]byte, string) {
	ck, err := a.contentKeyState()
	if err != nil || ck == nil {
		return nil, ""
	}
	ck.mu.RLock()
	defer ck.mu.RUnlock()
	return ck.latest, ck.newest
}

// cipherChecks trial-decrypts every encrypted payload the bundle carries
// (CheckDecrypt); the plaintext is dropped at once. stale reports that
// a payload was sealed to a content key older than the newest one
// announced: its receipt carries the newest announcement. The payloads
// of a large bundle are opened on every core (a bundle of one device
// is checked under its lock: one at a time).
func (a *Archive) cipherChecks(b *bundle.Bundle) (fails []failure, stale bool) {
	if !carriesSealed(b) { // nothing to open: the records need not be read again
		return nil, false
	}
	raw, err := b.Records()
	if err != nil {
		return nil, false // verify's records.parse names it
	}
	_, newest := a.newestContentKey()
	type sealed struct {
		line []byte
		d    [32]byte
		file []byte
	}
	var todo []sealed
	for _, line := range raw {
		d, enc, ok, err := custody.RecordPayloadFile(line)
		if err != nil || !ok || !enc {
			continue
		}
		file, present := b.Files[bundle.PayloadPath(d)+bundle.EncryptedPayload]
		if !present {
			continue // purged, or payloads.digest names it
		}
		todo = append(todo, sealed{line, d, file})
	}
	errs := make([]error, len(todo))
	keys := make([]string, len(todo))
	open := func(i int) { keys[i], errs[i] = a.openPayload(todo[i].line, todo[i].file) }
	workers := min(runtime.GOMAXPROCS(0), len(todo)/parallelOpenMin)
	if workers < 2 {
		for i := range todo {
			open(i)
		}
	} else {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for i := int(next.Add(1)) - 1; i < len(todo); i = int(next.Add(1)) - 1 {
					open(i)
				}
			})
		}
		wg.Wait()
	}
	for i, p := range todo {
		if errs[i] != nil {
			fails = append(fails, failure{check: CheckDecrypt, reason: fmt.Sprintf("payload %s: %v", wire.FormatHash(p.d), errs[i])})
		}
		stale = stale || (newest != "" && keys[i] != "" && keys[i] != newest)
	}
	return fails, stale
}

// carriesSealed reports whether any file of b is named as an encrypted
// payload (PayloadPath + EncryptedPayload): cipherChecks opens only
// those, so a bundle without one has nothing to check.
func carriesSealed(b *bundle.Bundle) bool {
	for name := range b.Files {
		if strings.HasSuffix(name, bundle.EncryptedPayload) {
			return true
		}
	}
	return false
}

// parallelOpenMin is the fewest encrypted payloads a core opens in
// cipherChecks before another core helps.
const parallelOpenMin = 16
