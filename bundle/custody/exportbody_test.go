package custody

import (
	"bytes"
	"testing"
	"time"
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
	if err != nil || *eb != e {
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
