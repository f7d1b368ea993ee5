package custody

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
)

// sameExportRecord fails t unless a record with body e marshals to the
// same bytes (or the same refusal) through SetExportBody as through
// SetBody and canonicalization.
func sameExportRecord(t *testing.T, e ExportBody) {
	t.Helper()
	r := Record{Seq: 7, Type: TypeExport, Time: time.Date(2026, 11, 26, 8, 0, 0, 123456000, time.UTC),
		Device: "site/dev-1", Actor: Actor{Kind: "principal", ID: "p", Via: "api"}}
	slow, fast := r, r
	if err := slow.SetBody(e); err != nil {
		t.Fatal(err)
	}
	if err := fast.SetExportBody(&e); err != nil {
		t.Fatal(err)
	}
	want, werr := slow.Marshal()
	got, gerr := fast.Marshal()
	if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
		t.Fatalf("SetExportBody gives %q (%v), SetBody %q (%v)", got, gerr, want, werr)
	}
	if werr != nil {
		return
	}
	// And the record parses back to the same body (invalid UTF-8 became
	// U+FFFD on both paths).
	if _, valid := e.appendCanonical(nil); !valid {
		return
	}
	back, err := ParseRecord(got)
	if err != nil {
		t.Fatalf("%q does not parse: %v", got, err)
	}
	eb, err := back.ExportBody()
	if err != nil || !reflect.DeepEqual(*eb, e) {
		t.Fatalf("parsed back %+v (%v), want %+v", eb, err, e)
	}
}

func TestExportBodyCanonical(t *testing.T) {
	base := ExportBody{ExportID: "e-1", App: "app", Workflow: "wf", Purpose: "audit", Schema: "rec@1",
		Classification: "internal", Retention: "7y", Destination: "archive", Policy: "sha256:" + zeroHex,
		Payload: PayloadRef{Digest: "sha256:" + zeroHex, Size: 1024, MediaType: "application/json", Canonicalization: "none"}}
	for _, mod := range []func(*ExportBody){
		func(*ExportBody) {},
		func(e *ExportBody) { e.App = `<a href="x">&amp;</a>` },
		func(e *ExportBody) { e.Purpose = "tab\there\nnew \u2028 \u00e9 \U0001F600 \x01 \x7f \\ \"" },
		func(e *ExportBody) { e.Destination = "bad \xff utf8" },
		func(e *ExportBody) { e.Payload.Size = 0 },
		func(e *ExportBody) { e.Payload.Size = maxJSONInt },
		func(e *ExportBody) { e.Payload.Size = maxJSONInt + 1 },
		func(e *ExportBody) { e.Payload.Size = -1 },
		func(e *ExportBody) { *e = ExportBody{} },
		func(e *ExportBody) { e.PayloadCipher = testCipher() },
		func(e *ExportBody) { e.PayloadCipher = testCipher(); e.PayloadCipher.KEM = 0xffff },
		func(e *ExportBody) { e.PayloadCipher = testCipher(); e.PayloadCipher.V = payloadcipher.V2 },
		func(e *ExportBody) { e.PayloadCipher = testCipher(); e.PayloadCipher.V = 0xffff },
	} {
		e := base
		mod(&e)
		sameExportRecord(t, e)
	}
}

// FuzzExportBodyCanonical: the direct encoding of an export body is the
// canonical encoding of its JSON.
func FuzzExportBodyCanonical(f *testing.F) {
	f.Add("e-1", "app", "wf", "p", "rec@1", "c", "r", "d", "application/json", int64(12))
	f.Add("<&>", "\u2028", "\xff", "\x00", "\"\\", "é", "😀", "", "text/csv; a=b", int64(-5))
	f.Fuzz(func(t *testing.T, id, app, wf, purpose, schema, class, ret, dest, mt string, size int64) {
		sameExportRecord(t, ExportBody{ExportID: id, App: app, Workflow: wf, Purpose: purpose, Schema: schema,
			Classification: class, Retention: ret, Destination: dest, Policy: "sha256:" + zeroHex,
			Payload: PayloadRef{Digest: "sha256:" + zeroHex, Size: size, MediaType: mt, Canonicalization: "none"}})
	})
}

func testCipher() *payloadcipher.Cipher {
	return &payloadcipher.Cipher{KEM: payloadcipher.KEMMLKEM768X25519, KDF: 1, AEAD: 2,
		KeyID: "sha256:" + strings.Repeat("ab", 32), Digest: "sha256:" + strings.Repeat("cd", 32)}
}

// TestExportBodyBinding: the binding is the canonical body without
// payloadCipher.digest, and a record whose payloadCipher lacks a member,
// has one more or a bad hash is refused.
func TestExportBodyBinding(t *testing.T) {
	e := ExportBody{ExportID: "e-1", App: "app", Policy: "sha256:" + zeroHex,
		Payload: PayloadRef{Digest: "sha256:" + zeroHex, Size: 3, Canonicalization: "none"}, PayloadCipher: testCipher()}
	b, err := e.Binding()
	if err != nil {
		t.Fatal(err)
	}
	full, _ := e.appendCanonical(nil)
	if want := strings.Replace(string(full), `"digest":"`+e.PayloadCipher.Digest+`",`, "", 1); string(b) != want {
		t.Fatalf("binding %s, want %s", b, want)
	}
	if _, err := (&ExportBody{}).Binding(); err == nil {
		t.Fatal("a binding without payloadCipher")
	}
	r := Record{Seq: 0, Type: TypeExport, Time: time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC),
		Device: "site/dev-1", Actor: Actor{Kind: "principal", ID: "p"}}
	if err := r.SetExportBody(&e); err != nil {
		t.Fatal(err)
	}
	good, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseRecord(good); err != nil {
		t.Fatalf("a record with payloadCipher: %v", err)
	}
	for name, bad := range map[string]string{
		"no keyId":   strings.Replace(string(good), `,"keyId":"`+e.PayloadCipher.KeyID+`"`, "", 1),
		"extra":      strings.Replace(string(good), `{"aead":2,`, `{"aead":2,"alg":1,`, 1),
		"bad digest": strings.Replace(string(good), e.PayloadCipher.Digest, "sha256:00", 1),
		"big id":     strings.Replace(string(good), `"kem":25722`, `"kem":65536`, 1),
		// Version 1 leaves v out: an explicit 1 (or 0) is a second
		// encoding of it.
		"v 1":   strings.Replace(string(good), `"keyId":"`+e.PayloadCipher.KeyID+`"`, `"keyId":"`+e.PayloadCipher.KeyID+`","v":1`, 1),
		"v 0":   strings.Replace(string(good), `"keyId":"`+e.PayloadCipher.KeyID+`"`, `"keyId":"`+e.PayloadCipher.KeyID+`","v":0`, 1),
		"v big": strings.Replace(string(good), `"keyId":"`+e.PayloadCipher.KeyID+`"`, `"keyId":"`+e.PayloadCipher.KeyID+`","v":65536`, 1),
		"v str": strings.Replace(string(good), `"keyId":"`+e.PayloadCipher.KeyID+`"`, `"keyId":"`+e.PayloadCipher.KeyID+`","v":"2"`, 1),
	} {
		if _, err := ParseRecord([]byte(bad)); err == nil {
			t.Errorf("%s: accepted %s", name, bad)
		}
	}
	// Version 2 names itself in the bound body and the record.
	e.PayloadCipher.V = payloadcipher.V2
	b2, err := e.Binding()
	if err != nil || !strings.Contains(string(b2), `,"v":2}`) || string(b2) == string(b) {
		t.Fatalf("version 2 binding %s: %v", b2, err)
	}
	if err := r.SetExportBody(&e); err != nil {
		t.Fatal(err)
	}
	v2, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	pr, err := ParseRecord(v2)
	if err != nil {
		t.Fatalf("a record with payloadCipher version 2: %v", err)
	}
	if pe, _ := pr.ExportBody(); pe.PayloadCipher.Version() != 2 {
		t.Fatalf("parsed version %d", pe.PayloadCipher.Version())
	}
	// An unknown version parses (it is refused by name where the
	// ciphertext is checked, payload.cipher).
	if _, err := ParseRecord([]byte(strings.Replace(string(v2), `"v":2`, `"v":3`, 1))); err != nil {
		t.Fatalf("a record naming version 3: %v", err)
	}
}
