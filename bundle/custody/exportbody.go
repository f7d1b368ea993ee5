package custody

import (
	"strconv"
	"unicode/utf8"

	"github.com/edgeseal/edgeseal/bundle/canonjson"
	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// SetExportBody sets r's body to e in canonical form, written directly:
// the bytes SetBody(e) and Marshal's canonicalization give, without
// encoding/json and a parse (FuzzExportBodyCanonical holds them equal).
// Text that is not valid UTF-8 takes SetBody's path.
func (r *Record) SetExportBody(e *ExportBody) error {
	b, ok := e.appendCanonical(make([]byte, 0, e.formSize()))
	if !ok {
		r.canonBody = nil
		return r.SetBody(e)
	}
	r.Body, r.canonBody = b, b
	return nil
}

// bodyIsCanonical reports whether r.Body is still the canonical body
// SetExportBody wrote (the same bytes in the same place).
func (r *Record) bodyIsCanonical() bool {
	return len(r.canonBody) > 0 && len(r.Body) == len(r.canonBody) && &r.Body[0] == &r.canonBody[0]
}

// appendCanonical appends e as RFC 8785 writes it: members sorted by
// key (all ASCII here, so byte order), strings escaped as JSON.stringify
// does. ok is false when a text is not valid UTF-8 or the size is not an
// exact JSON integer.
func (e *ExportBody) appendCanonical(dst []byte) ([]byte, bool) {
	return e.appendForm(dst, true)
}

// Binding is the record's bound body that payloadcipher.Info hashes: the
// canonical export body with the member payloadCipher.digest left out
// (the ciphertext cannot name its own digest). It fails when e has no
// PayloadCipher or a text cannot be written canonically.
func (e *ExportBody) Binding() ([]byte, error) {
	if e.PayloadCipher == nil {
		return nil, wire.FormatErr("record", "export body without payloadCipher has no binding")
	}
	b, ok := e.appendForm(make([]byte, 0, e.formSize()), false)
	if !ok {
		return nil, wire.FormatErr("record", "export body is not canonical text")
	}
	return b, nil
}

// formSize is about the size of the canonical body, so that it is
// written into one allocation (text that needs escaping grows it).
func (e *ExportBody) formSize() int {
	p := &e.Payload
	n := 224 + len(e.App) + len(e.Classification) + len(e.Destination) + len(e.ExportID) + len(p.Canonicalization) +
		len(p.Digest) + len(p.MediaType) + len(e.Policy) + len(e.Purpose) + len(e.Retention) + len(e.Schema) + len(e.Workflow)
	if c := e.PayloadCipher; c != nil {
		n += 96 + len(c.KeyID) + len(c.Digest)
	}
	return n
}

// appendForm writes the canonical body; withDigest false leaves out
// payloadCipher.digest.
func (e *ExportBody) appendForm(dst []byte, withDigest bool) ([]byte, bool) {
	p := &e.Payload
	if c := e.PayloadCipher; c != nil && (!payloadcipher.ValidHash(c.KeyID) || withDigest && !payloadcipher.ValidHash(c.Digest) ||
		c.KEM < 0 || c.KDF < 0 || c.AEAD < 0 || c.V < 0 || int64(c.V) > maxJSONInt || int64(c.KEM) > maxJSONInt || int64(c.KDF) > maxJSONInt || int64(c.AEAD) > maxJSONInt) {
		return nil, false
	}
	for _, s := range [...]string{e.App, e.Classification, e.Destination, e.ExportID, p.Canonicalization,
		p.Digest, p.MediaType, e.Policy, e.Purpose, e.Retention, e.Schema, e.Workflow} {
		if !utf8.ValidString(s) {
			return nil, false
		}
	}
	if p.Size < 0 || p.Size > maxJSONInt {
		return nil, false
	}
	dst = append(dst, `{"app":`...)
	dst = canonjson.AppendString(dst, e.App)
	dst = append(dst, `,"classification":`...)
	dst = canonjson.AppendString(dst, e.Classification)
	dst = append(dst, `,"destination":`...)
	dst = canonjson.AppendString(dst, e.Destination)
	dst = append(dst, `,"exportId":`...)
	dst = canonjson.AppendString(dst, e.ExportID)
	dst = append(dst, `,"payload":{"canonicalization":`...)
	dst = canonjson.AppendString(dst, p.Canonicalization)
	dst = append(dst, `,"digest":`...)
	dst = canonjson.AppendString(dst, p.Digest)
	dst = append(dst, `,"mediaType":`...)
	dst = canonjson.AppendString(dst, p.MediaType)
	dst = append(dst, `,"size":`...)
	dst = strconv.AppendInt(dst, p.Size, 10)
	dst = append(dst, '}')
	if e.PayloadCipher != nil {
		dst = append(dst, `,"payloadCipher":`...)
		dst = e.PayloadCipher.AppendCanonical(dst, withDigest)
	}
	dst = append(dst, `,"policy":`...)
	dst = canonjson.AppendString(dst, e.Policy)
	dst = append(dst, `,"purpose":`...)
	dst = canonjson.AppendString(dst, e.Purpose)
	dst = append(dst, `,"retention":`...)
	dst = canonjson.AppendString(dst, e.Retention)
	dst = append(dst, `,"schema":`...)
	dst = canonjson.AppendString(dst, e.Schema)
	dst = append(dst, `,"workflow":`...)
	dst = canonjson.AppendString(dst, e.Workflow)
	return append(dst, '}'), true
}
