package custody

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/edgeseal/edgeseal/bundle/canonjson"
	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
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
	subs      [8]member
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

// fields runs field on each member in turn and stops at the first error.
func fields(ms []member, field func(member) error) error {
	for _, m := range ms {
		if err := field(m); err != nil {
			return err
		}
	}
	return nil
}

// count refuses an object of n members where want are required.
func count(n, want int) error {
	if n != want {
		return fmt.Errorf("%d fields, want %d", n, want)
	}
	return nil
}

// sub splits the object-valued member om into its members.
func (d *recDecoder) sub(om member) ([]member, error) {
	return members(d.subs[:0], om.Val, om.Off)
}

// prefixed names om's key in front of err, if any.
func prefixed(om member, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", om.Key, err)
	}
	return nil
}

// Each decoder below also checks the member count: keys are unique and
// unknown ones refused, so the count proves every required field present
// (and optional ones present only when not empty, as Marshal writes them).

func (d *recDecoder) wireRecord(ms []member, w *wireRecord) error {
	if err := count(len(ms), 8); err != nil {
		return err
	}
	return fields(ms, func(m member) error {
		switch string(m.Key) {
		case "actor":
			return d.actor(m, &w.Actor)
		case "body":
			if m.Val[0] != '{' {
				return fmt.Errorf("body is not an object")
			}
			w.Body = m.Val
			return nil
		case "device":
			return d.str(&w.Device, m)
		case "prev":
			return d.str(&w.Prev, m)
		case "time":
			return d.str(&w.Time, m)
		case "type":
			return d.str(&w.Type, m)
		case "seq":
			var err error
			w.Seq, err = decodeUint(m.Val)
			return err
		case "v":
			v, err := decodeInt(m.Val)
			w.V = int(v)
			return err
		}
		return unknown(m)
	})
}

func (d *recDecoder) actor(am member, a *Actor) error {
	ms, err := d.sub(am)
	if err == nil {
		err = fields(ms, func(m member) error {
			switch string(m.Key) {
			case "id":
				return d.str(&a.ID, m)
			case "kind":
				return d.str(&a.Kind, m)
			case "via":
				return d.str(&a.Via, m)
			}
			return unknown(m)
		})
	}
	if n := len(ms); err == nil && n != 2 && (n != 3 || a.Via == "") {
		err = fmt.Errorf("want id, kind and a non-empty via if any")
	}
	return prefixed(am, err)
}

func (d *recDecoder) export(ms []member, e *ExportBody) error {
	err := fields(ms, func(m member) error {
		switch string(m.Key) {
		case "app":
			return d.str(&e.App, m)
		case "classification":
			return d.str(&e.Classification, m)
		case "destination":
			return d.str(&e.Destination, m)
		case "exportId":
			return d.str(&e.ExportID, m)
		case "payload":
			return d.payloadRef(m, &e.Payload)
		case "payloadCipher":
			e.PayloadCipher = &payloadcipher.Cipher{}
			return d.payloadCipher(m, e.PayloadCipher)
		case "policy":
			return d.str(&e.Policy, m)
		case "purpose":
			return d.str(&e.Purpose, m)
		case "retention":
			return d.str(&e.Retention, m)
		case "schema":
			return d.str(&e.Schema, m)
		case "workflow":
			return d.str(&e.Workflow, m)
		}
		return unknown(m)
	})
	if err != nil {
		return err
	}
	if e.PayloadCipher != nil {
		return count(len(ms), 11)
	}
	return count(len(ms), 10)
}

func (d *recDecoder) payloadCipher(cm member, c *payloadcipher.Cipher) error {
	ms, err := d.sub(cm)
	if err == nil {
		err = fields(ms, func(m member) error {
			var p *int
			switch string(m.Key) {
			case "aead":
				p = &c.AEAD
			case "kdf":
				p = &c.KDF
			case "kem":
				p = &c.KEM
			case "digest":
				return d.str(&c.Digest, m)
			case "keyId":
				return d.str(&c.KeyID, m)
			case "v":
				v, err := decodeInt(m.Val)
				if err == nil && (v < 2 || v > 0xffff) {
					// Version 1 is written by leaving v out.
					return fmt.Errorf("version %d out of range", v)
				}
				c.V = int(v)
				return err
			default:
				return unknown(m)
			}
			v, err := decodeInt(m.Val)
			if err == nil && (v < 0 || v > 0xffff) {
				return fmt.Errorf("suite id %d out of range", v)
			}
			*p = int(v)
			return err
		})
	}
	if err == nil && c.V != 0 {
		err = count(len(ms), 6)
	} else if err == nil {
		err = count(len(ms), 5)
	}
	return prefixed(cm, err)
}

func (d *recDecoder) payloadRef(pm member, p *PayloadRef) error {
	ms, err := d.sub(pm)
	if err == nil {
		err = fields(ms, func(m member) error {
			switch string(m.Key) {
			case "canonicalization":
				return d.str(&p.Canonicalization, m)
			case "digest":
				return d.str(&p.Digest, m)
			case "mediaType":
				return d.str(&p.MediaType, m)
			case "size":
				var err error
				p.Size, err = decodeInt(m.Val)
				return err
			}
			return unknown(m)
		})
	}
	if err == nil {
		err = count(len(ms), 4)
	}
	return prefixed(pm, err)
}

func (d *recDecoder) rejected(ms []member, e *RejectedBody) error {
	err := fields(ms, func(m member) error {
		switch string(m.Key) {
		case "app":
			return d.str(&e.App, m)
		case "digest":
			return d.str(&e.Digest, m)
		case "exportId":
			return d.str(&e.ExportID, m)
		case "policy":
			return d.str(&e.Policy, m)
		case "reason":
			return d.str(&e.Reason, m)
		case "workflow":
			return d.str(&e.Workflow, m)
		}
		return unknown(m)
	})
	if err != nil {
		return err
	}
	if n := len(ms); n != 5 && (n != 6 || e.Digest == "") {
		return fmt.Errorf("want 5 fields and a non-empty digest if any")
	}
	return nil
}

func (d *recDecoder) purge(ms []member, p *PurgeBody) error {
	err := fields(ms, func(m member) error {
		switch string(m.Key) {
		case "payloads":
			return decodeStrings(&p.Payloads, m)
		case "reason":
			return d.str(&p.Reason, m)
		}
		return unknown(m)
	})
	if err != nil {
		return err
	}
	return count(len(ms), 2)
}

// decodeStrings decodes an array of strings, or null, into *dst; errors
// carry m's key as prefix.
func decodeStrings(dst *[]string, m member) error {
	if string(m.Val) == "null" {
		*dst = nil
		return nil
	}
	els, err := elements(m.Val)
	if err != nil {
		return fmt.Errorf("%s: %w", m.Key, err)
	}
	*dst = make([]string, len(els))
	for i, el := range els {
		if (*dst)[i], err = decodeString(el); err != nil {
			return fmt.Errorf("%s: %w", m.Key, err)
		}
	}
	return nil
}
