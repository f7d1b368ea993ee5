package archive

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
)

// The access log is a journal of its own (Dir/access): one record per
// read through the API, the canonical JSON of an AccessEntry
// (docs/formats.md "Access log entries"), in an RFC 6962 Merkle tree whose
// checkpoints are C2SP signed notes of the archive's key with origin
// "<name>/access". It is kept apart from the archive log so that reads,
// which outnumber bundles, do not lengthen the walks of the archive log at
// Open (holds, purges, device statements) nor change what a reader of the
// archive log finds there.
//
// Its search keys live in the export index (Dir/search), written by a
// goroutine that follows the journal from a watermark kept in the same
// batch as the keys. With an export index of the caller's
// (Options.ExportIndex: a database other archive processes may share)
// they live in a Badger index of their own, Dir/access-search, beside
// the journal they point into: each process's access log is its own.
//
//	'm'                                           be64(next access seq to index)
//	'a' || field || comp(value) || be64(time µs) || be64(seq)   empty value
//
// field: 'E' export, 'D' device, 'B' bundle, 'U' user, '*' every entry.

// AccessEntryType is the "type" of an access entry.
const AccessEntryType = "access"

// Access log bounds: longer members are cut (at a rune boundary).
const (
	maxAccessUser      = 256
	maxAccessUserAgent = 200
	maxAccessText      = 512
	// MaxAccessEntrySize bounds one access entry as parsed.
	MaxAccessEntrySize = 8 << 10
)

const (
	kAccess     = 'a'
	kAccessMark = 'm'
)

// AccessTarget is what a read was of; members without a value are absent.
type AccessTarget struct {
	Device string `json:"device,omitempty"`
	Export string `json:"export,omitempty"`
	Bundle string `json:"bundle,omitempty"`
	Query  string `json:"query,omitempty"` // the query string of a search
	Path   string `json:"path,omitempty"`  // the path of a page or pack
}

// AccessEntry is one read (docs/formats.md "Access log entries").
type AccessEntry struct {
	V         int          `json:"v"`
	Type      string       `json:"type"` // AccessEntryType
	Time      string       `json:"time"`
	User      string       `json:"user"`
	Via       string       `json:"via"` // "local" or "oidc"
	Roles     []string     `json:"roles"`
	Action    string       `json:"action"`
	Outcome   string       `json:"outcome"`
	Target    AccessTarget `json:"target"`
	Remote    string       `json:"remote"`
	UserAgent string       `json:"userAgent,omitempty"`
	// Decrypt is set on a decrypt entry (Type DecryptEntryType), and
	// only there: a payload decrypted, or refused decryption.
	Decrypt *AccessDecrypt `json:"decrypt,omitempty"`
}

// ParseAccessEntry reads an access log record strictly: bounded, known
// members, version 1, type access, canonical JSON.
func ParseAccessEntry(b []byte) (*AccessEntry, error) {
	if len(b) > MaxAccessEntrySize {
		return nil, fmt.Errorf("archive: access entry of %d bytes: %w", len(b), wire.ErrTooLarge)
	}
	var e AccessEntry
	if err := decodeStatement(b, &e); err != nil {
		return nil, fmt.Errorf("archive: access entry: %w", err)
	}
	if e.V != 1 || (e.Type != AccessEntryType && e.Type != DecryptEntryType) {
		return nil, fmt.Errorf("archive: access entry: type %q version %d", e.Type, e.V)
	}
	if (e.Type == DecryptEntryType) != (e.Decrypt != nil) {
		return nil, fmt.Errorf("archive: access entry: a %s entry without its decrypt member, or the reverse", e.Type)
	}
	if e.Decrypt != nil {
		if err := e.Decrypt.check(e.Outcome); err != nil {
			return nil, fmt.Errorf("archive: access entry: %w", err)
		}
	}
	if canon, err := canonical(&e); err != nil || !bytes.Equal(canon, b) {
		return nil, errors.New("archive: access entry: not canonical JSON")
	}
	if _, err := wire.ParseTime(e.Time); err != nil {
		return nil, fmt.Errorf("archive: access entry: %w", err)
	}
	return &e, nil
}

// cut bounds s to n bytes at a rune boundary and makes it valid UTF-8.
func cut(s string, n int) string {
	s = string(bytes.ToValidUTF8([]byte(s), []byte("\uFFFD")))
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

type accessLog struct {
	l    signedJournal
	x    store.IndexStore // its search keys
	ownX bool             // x is Dir/access-search, closed with the log
	wake chan struct{}
	done chan struct{}

	mu      sync.Mutex
	mark    uint64 // next seq to index
	changed chan struct{}
	signed  uint64 // size of the newest stored checkpoint
}

func (a *Archive) openAccessLog(ctx context.Context) error {
	j, err := store.Open(ctx, store.Options{Dir: filepath.Join(a.opts.Dir, "access"), Logger: a.lg.With("journal", "access")})
	if err != nil {
		return fmt.Errorf("archive: open access log: %w", err)
	}
	al := &accessLog{l: signedJournal{j: j, signer: curNote{a}, origin: a.opts.Name + "/access"}, x: a.xi.x, wake: make(chan struct{}, 1), done: make(chan struct{}), changed: make(chan struct{})}
	if a.opts.ExportIndex != nil {
		x, err := a.openSearchDir(ctx, "access-search")
		if err != nil {
			_ = j.Close()
			return err
		}
		al.x, al.ownX = x, true
	}
	m, err := al.x.Get(ctx, []byte{kAccessMark})
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil || len(m) != 8:
		_ = j.Close()
		if al.ownX {
			_ = al.x.Close()
		}
		return fmt.Errorf("archive: access index watermark: %v", err)
	default:
		al.mark = binary.BigEndian.Uint64(m)
	}
	a.access = al
	go a.runAccessIndexer(a.bg)
	return nil
}

func (a *Archive) closeAccessLog() error {
	if a.access == nil {
		return nil
	}
	<-a.access.done
	err := a.access.l.j.Close()
	if a.access.ownX {
		err = errors.Join(err, a.access.x.Close())
	}
	return err
}

// RecordAccess appends e to the access log, durably, and returns its
// index. Time, V and Type are set here (DecryptEntryType when e.Decrypt
// is set); members are bounded.
func (a *Archive) RecordAccess(ctx context.Context, e AccessEntry) (uint64, error) {
	e.V, e.Type, e.Time = 1, AccessEntryType, wire.FormatTime(a.now())
	if e.Decrypt != nil {
		e.Type = DecryptEntryType
		d := *e.Decrypt
		d.bound()
		if err := d.check(e.Outcome); err != nil {
			return 0, fmt.Errorf("archive: access log: %w", err)
		}
		e.Decrypt = &d
	}
	e.User, e.Via = cut(e.User, maxAccessUser), cut(e.Via, 32)
	e.Action, e.Outcome = cut(e.Action, 64), cut(e.Outcome, 64)
	e.Remote, e.UserAgent = cut(e.Remote, 128), cut(e.UserAgent, maxAccessUserAgent)
	t := &e.Target
	t.Device, t.Export, t.Bundle = cut(t.Device, maxAccessText), cut(t.Export, maxAccessText), cut(t.Bundle, 128)
	t.Query, t.Path = cut(t.Query, maxAccessText), cut(t.Path, maxAccessText)
	for i := range e.Roles {
		e.Roles[i] = cut(e.Roles[i], 64)
	}
	if e.Roles == nil {
		e.Roles = []string{}
	}
	rec, err := canonical(&e)
	if err != nil {
		return 0, err
	}
	res, err := a.access.l.j.Append(ctx, store.Entry{Build: func(uint64, [32]byte) ([]byte, error) { return rec, nil }})
	if err != nil {
		return 0, fmt.Errorf("archive: access log: %w", err)
	}
	select {
	case a.access.wake <- struct{}{}:
	default:
	}
	a.Publish(Event{Type: EventAccess, Data: e})
	return res.Seq, nil
}

// AccessLogSize is the number of entries in the access log.
func (a *Archive) AccessLogSize() uint64 { return a.access.l.j.Size() }

func (a *Archive) runAccessIndexer(ctx context.Context) {
	defer close(a.access.done)
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	failing := false
	for {
		err := a.accessPass(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			a.lg.Error("access index: indexing stopped; retrying", "err", err)
		case err == nil && failing:
			failing = false
			a.lg.Info("access index: indexing again")
		}
		select {
		case <-ctx.Done():
			return
		case <-a.access.wake:
		case <-tick.C:
		}
	}
}

// accessPass indexes the access log from the watermark and signs a
// checkpoint of it when it grew.
func (a *Archive) accessPass(ctx context.Context) error {
	al := a.access
	size := al.l.j.Size()
	for {
		al.mu.Lock()
		mark := al.mark
		al.mu.Unlock()
		if mark >= size {
			break
		}
		end := min(size, mark+512)
		var ops []store.IndexOp
		err := al.l.j.Records(ctx, mark, end, func(seq uint64, rec []byte) error {
			e, err := ParseAccessEntry(rec)
			if err != nil {
				return fmt.Errorf("access log record %d: %w", seq, err)
			}
			ops = append(ops, accessOps(e, seq)...)
			return nil
		})
		if err != nil {
			return err
		}
		ops = append(ops, store.IndexOp{Kind: store.IndexPut, Key: []byte{kAccessMark}, Value: binary.BigEndian.AppendUint64(nil, end)})
		if err := a.access.x.Write(ctx, ops); err != nil {
			return fmt.Errorf("access index: %w", err)
		}
		al.mu.Lock()
		al.mark = end
		close(al.changed)
		al.changed = make(chan struct{})
		al.mu.Unlock()
	}
	if size > 0 && size > al.signed {
		a.keyMu.RLock()
		_, err := al.l.checkpoint(ctx, size)
		a.keyMu.RUnlock()
		if err != nil {
			return err
		}
		al.signed = size
	}
	return nil
}

func accessOps(e *AccessEntry, seq uint64) []store.IndexOp {
	t, _ := wire.ParseTime(e.Time)
	var ops []store.IndexOp
	for _, f := range [][2]string{{"E", e.Target.Export}, {"D", e.Target.Device}, {"B", e.Target.Bundle}, {"U", e.User}, {"*", ""}} {
		if f[1] == "" && f[0] != "*" {
			continue
		}
		k := comp([]byte{kAccess, f[0][0]}, f[1])
		k = binary.BigEndian.AppendUint64(k, timeKey(t))
		k = binary.BigEndian.AppendUint64(k, seq)
		ops = append(ops, store.IndexOp{Kind: store.IndexPut, Key: k})
	}
	return ops
}

// waitAccessIndexed waits (at most 2 s) until the access index covers the
// log as it is now: a search sees every read made before it.
func (a *Archive) waitAccessIndexed(ctx context.Context) {
	al := a.access
	size := al.l.j.Size()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	select {
	case al.wake <- struct{}{}:
	default:
	}
	for {
		al.mu.Lock()
		ok, ch := al.mark >= size, al.changed
		al.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// AccessQuery is a search of the access log.
type AccessQuery struct {
	Export, Device, Bundle, User string
	From, To                     time.Time
	Limit                        int
	Asc                          bool
	Cursor                       string
}

// AccessItem is an access entry with its index in the access log.
type AccessItem struct {
	Index uint64       `json:"index"`
	Entry *AccessEntry `json:"entry"`
}

// SearchAccess searches the access log (after it has indexed every read
// appended before the call).
func (a *Archive) SearchAccess(ctx context.Context, q AccessQuery) (Page[AccessItem], error) {
	a.waitAccessIndexed(ctx)
	field, value := byte('*'), ""
	switch {
	case q.Export != "":
		field, value = 'E', q.Export
	case q.Bundle != "":
		field, value = 'B', q.Bundle
	case q.User != "":
		field, value = 'U', q.User
	case q.Device != "":
		field, value = 'D', q.Device
	}
	var page Page[AccessItem]
	next, err := walk(ctx, a.access.x, scanSpec{
		prefix: comp([]byte{kAccess, field}, value), from: q.From, to: q.To, asc: q.Asc, limit: q.Limit, cursor: q.Cursor,
		fp: fingerprint("access", q.Export, q.Device, q.Bundle, q.User, q.From.String(), q.To.String(), fmt.Sprint(q.Asc)),
		match: func(k []byte) (bool, error) {
			if len(k) < 8 {
				return false, fmt.Errorf("archive: access index: malformed key %x", k)
			}
			seq := binary.BigEndian.Uint64(k[len(k)-8:])
			rec, err := a.access.l.j.Record(seq)
			if err != nil {
				return false, fmt.Errorf("archive: access log: %w", err)
			}
			e, err := ParseAccessEntry(rec)
			if err != nil {
				return false, err
			}
			eq := func(want, got string) bool { return want == "" || want == got }
			if !eq(q.Export, e.Target.Export) || !eq(q.Device, e.Target.Device) || !eq(q.Bundle, e.Target.Bundle) || !eq(q.User, e.User) {
				return false, nil
			}
			page.Items = append(page.Items, AccessItem{Index: seq, Entry: e})
			return true, nil
		},
	})
	if err != nil {
		return Page[AccessItem]{}, err
	}
	page.Next = next
	return page, nil
}

// AccessCheckpoint returns a signed checkpoint of the access log at its
// current size (ErrNotFound when it is empty).
func (a *Archive) AccessCheckpoint(ctx context.Context) ([]byte, uint64, error) {
	a.keyMu.RLock()
	defer a.keyMu.RUnlock()
	size := a.access.l.j.Size()
	if size == 0 {
		return nil, 0, fmt.Errorf("archive: access log is empty: %w", ErrNotFound)
	}
	signed, err := a.access.l.checkpoint(ctx, size)
	return signed, size, err
}

// AccessProof is the inclusion proof of an access entry.
type AccessProof struct {
	Index      uint64   `json:"index"`
	Size       uint64   `json:"size"`
	Leaf       string   `json:"leaf"`
	Proof      []string `json:"proof"`
	Checkpoint string   `json:"checkpoint"`
}

// ProveAccess proves access log entry index in a newly signed checkpoint.
func (a *Archive) ProveAccess(ctx context.Context, index uint64) (*AccessProof, error) {
	signed, size, err := a.AccessCheckpoint(ctx)
	if err != nil {
		return nil, err
	}
	if index >= size {
		return nil, fmt.Errorf("archive: access entry %d of %d: %w", index, size, ErrNotFound)
	}
	rec, err := a.access.l.j.Record(index)
	if err != nil {
		return nil, fmt.Errorf("archive: access log: %w", err)
	}
	proof, err := a.access.l.j.InclusionProof(index, size)
	if err != nil {
		return nil, fmt.Errorf("archive: access log: %w", err)
	}
	p := &AccessProof{Index: index, Size: size, Leaf: wire.FormatHash(merkle.LeafHash(rec)), Checkpoint: string(signed), Proof: []string{}}
	for _, h := range proof {
		p.Proof = append(p.Proof, wire.FormatHash(h))
	}
	return p, nil
}
