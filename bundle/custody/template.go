package custody

import (
	"bytes"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/edgeseal/edgeseal/bundle/wire"
)

// RecordTemplate is a record marshalled once, before its place in the
// journal is known: Build splices in the seq, prev and time. The
// journal's sequencer calls Build for each record in order (so times
// can be taken in sequence order), the canonical encoding and its checks
// run outside it, and Build only copies bytes.
type RecordTemplate struct {
	head []byte // up to and including `"prev":"sha256:`
	tail []byte // from the quote closing the time to the end
}

// Template marshals r (its Seq, Prev and Time are ignored) and returns
// the template of its records. The bytes Build returns are those Marshal
// returns for r with that Seq, Prev and Time.
func (r *Record) Template() (*RecordTemplate, error) {
	c := *r
	c.Seq, c.Prev, c.Time = 0, [32]byte{}, time.Unix(0, 0)
	full, err := c.Marshal()
	if err != nil {
		return nil, err
	}
	// The record's last keys in canonical (sorted) order are prev, seq,
	// time, type and v; body and actor come before. The last occurrence
	// of this marker is therefore the top-level prev.
	marker := []byte(`"prev":"` + wire.HashPrefix + zeroHex + `","seq":0,"time":"` + epochText + `"`)
	i := bytes.LastIndex(full, marker)
	if i < 0 {
		return nil, wire.FormatErr("record", "template: prev and seq not where canonical order puts them")
	}
	headLen := i + len(`"prev":"`+wire.HashPrefix)
	t := &RecordTemplate{
		head: full[:headLen:headLen],
		tail: full[i+len(marker)-1:],
	}
	return t, nil
}

const (
	zeroHex   = "0000000000000000000000000000000000000000000000000000000000000000"
	epochText = "1970-01-01T00:00:00.000000Z"
)

// Build returns the record's canonical bytes at seq with prev and time
// at. A seq beyond 2^53 (not an exact JSON number) or a time outside the
// years 0-9999 is refused like Marshal does.
func (t *RecordTemplate) Build(seq uint64, prev [32]byte, at time.Time) ([]byte, error) {
	if seq > maxJSONInt {
		return nil, wire.FormatErr("record", "seq %d beyond 2^53", seq)
	}
	ts := wire.FormatTime(at)
	if _, err := wire.ParseTime(ts); err != nil {
		return nil, wire.FormatErr("time", "%.40q is not RFC 3339 UTC with microseconds", ts)
	}
	out := make([]byte, 0, len(t.head)+64+len(`","seq":`)+20+len(`,"time":"`)+len(ts)+len(t.tail))
	out = append(out, t.head...)
	out = hex.AppendEncode(out, prev[:])
	out = append(out, `","seq":`...)
	out = strconv.AppendUint(out, seq, 10)
	out = append(out, `,"time":"`...)
	out = append(out, ts...)
	out = append(out, t.tail...)
	return out, nil
}
