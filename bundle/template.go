package bundle

import (
	"bytes"
	"encoding/hex"
	"strconv"
)

// RecordTemplate is a record marshalled once, before its place in the
// journal is known: Build splices in the seq and prev. The journal's
// sequencer calls Build for each record in order, so the canonical
// encoding and its checks run outside it, and Build only copies bytes.
type RecordTemplate struct {
	head []byte // up to and including `"prev":"sha256:`
	tail []byte // from `,"time":` to the end
}

// Template marshals r (its Seq and Prev are ignored) and returns the
// template of its records. The bytes Build returns are those Marshal
// returns for r with that Seq and Prev.
func (r *Record) Template() (*RecordTemplate, error) {
	c := *r
	c.Seq, c.Prev = 0, [32]byte{}
	full, err := c.Marshal()
	if err != nil {
		return nil, err
	}
	// The record's last keys in canonical (sorted) order are prev, seq,
	// time, type and v; body and actor come before. The last occurrence
	// of this marker is therefore the top-level prev.
	marker := []byte(`"prev":"` + HashPrefix + zeroHex + `","seq":0,"time":`)
	i := bytes.LastIndex(full, marker)
	if i < 0 {
		return nil, formatErr("record", "template: prev and seq not where canonical order puts them")
	}
	headLen := i + len(`"prev":"`+HashPrefix)
	t := &RecordTemplate{
		head: full[:headLen:headLen],
		tail: full[i+len(marker)-len(`,"time":`):],
	}
	return t, nil
}

const zeroHex = "0000000000000000000000000000000000000000000000000000000000000000"

// Build returns the record's canonical bytes at seq with prev. A seq
// beyond 2^53 (not an exact JSON number) is refused like Marshal does.
func (t *RecordTemplate) Build(seq uint64, prev [32]byte) ([]byte, error) {
	if seq > maxJSONInt {
		return nil, formatErr("record", "seq %d beyond 2^53", seq)
	}
	out := make([]byte, 0, len(t.head)+64+len(`","seq":`)+20+len(t.tail))
	out = append(out, t.head...)
	out = hex.AppendEncode(out, prev[:])
	out = append(out, `","seq":`...)
	out = strconv.AppendUint(out, seq, 10)
	out = append(out, t.tail...)
	return out, nil
}
