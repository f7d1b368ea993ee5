package custody

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/wire"
)

func templateRecord(t testing.TB, typ string, body any) Record {
	t.Helper()
	r := Record{Type: typ, Time: time.Date(2026, 11, 26, 4, 0, 0, 123456000, time.UTC),
		Device: "site-a/dev-1", Actor: Actor{Kind: "principal", ID: "n8n", Via: "api"}}
	if err := r.SetBody(body); err != nil {
		t.Fatal(err)
	}
	return r
}

// Build gives Marshal's bytes, whatever the body holds, including text
// that looks like the record's own prev and seq.
func TestTemplateBuildEqualsMarshal(t *testing.T) {
	tricky := `"prev":"sha256:` + zeroHex + `","seq":0,"time":`
	bodies := []struct {
		typ  string
		body any
	}{
		{TypeExportRejected, RejectedBody{ExportID: "e-1", App: "n8n", Workflow: "wf", Policy: wire.FormatHash([32]byte{1}), Reason: "schema: data.temperature: want number"}},
		{TypeExportRejected, RejectedBody{ExportID: "e-2", App: "a", Workflow: "w", Policy: wire.FormatHash([32]byte{2}), Reason: tricky}},
		{TypeSeal, map[string]any{"prev": "sha256:" + zeroHex, "seq": 0, "time": "x", "nested": map[string]any{"prev": tricky}}},
		{TypeExportRejected, RejectedBody{ExportID: "ü-€-\u2028", App: "<&>", Workflow: "\t\n", Policy: wire.FormatHash([32]byte{3}), Reason: "\x01\u007f"}},
	}
	for i, c := range bodies {
		r := templateRecord(t, c.typ, c.body)
		tpl, err := r.Template()
		if err != nil {
			t.Fatalf("case %d: template: %v", i, err)
		}
		for _, seq := range []uint64{0, 1, 9, 10, 12345, 1<<53 - 1} {
			prev := sha256.Sum256(fmt.Appendf(nil, "%d/%d", i, seq))
			if seq == 0 {
				prev = [32]byte{}
			}
			r.Seq, r.Prev, r.Time = seq, prev, time.Unix(int64(seq%4e9), int64(seq%1e9))
			want, err := r.Marshal()
			if err != nil {
				t.Fatalf("case %d seq %d: marshal: %v", i, seq, err)
			}
			got, err := tpl.Build(seq, prev, r.Time)
			if err != nil {
				t.Fatalf("case %d seq %d: build: %v", i, seq, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("case %d seq %d:\nbuild   %s\nmarshal %s", i, seq, got, want)
			}
		}
	}
	r := templateRecord(t, TypeSeal, map[string]any{})
	tpl, _ := r.Template()
	if _, err := tpl.Build(1<<53, [32]byte{}, time.Now()); err == nil {
		t.Fatal("seq beyond 2^53 built")
	}
	if _, err := tpl.Build(1, [32]byte{}, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)); err == nil {
		t.Fatal("year 10000 built")
	}
}

// An invalid record has no template, with Marshal's error.
func TestTemplateRefusesInvalidRecord(t *testing.T) {
	r := templateRecord(t, TypeSeal, map[string]any{})
	r.Type = "no-such-type"
	if _, err := r.Template(); err == nil {
		t.Fatal("template of an unknown type")
	}
}

func FuzzRecordTemplate(f *testing.F) {
	f.Add("reason", "e-1", uint64(7), []byte{1, 2, 3})
	f.Add(`"prev":"sha256:`+zeroHex+`","seq":0,"time":`, "x", uint64(0), []byte{})
	f.Fuzz(func(t *testing.T, reason, id string, seq uint64, prevSeed []byte) {
		r := Record{Type: TypeExportRejected, Time: time.Unix(1790000000, 0), Device: "s/d", Actor: Actor{Kind: "agent", ID: id}}
		if err := r.SetBody(RejectedBody{ExportID: id, App: "a", Workflow: "w", Policy: wire.FormatHash([32]byte{}), Reason: reason}); err != nil {
			return
		}
		tpl, terr := r.Template()
		r.Seq, r.Prev = seq%(1<<53+2), sha256.Sum256(prevSeed)
		r.Time = time.Unix(int64(seq%(1<<40)), int64(seq%1e9)).UTC()
		want, merr := r.Marshal()
		if terr != nil {
			if merr == nil && r.Seq <= maxJSONInt {
				t.Fatalf("template failed (%v) where marshal works", terr)
			}
			return
		}
		got, berr := tpl.Build(r.Seq, r.Prev, r.Time)
		if (berr == nil) != (merr == nil) {
			t.Fatalf("build err %v, marshal err %v", berr, merr)
		}
		if merr == nil && !bytes.Equal(got, want) {
			t.Fatalf("build %q\nmarshal %q", got, want)
		}
	})
}

func ExampleRecordTemplate() {
	r := Record{Type: TypeSeal, Time: time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC), Device: "site/dev", Actor: Actor{Kind: "agent", ID: "k1"}}
	_ = r.SetBody(map[string]int{"size": 3})
	tpl, _ := r.Template()
	rec, _ := tpl.Build(2, [32]byte{0xab}, time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC))
	fmt.Println(string(rec))
	// Output:
	// {"actor":{"id":"k1","kind":"agent"},"body":{"size":3},"device":"site/dev","prev":"sha256:ab00000000000000000000000000000000000000000000000000000000000000","seq":2,"time":"2026-11-26T04:00:00.000000Z","type":"seal","v":1}
}
