package archive

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
)

// The export index (exportindex*.go) is a store.IndexStore (a Badger
// store.Index under Dir/search, or Options.ExportIndex) holding one entry per export and export.rejected record of every
// accepted bundle, secondary keys per searchable field ordered by record
// time, per-day counters and per-device summaries. It is derived from the
// archive log and the stored bundles: a goroutine (the indexer) follows
// the log from a durable watermark, written in the same batch as the keys
// it covers, so an entry is written exactly once even across a crash
// between the accept and the index, and Open needs no rebuild. The batch
// holds only if the watermark is still the one it started from
// (exportindex_mark.go): archive processes sharing one index do not
// write an entry twice either.
//
// Key layout (comp(s) is be16(len(s)) || s, so components are prefix-free;
// pk is comp(device) || comp(exportId) || be64(logIndex) || be64(seq)):
//
//	'w'                                  watermark: be64(log index) || be64(records done in it)
//	'e' || pk                            entryRecord || the record (canonical JSON): the entry is
//	                                     the record's fields and its bundle's 'b' key
//	'b' || be64(logIndex)                what entries say of their bundle (bundleRefJSON)
//	'n' || comp(bundle)                  be64(logIndex): a search by bundle walks its 'L' keys
//	'x' || field || comp(value) || be64(time µs) || pk   secondary key, empty value (no
//	                                     'B' key: the bundle's 'n' key names its 'L' keys;
//	                                     no 'T' key of an accepted export: statusKeyed)
//	's' || by || comp(day) || comp(value)   counter of entries
//	'd' || comp(device)                  device summary JSON
//	'p' || comp(device) || comp(policy)  policy span JSON (exportindex_policy.go)
//	'x' || 'K' || comp(case) || ...      the entries a legal-hold case holds (exportindex_case.go)
//	'H' || comp(device) || comp(case)    a device hold in force, empty value
//	'v'                                  marker: the policy and case keys cover every entry
//	'a' ...                              the access log's keys (accesslog.go)
//
// An index written by an earlier version holds the entry as JSON
// (ExportEntry, its first byte '{') under 'e' and the record under
// 'r' || pk, and no 'b' keys: both forms are read (entryValue), so such
// an index needs no rebuild; what is indexed from then on, or rebuilt,
// is in the compact form.
// Index key prefixes.
const (
	kWatermark = 'w'
	kEntry     = 'e'
	kRecord    = 'r' // an earlier version's record of an entry
	kBundleRef = 'b'
	kBundleLog = 'n'
	kSecondary = 'x'
	kStat      = 's'
	kDevice    = 'd'
)

// Searchable fields (the byte after 'x'), in the order a search prefers
// them (most selective first); fieldTime is every entry by time.
const (
	fieldExport         = 'E'
	fieldBundle         = 'B' // an earlier version's: see kBundleLog
	fieldLogIndex       = 'L'
	fieldPrincipal      = 'P'
	fieldDevice         = 'D'
	fieldWorkflow       = 'W'
	fieldApp            = 'A'
	fieldClassification = 'C'
	fieldReason         = 'R'
	fieldSite           = 'S'
	fieldStatus         = 'T'
	fieldTime           = '*'
)

// maxKeyValue is the longest field value given a secondary key: a longer
// one is not searchable by that field.
const maxKeyValue = 256

// Export statuses and who refused.
const (
	StatusAccepted = "accepted"
	StatusRefused  = "refused"
	RefusedByAgent = "agent"
)

// ExportEntry is an export index entry (docs/archive-api.md).
type ExportEntry struct {
	Device         string        `json:"device"`
	Site           string        `json:"site"`
	Export         string        `json:"export"`
	Seq            uint64        `json:"seq"`
	Type           string        `json:"type"`
	Status         string        `json:"status"`
	RefusedBy      string        `json:"refusedBy,omitempty"`
	Reason         string        `json:"reason,omitempty"`
	Workflow       string        `json:"workflow,omitempty"`
	App            string        `json:"app,omitempty"`
	Principal      string        `json:"principal,omitempty"`
	Classification string        `json:"classification,omitempty"`
	Retention      string        `json:"retention,omitempty"`
	Purpose        string        `json:"purpose,omitempty"`
	Schema         string        `json:"schema,omitempty"`
	Destination    string        `json:"destination,omitempty"`
	Policy         string        `json:"policy,omitempty"`
	Payload        *EntryPayload `json:"payload,omitempty"`
	Time           string        `json:"time"`
	AcceptedAt     string        `json:"acceptedAt,omitempty"`
	Bundle         string        `json:"bundle"`
	LogIndex       *uint64       `json:"logIndex,omitempty"`
	Object         string        `json:"object,omitempty"`
	RetainUntil    string        `json:"retainUntil,omitempty"`
	at             time.Time     // parsed Time
	raw            []byte        // the record
}

// EntryPayload describes an export's payload.
type EntryPayload struct {
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	MediaType string `json:"mediaType,omitempty"`
}

func comp(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// readComp reads one comp off b.
func readComp(b []byte) (string, []byte, bool) {
	if len(b) < 2 {
		return "", nil, false
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+n {
		return "", nil, false
	}
	return string(b[2 : 2+n]), b[2+n:], true
}

// entryPK is the primary key suffix of an entry.
func entryPK(device, export string, logIndex, seq uint64) []byte {
	b := comp(comp(nil, device), export)
	b = binary.BigEndian.AppendUint64(b, logIndex)
	return binary.BigEndian.AppendUint64(b, seq)
}

// pkOfSecondary returns the primary key suffix at the end of a secondary
// key (after the field, its value and the time).
func pkOfSecondary(k []byte) ([]byte, bool) {
	if len(k) < 2 {
		return nil, false
	}
	_, rest, ok := readComp(k[2:])
	if !ok || len(rest) < 8 {
		return nil, false
	}
	pk := rest[8:]
	_, r, ok := readComp(pk)
	if !ok {
		return nil, false
	}
	if _, r, ok = readComp(r); !ok || len(r) != 16 {
		return nil, false
	}
	return pk, true
}

func timeKey(t time.Time) uint64 {
	if t.Before(time.Unix(0, 0)) {
		return 0
	}
	return uint64(t.UnixMicro())
}

func secondaryPrefix(field byte, value string) []byte {
	return comp([]byte{kSecondary, field}, value)
}

// statusKeyed is the value of an entry's status key: none for an
// accepted export (nearly every entry: a search by it walks the time
// keys, as an earlier version's 'T' keys of accepted entries are not
// read either).
func statusKeyed(status string) string {
	if status == StatusAccepted {
		return ""
	}
	return status
}

// entryField is a secondary key's field and value.
type entryField struct {
	field byte
	value string
}

// entryFields are the secondary keys of e (a value that is empty, but
// the time key's, or too long has none).
func entryFields(dst []entryField, e *ExportEntry) []entryField {
	fs := [...]entryField{
		{fieldExport, e.Export}, {fieldPrincipal, e.Principal}, {fieldDevice, e.Device}, {fieldWorkflow, e.Workflow},
		{fieldApp, e.App}, {fieldClassification, e.Classification}, {fieldReason, e.Reason}, {fieldSite, e.Site},
		{fieldStatus, statusKeyed(e.Status)},
	}
	for _, f := range fs {
		if f.value != "" && len(f.value) <= maxKeyValue {
			dst = append(dst, f)
		}
	}
	dst = append(dst, entryField{fieldTime, ""})
	if e.LogIndex != nil {
		dst = append(dst, entryField{fieldLogIndex, strconv.FormatUint(*e.LogIndex, 10)})
	}
	return dst
}

// entryOpsCap is the most operations entryOps returns: the entry (with
// its record), a secondary key a field and the per-day counters.
const entryOpsCap = 1 + 11 + 6

// entryRecord is the first byte of an entry's value in the compact form
// (the record follows); an earlier version's JSON entry begins with '{'.
const entryRecord = 0x01

// entryOps are the index operations of a new entry: its keys
// (entryKeyOps) and its additions to the per-day counters.
func entryOps(e *ExportEntry) ([]store.IndexOp, error) {
	ops, err := entryKeyOps(make([]store.IndexOp, 0, entryOpsCap), e)
	if err != nil {
		return nil, err
	}
	return append(ops, statOps(e, e.at.UTC().Format(time.DateOnly))...), nil
}

// entryKeyOps appends the puts of e's keys to ops: the entry and its
// secondary keys (their bytes in one allocation).
func entryKeyOps(ops []store.IndexOp, e *ExportEntry) ([]store.IndexOp, error) {
	li := uint64(0)
	if e.LogIndex != nil {
		li = *e.LogIndex
	}
	if len(e.raw) == 0 || 1+len(e.raw) > store.MaxIndexValueLen {
		return nil, fmt.Errorf("archive: export index: a record of %d bytes", len(e.raw))
	}
	var fa [12]entryField
	fs := entryFields(fa[:0], e)
	pk := entryPK(e.Device, e.Export, li, e.Seq)
	n := 1 + len(pk) + 1 + len(e.raw)
	for _, f := range fs {
		n += 2 + 2 + len(f.value) + 8 + len(pk)
	}
	buf := make([]byte, 0, n)
	cut := func(from int) []byte { return buf[from:len(buf):len(buf)] }
	buf = append(append(buf, kEntry), pk...)
	key := cut(0)
	buf = append(append(buf, entryRecord), e.raw...)
	ops = append(ops, store.IndexOp{Kind: store.IndexPut, Key: key, Value: cut(len(key))})
	tk := timeKey(e.at)
	for _, f := range fs {
		from := len(buf)
		buf = binary.BigEndian.AppendUint64(comp(append(buf, kSecondary, f.field), f.value), tk)
		buf = append(buf, pk...)
		ops = append(ops, store.IndexOp{Kind: store.IndexPut, Key: cut(from)})
	}
	return ops, nil
}

// statOps are the per-day counters an entry adds to (day: its UTC day).
func statOps(e *ExportEntry, day string) []store.IndexOp {
	var ops []store.IndexOp
	for _, s := range statFields(e) {
		if s[1] == "" || len(s[1]) > maxKeyValue {
			continue
		}
		ops = append(ops, store.IndexOp{Kind: store.IndexAdd, Key: statKey(s[0], day, s[1]), Delta: 1})
	}
	return ops
}

// statFields are e's values of the StatsBy groupings.
func statFields(e *ExportEntry) [6][2]string {
	return [6][2]string{{"status", e.Status}, {"reason", e.Reason}, {"workflow", e.Workflow}, {"principal", e.Principal}, {"device", e.Device}, {"classification", e.Classification}}
}

// statCounts gathers the counter additions of a batch's entries: one
// addition a counter, where each entry's own would be an index read and
// write each.
type statCounts struct {
	n       map[statID]int64
	unixDay int64 // the day of the last entry added, and its text
	day     string
}

type statID struct{ by, day, value string }

// add counts e's additions (as statOps).
func (sc *statCounts) add(e *ExportEntry) {
	if sc.n == nil {
		sc.n = map[statID]int64{}
	}
	at := e.at.UTC()
	if d := at.Unix() / 86400; sc.day == "" || d != sc.unixDay || at.Unix() < 0 {
		sc.unixDay, sc.day = d, at.Format(time.DateOnly)
	}
	for _, s := range statFields(e) {
		if s[1] != "" && len(s[1]) <= maxKeyValue {
			sc.n[statID{s[0], sc.day, s[1]}]++
		}
	}
}

// ops are the additions, in key order.
func (sc *statCounts) ops() []store.IndexOp {
	ops := make([]store.IndexOp, 0, len(sc.n))
	for id, d := range sc.n {
		ops = append(ops, store.IndexOp{Kind: store.IndexAdd, Key: statKey(id.by, id.day, id.value), Delta: d})
	}
	slices.SortFunc(ops, func(a, b store.IndexOp) int { return bytes.Compare(a.Key, b.Key) })
	return ops
}

func statKey(by, day, value string) []byte {
	return comp(comp(comp([]byte{kStat}, by), day), value)
}

// entryFrom builds the index entry of record raw of an accepted bundle; nil
// for a record that is neither an export nor a refused export.
// (r parsed from raw).
func entryFrom(r *custody.Record, raw []byte, b bundleRef) (*ExportEntry, error) {
	if r.Type != custody.TypeExport && r.Type != custody.TypeExportRejected {
		return nil, nil
	}
	site, _, _ := cutDevice(r.Device)
	e := &ExportEntry{
		Device: r.Device, Site: site, Seq: r.Seq, Type: r.Type, Principal: r.Actor.ID,
		Time: wire.FormatTime(r.Time), at: r.Time, raw: raw,
		AcceptedAt: b.acceptedAt, Bundle: b.digest, LogIndex: &b.logIndex, Object: b.object, RetainUntil: b.retainUntil,
	}
	if r.Type == custody.TypeExport {
		body, err := r.ExportBody()
		if err != nil {
			return nil, err
		}
		e.Status = StatusAccepted
		e.Export, e.App, e.Workflow, e.Purpose, e.Schema = body.ExportID, body.App, body.Workflow, body.Purpose, body.Schema
		e.Classification, e.Retention, e.Destination, e.Policy = body.Classification, body.Retention, body.Destination, body.Policy
		e.Payload = &EntryPayload{Digest: body.Payload.Digest, Size: body.Payload.Size, MediaType: body.Payload.MediaType}
		return e, nil
	}
	var body custody.RejectedBody
	if err := json.Unmarshal(r.Body, &body); err != nil {
		return nil, fmt.Errorf("export.rejected body: %w", err)
	}
	e.Status, e.RefusedBy, e.Reason = StatusRefused, RefusedByAgent, body.Reason
	e.Export, e.App, e.Workflow, e.Policy = body.ExportID, body.App, body.Workflow, body.Policy
	return e, nil
}

// bundleRef is what an entry says of its bundle.
type bundleRef struct {
	digest, object, retainUntil, acceptedAt string
	logIndex                                uint64
}

// bundleRefJSON is the value of a bundle's 'b' key.
type bundleRefJSON struct {
	Bundle      string `json:"bundle"`
	Object      string `json:"object,omitempty"`
	RetainUntil string `json:"retainUntil,omitempty"`
	AcceptedAt  string `json:"acceptedAt,omitempty"`
}

func bundleRefKey(logIndex uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{kBundleRef}, logIndex)
}

// bundleRefOps are the puts of b's 'b' and 'n' keys (written with every
// batch of its entries: each batch stands alone).
func bundleRefOps(b bundleRef) ([]store.IndexOp, error) {
	v, err := json.Marshal(bundleRefJSON{Bundle: b.digest, Object: b.object, RetainUntil: b.retainUntil, AcceptedAt: b.acceptedAt})
	if err != nil {
		return nil, fmt.Errorf("archive: export index: %w", err)
	}
	return []store.IndexOp{{Kind: store.IndexPut, Key: bundleRefKey(b.logIndex), Value: v},
		{Kind: store.IndexPut, Key: bundleLogKey(b.digest), Value: binary.BigEndian.AppendUint64(nil, b.logIndex)}}, nil
}

func bundleLogKey(bundle string) []byte { return comp([]byte{kBundleLog}, bundle) }

// bundleKeys is the prefix of the secondary keys of bundle's entries:
// its log index's 'L' keys, or (a bundle indexed by an earlier version,
// or none) its 'B' keys.
func bundleKeys(ctx context.Context, x store.IndexStore, bundle string) ([]byte, error) {
	v, err := x.Get(ctx, bundleLogKey(bundle))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return secondaryPrefix(fieldBundle, bundle), nil
	case err != nil:
		return nil, fmt.Errorf("archive: export index: %w", err)
	case len(v) != 8:
		return nil, fmt.Errorf("archive: export index: malformed log index of bundle %.80q", bundle)
	}
	return secondaryPrefix(fieldLogIndex, strconv.FormatUint(binary.BigEndian.Uint64(v), 10)), nil
}

// parseBundleRef reads the 'b' key of log index li.
func parseBundleRef(li uint64, v []byte) (bundleRef, error) {
	var j bundleRefJSON
	if err := json.Unmarshal(v, &j); err != nil || j.Bundle == "" {
		return bundleRef{}, fmt.Errorf("archive: export index: malformed bundle key of log index %d", li)
	}
	return bundleRef{digest: j.Bundle, object: j.Object, retainUntil: j.RetainUntil, acceptedAt: j.AcceptedAt, logIndex: li}, nil
}

// objectKey names the stored object of digest as its store does.
func (a *Archive) objectKey(digest [32]byte) string {
	if k, ok := a.objects.(interface{ Key([32]byte) string }); ok {
		return k.Key(digest)
	}
	h := hex.EncodeToString(digest[:])
	return "sha256/" + h
}

// bundleRecords reads the records of a stored bundle.
func bundleRecords(raw []byte, lim bundle.Limits) ([][]byte, error) {
	b, err := bundle.ReadBytes(raw, lim)
	if err != nil {
		return nil, err
	}
	return b.Records()
}

// BundleLimits are the bounds the archive reads bundles within.
func (a *Archive) BundleLimits() bundle.Limits { return a.opts.Limits }

// Receipt returns the signed receipt of an accepted bundle (ErrNotFound
// when the archive did not accept it).
func (a *Archive) Receipt(digest [32]byte) ([]byte, error) {
	acc, ok, err := a.acceptedOf(digest)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("archive: bundle sha256:%x: %w", digest, ErrNotFound)
	}
	return a.storedReceipt(acc)
}
