package policy

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

func FuzzParse(f *testing.F) {
	m := exampleFS(f)
	m["x.json"] = &fstest.MapFile{Data: []byte(`{"$ref": "schemas/common.json#/$defs/party"}`)}
	f.Add(m["policy.yaml"].Data)
	f.Add(policyDoc("  s@1: x.json\n", okWF))
	f.Add(policyDoc("  s@1: schemas/invoice-1.json\n", okWF+"    media_types: [application/json, text/*]\n"))
	f.Add([]byte(`{"version":1,"workflows":[{"name":"a","classifications":["c"],"retention":"r","destinations":["d"],"principals":["p"],"max_size":1}]}`))
	f.Add([]byte("version: 1\nworkflows: &w\n  - *w\n"))
	f.Add([]byte("---\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, m)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || p != nil {
				t.Fatalf("Parse = %v, %v; want nil and a *policy.Error", p, err)
			}
			return
		}
		if d := p.Digest(); len(d) != len("sha256:")+64 || !strings.HasPrefix(d, "sha256:") {
			t.Fatalf("bad digest %q", d)
		}
		for _, name := range p.Workflows() {
			w, ok := p.Workflow(name)
			if !ok || w.MaxSize <= 0 || len(w.Principals) == 0 || len(w.Classifications) == 0 || len(w.Destinations) == 0 {
				t.Fatalf("accepted workflow %q breaks its invariants: %+v", name, w)
			}
			req := Request{Principal: w.Principals[0], Workflow: name, Classification: w.Classifications[0],
				Destination: w.Destinations[0], MediaType: "application/json", Data: []byte(`{}`)}
			if err := p.Check(req); err != nil {
				var v *Violation
				if !errors.As(err, &v) {
					t.Fatalf("Check = %v (%T), want nil or a *Violation", err, err)
				}
			}
		}
	})
}

func FuzzCheck(f *testing.F) {
	p := loadExample(f)
	for _, s := range []string{goodInvoice, `{}`, `[]`, `{"a":1,"a":2}`, `{"lines":[{"qty":"x"}]}`, "\"\xff\"", `1e999`, `{"total": -0.0}`, `[[[[[]]]]]`, `{"~/":{"":null}}`, `"\ud800\u00e9\"\n"`, `-0.5e-3`, `1e-999999`, `[1,]`, ` {"a" : [ true , false , null ] } `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := p.Check(invoice(func(r *Request) { r.Data, r.Size = data, int64(len(data)) }))
		if err != nil {
			var v *Violation
			if !errors.As(err, &v) || (v.Rule != RuleSchemaViolation && v.Rule != RuleTooLarge) {
				t.Fatalf("Check = %v (%T), want nil or a schema_violation or too_large", err, err)
			}
			if v.Rule == RuleSchemaViolation && !strings.HasPrefix(v.Message, `at "`) {
				t.Fatalf("message %q names no JSON pointer", v.Message)
			}
		} else if !json.Valid(data) {
			t.Fatalf("invalid JSON %q passed", data)
		}

		// Where our strict reader accepts data, encoding/json reads the same
		// value; where it refuses valid JSON, it is for one of its own limits.
		v, err := decodeJSON(data)
		if err != nil && json.Valid(data) {
			ok := false
			for _, why := range []string{"repeated", "nested deeper", "number", "UTF-8"} {
				ok = ok || strings.Contains(err.Error(), why)
			}
			if !ok {
				t.Fatalf("decodeJSON refused valid JSON %q: %v", data, err)
			}
		}
		if err == nil {
			if !json.Valid(data) {
				t.Fatalf("decodeJSON accepted invalid JSON %q", data)
			}
			if want := decodeStd(t, data); !jsonEqual(v, want) {
				t.Fatalf("decodeJSON(%q) = %#v, encoding/json %#v", data, v, want)
			}
		}
	})
}
