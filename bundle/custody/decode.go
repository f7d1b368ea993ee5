package custody

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/edgeseal/edgeseal/bundle/canonjson"
	"github.com/edgeseal/edgeseal/internal/jsontok"
)

// A small decoder for JSON that canonjson.CheckMembers already accepted: no
// whitespace, well-formed, integers only. It replaces encoding/json on the
// hot path of record parsing. Callers still compare a re-encoding with the
// input, so a field that is missing or of the wrong shape is refused.

// member is a member of a record's object; Off is its offset in the
// record.
type member = canonjson.Member

// members splits a canonical object, at offset base in its record, into
// its members, appended to out.
func members(out []member, b []byte, base int) ([]member, error) {
	if len(b) < 2 || b[0] != '{' {
		return nil, fmt.Errorf("not an object")
	}
	i := 1
	if b[i] == '}' {
		return out, nil
	}
	for {
		kEnd, err := skipValue(b, i)
		if err != nil {
			return nil, err
		}
		key, err := decodeKey(b[i:kEnd])
		if err != nil {
			return nil, err
		}
		i = kEnd + 1 // ':'
		vEnd, err := skipValue(b, i)
		if err != nil {
			return nil, err
		}
		out = append(out, member{Key: key, Val: b[i:vEnd], Off: base + i})
		i = vEnd
		if i >= len(b) {
			return nil, fmt.Errorf("unexpected end")
		}
		if b[i] == '}' {
			return out, nil
		}
		i++ // ','
	}
}

// elements splits a canonical array.
func elements(b []byte) ([][]byte, error) {
	if len(b) < 2 || b[0] != '[' {
		return nil, fmt.Errorf("not an array")
	}
	var out [][]byte
	i := 1
	if b[i] == ']' {
		return [][]byte{}, nil
	}
	for {
		end, err := skipValue(b, i)
		if err != nil {
			return nil, err
		}
		out = append(out, b[i:end])
		i = end
		if i >= len(b) {
			return nil, fmt.Errorf("unexpected end")
		}
		if b[i] == ']' {
			return out, nil
		}
		i++
	}
}

// skipValue returns the end of the value starting at i (in a record
// canonjson.CheckMembers accepted).
func skipValue(b []byte, i int) (int, error) {
	return jsontok.End(b, i)
}

// decodeKey decodes a JSON string literal, returning a slice of raw when
// it holds no escape.
func decodeKey(raw []byte) ([]byte, error) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1], nil
	}
	return jsontok.Unquote(nil, raw, true)
}

// decodeString decodes a JSON string literal.
func decodeString(raw []byte) (string, error) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	s, err := jsontok.Unquote(make([]byte, 0, len(raw)), raw, true)
	return string(s), err
}

func decodeUint(raw []byte) (uint64, error) {
	return strconv.ParseUint(string(raw), 10, 64)
}

func decodeInt(raw []byte) (int64, error) {
	return strconv.ParseInt(string(raw), 10, 64)
}

// recDecoder decodes the members of a record that canonjson.CheckMembers
// accepted. Strings without escapes are cut from s, the record as a
// string, rather than copied one by one.
type recDecoder struct {
	s         string
	top, body [16]member
	sub       [8]member
}

// str decodes a string member into *dst, naming the key on error.
func (d *recDecoder) str(dst *string, m member) error {
	v := m.Val
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' && bytes.IndexByte(v, '\\') < 0 {
		*dst = d.s[m.Off+1 : m.Off+len(v)-1]
		return nil
	}
	v2, err := decodeString(m.Val)
	if err != nil {
		return fmt.Errorf("%s: %w", m.Key, err)
	}
	*dst = v2
	return nil
}

func unknown(m member) error { return fmt.Errorf("unknown field %.40q", m.Key) }

// Each decoder below also checks the member count: keys are unique and
// unknown ones refused, so the count proves every required field present
// (and optional ones present only when not empty, as Marshal writes them).

func (d *recDecoder) wireRecord(ms []member, w *wireRecord) error {
	var err error
	if len(ms) != 8 {
		return fmt.Errorf("%d fields, want 8", len(ms))
	}
	for _, m := range ms {
		switch string(m.Key) {
		case "actor":
			err = d.actor(m, &w.Actor)
		case "body":
			if m.Val[0] != '{' {
				err = fmt.Errorf("body is not an object")
			}
			w.Body = m.Val
		case "device":
			err = d.str(&w.Device, m)
		case "prev":
			err = d.str(&w.Prev, m)
		case "time":
			err = d.str(&w.Time, m)
		case "type":
			err = d.str(&w.Type, m)
		case "seq":
			w.Seq, err = decodeUint(m.Val)
		case "v":
			var v int64
			v, err = decodeInt(m.Val)
			w.V = int(v)
		default:
			err = unknown(m)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *recDecoder) actor(am member, a *Actor) error {
	ms, err := members(d.sub[:0], am.Val, am.Off)
	if err != nil {
		return fmt.Errorf("actor: %w", err)
	}
	for _, m := range ms {
		switch string(m.Key) {
		case "id":
			err = d.str(&a.ID, m)
		case "kind":
			err = d.str(&a.Kind, m)
		case "via":
			err = d.str(&a.Via, m)
		default:
			err = unknown(m)
		}
		if err != nil {
			return fmt.Errorf("actor: %w", err)
		}
	}
	if n := len(ms); n != 2 && (n != 3 || a.Via == "") {
		return fmt.Errorf("actor: want id, kind and a non-empty via if any")
	}
	return nil
}

func (d *recDecoder) export(ms []member, e *ExportBody) error {
	var err error
	for _, m := range ms {
		switch string(m.Key) {
		case "app":
			err = d.str(&e.App, m)
		case "classification":
			err = d.str(&e.Classification, m)
		case "destination":
			err = d.str(&e.Destination, m)
		case "exportId":
			err = d.str(&e.ExportID, m)
		case "payload":
			err = d.payloadRef(m, &e.Payload)
		case "policy":
			err = d.str(&e.Policy, m)
		case "purpose":
			err = d.str(&e.Purpose, m)
		case "retention":
			err = d.str(&e.Retention, m)
		case "schema":
			err = d.str(&e.Schema, m)
		case "workflow":
			err = d.str(&e.Workflow, m)
		default:
			err = unknown(m)
		}
		if err != nil {
			return err
		}
	}
	if len(ms) != 10 {
		return fmt.Errorf("%d fields, want 10", len(ms))
	}
	return nil
}

func (d *recDecoder) payloadRef(pm member, p *PayloadRef) error {
	ms, err := members(d.sub[:0], pm.Val, pm.Off)
	if err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	for _, m := range ms {
		switch string(m.Key) {
		case "canonicalization":
			err = d.str(&p.Canonicalization, m)
		case "digest":
			err = d.str(&p.Digest, m)
		case "mediaType":
			err = d.str(&p.MediaType, m)
		case "size":
			p.Size, err = decodeInt(m.Val)
		default:
			err = unknown(m)
		}
		if err != nil {
			return fmt.Errorf("payload: %w", err)
		}
	}
	if len(ms) != 4 {
		return fmt.Errorf("payload: %d fields, want 4", len(ms))
	}
	return nil
}

func (d *recDecoder) rejected(ms []member, e *RejectedBody) error {
	var err error
	for _, m := range ms {
		switch string(m.Key) {
		case "app":
			err = d.str(&e.App, m)
		case "digest":
			err = d.str(&e.Digest, m)
		case "exportId":
			err = d.str(&e.ExportID, m)
		case "policy":
			err = d.str(&e.Policy, m)
		case "reason":
			err = d.str(&e.Reason, m)
		case "workflow":
			err = d.str(&e.Workflow, m)
		default:
			err = unknown(m)
		}
		if err != nil {
			return err
		}
	}
	if n := len(ms); n != 5 && (n != 6 || e.Digest == "") {
		return fmt.Errorf("want 5 fields and a non-empty digest if any")
	}
	return nil
}

func (d *recDecoder) purge(ms []member, p *PurgeBody) error {
	var err error
	for _, m := range ms {
		switch string(m.Key) {
		case "payloads":
			if string(m.Val) == "null" {
				p.Payloads = nil
				continue
			}
			els, err := elements(m.Val)
			if err != nil {
				return fmt.Errorf("payloads: %w", err)
			}
			p.Payloads = make([]string, len(els))
			for i, el := range els {
				if p.Payloads[i], err = decodeString(el); err != nil {
					return fmt.Errorf("payloads: %w", err)
				}
			}
		case "reason":
			err = d.str(&p.Reason, m)
		default:
			err = unknown(m)
		}
		if err != nil {
			return err
		}
	}
	if len(ms) != 2 {
		return fmt.Errorf("%d fields, want 2", len(ms))
	}
	return nil
}
