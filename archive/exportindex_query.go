package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/store"
)

// Paging bounds (docs/archive-api.md "Paging").
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
	// maxScanKeys bounds the index keys one page reads.
	maxScanKeys = 10000
)

// ErrBadCursor: a cursor that is malformed or was made for another query.
var ErrBadCursor = errors.New("bad cursor")

// ExportQuery is a search of the export index; empty members match all.
type ExportQuery struct {
	Export, Device, Site, Workflow, App, Principal, Classification string
	Status, Reason, Bundle                                         string
	Case                                                           string // a legal-hold case holding the entry's bundle
	LogIndex                                                       *uint64
	From, To                                                       time.Time // To exclusive; zero: open
	Limit                                                          int       // 0: DefaultPageLimit
	Asc                                                            bool      // oldest first
	Cursor                                                         string
}

// Page is a page of results; Next is empty on the last page.
type Page[T any] struct {
	Items []T
	Next  string
}

// fingerprint names the query's parameters (not its cursor or limit).
func (q *ExportQuery) fingerprint() []byte {
	li := ""
	if q.LogIndex != nil {
		li = strconv.FormatUint(*q.LogIndex, 10)
	}
	return fingerprint("exports", q.Export, q.Device, q.Site, q.Workflow, q.App, q.Principal, q.Classification,
		q.Status, q.Reason, q.Bundle, li, q.Case, q.From.String(), q.To.String(), strconv.FormatBool(q.Asc))
}

func fingerprint(parts ...string) []byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write(comp(nil, p))
	}
	return h.Sum(nil)[:8]
}

// scanSpec is one walk of a time-ordered key range.
type scanSpec struct {
	prefix   []byte // field || value; then be64(time) || suffix
	from, to time.Time
	asc      bool
	limit    int
	cursor   string
	fp       []byte
	// match reads the key's item; ok false skips it.
	match func(key []byte) (ok bool, err error)
}

func encodeCursor(fp, key []byte) string {
	return base64.RawURLEncoding.EncodeToString(append(bytes.Clone(fp), key...))
}

// walk runs s over x: it returns when limit items matched (next: the last
// key), maxScanKeys keys were read (next: the last key), or the range
// ended (next empty).
func walk(ctx context.Context, x store.IndexStore, s scanSpec) (next string, err error) {
	lo := bytes.Clone(s.prefix)
	if !s.from.IsZero() {
		lo = binary.BigEndian.AppendUint64(lo, timeKey(s.from))
	}
	hi := store.PrefixEnd(s.prefix)
	if !s.to.IsZero() {
		hi = binary.BigEndian.AppendUint64(bytes.Clone(s.prefix), timeKey(s.to))
	}
	if s.cursor != "" {
		c, err := base64.RawURLEncoding.DecodeString(s.cursor)
		if err != nil || len(c) < 8 || !bytes.Equal(c[:8], s.fp) || !bytes.HasPrefix(c[8:], s.prefix) {
			return "", ErrBadCursor
		}
		last := c[8:]
		if s.asc {
			lo = append(bytes.Clone(last), 0) // the next key after last
		} else {
			hi = bytes.Clone(last)
		}
	}
	if s.limit <= 0 {
		s.limit = DefaultPageLimit
	}
	matched, seen := 0, 0
	var last []byte
	for {
		chunk := min(max(2*(s.limit-matched), 64), maxScanKeys-seen)
		var keys [][]byte
		if err := x.Scan(ctx, store.IndexRange{Lo: lo, Hi: hi, Reverse: !s.asc, Limit: chunk}, func(k, _ []byte) bool {
			keys = append(keys, bytes.Clone(k))
			return true
		}); err != nil {
			return "", err
		}
		for _, k := range keys {
			seen++
			last = k
			ok, err := s.match(k)
			if err != nil {
				return "", err
			}
			if ok {
				matched++
				if matched == s.limit {
					return encodeCursor(s.fp, last), nil
				}
			}
		}
		if len(keys) < chunk {
			return "", nil // the range ended
		}
		if seen >= maxScanKeys {
			return encodeCursor(s.fp, last), nil
		}
		if s.asc {
			lo = append(bytes.Clone(last), 0)
		} else {
			hi = last
		}
	}
}

// SearchExports searches the export index (see ExportQuery): it walks the
// secondary key of the most selective parameter given, between From and
// To, and filters on the others (a case by a point read of its key).
func (a *Archive) SearchExports(ctx context.Context, q ExportQuery) (Page[*ExportEntry], error) {
	var inCase caseFilter
	caseValue := ""
	if q.Case != "" {
		keyed, err := hasIndexKeys(ctx, a.xi.x)
		if err != nil {
			return Page[*ExportEntry]{}, err
		}
		if inCase, err = a.caseFilter(ctx, q.Case, keyed); err != nil {
			return Page[*ExportEntry]{}, err
		}
		if keyed {
			caseValue = caseKey(q.Case)
		}
	}
	field, value := byte(fieldTime), ""
	for _, c := range []struct {
		f byte
		v string
	}{
		{fieldExport, q.Export}, {fieldBundle, q.Bundle}, {fieldLogIndex, logIndexText(q.LogIndex)}, {fieldCase, caseValue}, {fieldPrincipal, q.Principal},
		{fieldDevice, q.Device}, {fieldWorkflow, q.Workflow}, {fieldApp, q.App}, {fieldClassification, q.Classification},
		{fieldReason, q.Reason}, {fieldSite, q.Site}, {fieldStatus, q.Status},
	} {
		if c.v != "" {
			field, value = c.f, c.v
			break
		}
	}
	var page Page[*ExportEntry]
	er := a.entryReader()
	if len(value) > maxKeyValue {
		return page, nil // no entry is keyed by a value this long
	}
	if field == fieldStatus && statusKeyed(value) == "" {
		field, value = fieldTime, "" // accepted exports: every entry, filtered
	}
	prefix := secondaryPrefix(field, value)
	if field == fieldBundle {
		var err error
		if prefix, err = bundleKeys(ctx, a.xi.x, value); err != nil {
			return page, err
		}
	}
	next, err := walk(ctx, a.xi.x, scanSpec{
		prefix: prefix, from: q.From, to: q.To, asc: q.Asc, limit: q.Limit, cursor: q.Cursor, fp: q.fingerprint(),
		match: func(k []byte) (bool, error) {
			pk, ok := pkOfSecondary(k)
			if !ok {
				return false, fmt.Errorf("archive: export index: malformed key %x", k)
			}
			e, _, err := er.entry(ctx, pk)
			if err != nil {
				return false, err
			}
			if !q.matches(e) {
				return false, nil
			}
			if inCase != nil && field != fieldCase {
				if ok, err := inCase(ctx, k, e); !ok || err != nil {
					return false, err
				}
			}
			page.Items = append(page.Items, e)
			return true, nil
		},
	})
	if err != nil {
		return Page[*ExportEntry]{}, err
	}
	page.Next = next
	return page, nil
}

func logIndexText(li *uint64) string {
	if li == nil {
		return ""
	}
	return strconv.FormatUint(*li, 10)
}

func (q *ExportQuery) matches(e *ExportEntry) bool {
	eq := func(want, got string) bool { return want == "" || want == got }
	return eq(q.Export, e.Export) && eq(q.Device, e.Device) && eq(q.Site, e.Site) && eq(q.Workflow, e.Workflow) &&
		eq(q.App, e.App) && eq(q.Principal, e.Principal) && eq(q.Classification, e.Classification) &&
		eq(q.Status, e.Status) && eq(q.Reason, e.Reason) && eq(q.Bundle, e.Bundle) &&
		(q.LogIndex == nil || (e.LogIndex != nil && *e.LogIndex == *q.LogIndex))
}

// entryReader reads index entries, remembering the bundle keys it read
// (a page's entries come from few bundles).
type entryReader struct {
	x    store.IndexStore
	refs map[uint64]bundleRef
}

func (a *Archive) entryReader() *entryReader {
	return &entryReader{x: a.xi.x, refs: map[uint64]bundleRef{}}
}

// entry reads the entry of primary key suffix pk; legacy: it is an
// earlier version's JSON entry (its record under 'r').
func (er *entryReader) entry(ctx context.Context, pk []byte) (e *ExportEntry, legacy bool, err error) {
	b, err := er.x.Get(ctx, append([]byte{kEntry}, pk...))
	if err != nil {
		return nil, false, fmt.Errorf("archive: export index: %w", err)
	}
	if len(b) > 0 && b[0] == '{' {
		var e ExportEntry
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, false, fmt.Errorf("archive: export index: entry: %w", err)
		}
		return &e, true, nil
	}
	if len(b) < 2 || b[0] != entryRecord || len(pk) < 16 {
		return nil, false, fmt.Errorf("archive: export index: malformed entry %x", pk)
	}
	li := binary.BigEndian.Uint64(pk[len(pk)-16:])
	ref, ok := er.refs[li]
	if !ok {
		v, err := er.x.Get(ctx, bundleRefKey(li))
		if err != nil {
			return nil, false, fmt.Errorf("archive: export index: bundle of log index %d: %w", li, err)
		}
		if ref, err = parseBundleRef(li, v); err != nil {
			return nil, false, err
		}
		er.refs[li] = ref
	}
	raw := b[1:]
	r, err := custody.ParseRecord(raw)
	if err == nil {
		e, err = entryFrom(r, raw, ref)
	}
	if err == nil && e == nil {
		err = errors.New("not an export record")
	}
	if err != nil {
		return nil, false, fmt.Errorf("archive: export index: entry %x: %w", pk, err)
	}
	return e, false, nil
}

// Export is the first index entry of device's export id (lowest log
// index and seq), its record, and how many other entries carry the same
// id; ErrNotFound when there is none.
func (a *Archive) Export(ctx context.Context, device, id string) (e *ExportEntry, record []byte, others int, err error) {
	prefix := append([]byte{kEntry}, comp(comp(nil, device), id)...)
	var first []byte
	n := 0
	err = a.xi.x.Scan(ctx, store.IndexRange{Lo: prefix, Hi: store.PrefixEnd(prefix), Limit: 1001}, func(k, _ []byte) bool {
		if n == 0 {
			first = bytes.Clone(k)
		}
		n++
		return true
	})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("archive: export index: %w", err)
	}
	if n == 0 {
		return nil, nil, 0, fmt.Errorf("archive: export %s %.100q: %w", device, id, ErrNotFound)
	}
	pk := first[1:]
	e, legacy, err := a.entryReader().entry(ctx, pk)
	if err != nil {
		return nil, nil, 0, err
	}
	if !legacy {
		return e, e.raw, n - 1, nil
	}
	if record, err = a.xi.x.Get(ctx, append([]byte{kRecord}, pk...)); err != nil {
		return nil, nil, 0, fmt.Errorf("archive: export index: record: %w", err)
	}
	return e, record, n - 1, nil
}

// DeviceSummaries are the export index's summaries by device.
func (a *Archive) DeviceSummaries(ctx context.Context) (map[string]DeviceSummary, error) {
	out := map[string]DeviceSummary{}
	var ferr error
	err := a.xi.x.Scan(ctx, store.IndexRange{Lo: []byte{kDevice}, Hi: []byte{kDevice + 1}}, func(k, v []byte) bool {
		dev, _, ok := readComp(k[1:])
		var s DeviceSummary
		if !ok || json.Unmarshal(v, &s) != nil {
			ferr = fmt.Errorf("archive: export index: malformed device summary %x", k)
			return false
		}
		out[dev] = s
		return true
	})
	if err == nil {
		err = ferr
	}
	return out, err
}

// StatsBy are the groupings of Stats.
var StatsBy = []string{"status", "reason", "workflow", "principal", "device", "classification"}

// maxStatKeys bounds the counters one Stats call reads.
const maxStatKeys = 100000

// DayCounts are the counts of one UTC day.
type DayCounts struct {
	Day    string            `json:"day"`
	Counts map[string]uint64 `json:"counts"`
}

// ExportStats returns the counts of index entries per day in [from, to] (UTC
// days) grouped by by (one of StatsBy); truncated when more than
// maxStatKeys counters lie in the range.
func (a *Archive) ExportStats(ctx context.Context, by string, from, to time.Time) (days []DayCounts, truncated bool, err error) {
	pfx := comp([]byte{kStat}, by)
	lo := comp(bytes.Clone(pfx), from.UTC().Format(time.DateOnly))
	hi := store.PrefixEnd(comp(bytes.Clone(pfx), to.UTC().Format(time.DateOnly)))
	n := 0
	err = a.xi.x.Scan(ctx, store.IndexRange{Lo: lo, Hi: hi, Limit: maxStatKeys + 1}, func(k, v []byte) bool {
		n++
		if n > maxStatKeys {
			truncated = true
			return false
		}
		day, rest, ok1 := readComp(k[len(pfx):])
		val, _, ok2 := readComp(rest)
		if !ok1 || !ok2 || len(v) != 8 {
			return true
		}
		if len(days) == 0 || days[len(days)-1].Day != day {
			days = append(days, DayCounts{Day: day, Counts: map[string]uint64{}})
		}
		days[len(days)-1].Counts[val] += binary.BigEndian.Uint64(v)
		return true
	})
	return days, truncated, err
}
