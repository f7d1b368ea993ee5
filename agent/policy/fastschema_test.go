package policy

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// compileOne compiles schema doc as the policy does (draft 2020-12 by
// default, formats asserted).
func compileOne(t testing.TB, doc string) (*jsonschema.Schema, error) {
	t.Helper()
	fsys := fstest.MapFS{"s.json": &fstest.MapFile{Data: []byte(doc)}}
	out, _, err := compile(file{Schemas: map[string]string{"s@1": "s.json"}}, fsys)
	if err != nil {
		return nil, err
	}
	return out["s@1"], nil
}

const recordSchema = `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",
 "required":["id","blob"],"additionalProperties":false,
 "properties":{"id":{"type":"string"},"blob":{"type":"string"}}}`

const nestedSchema = `{"title":"reading batch","type":"object","required":["site","readings"],
 "properties":{"site":{"type":"string","description":"where"},
  "readings":{"type":"array","items":{"type":"object","required":["at","value"],
   "properties":{"at":{"type":"string"},"value":{"type":["number","null"]},"n":{"type":"integer"},"ok":{"type":"boolean"}},
   "additionalProperties":{"type":"string"}}},
  "extra":true,"never":false}}`

// TestFastSchemaSubset: schemas of only type, properties, required,
// additionalProperties, items and annotations have a fast form; any other
// keyword, another draft or a $ref leaves validation to the library.
func TestFastSchemaSubset(t *testing.T) {
	for _, c := range []struct {
		doc  string
		fast bool
	}{
		{recordSchema, true},
		{nestedSchema, true},
		{`{}`, true},
		{`true`, true},
		{`{"type":"string","format":"date-time"}`, false},
		{`{"type":"string","pattern":"^a"}`, false},
		{`{"type":"string","maxLength":3}`, false},
		{`{"enum":[1,2]}`, false},
		{`{"const":1}`, false},
		{`{"$ref":"#/$defs/a","$defs":{"a":{"type":"string"}}}`, false},
		{`{"$schema":"http://json-schema.org/draft-07/schema#","type":"object"}`, false},
		{`{"type":"object","properties":{"a":{"$schema":"https://json-schema.org/draft/2020-12/schema"}}}`, false},
		{`{"type":"array","items":false}`, false},
		{`{"type":"array","prefixItems":[{"type":"string"}]}`, false},
		{`{"type":"object","patternProperties":{"^a":{"type":"string"}},"additionalProperties":false}`, false},
		{`{"type":"object","properties":{"a":{"minimum":1}}}`, false},
		{`{"allOf":[{"type":"object"}]}`, false},
	} {
		if _, err := compileOne(t, c.doc); err != nil {
			t.Fatalf("%s: does not compile: %v", c.doc, err)
		}
		if got := newFastSchema([]byte(c.doc)) != nil; got != c.fast {
			t.Errorf("%s: fast form %v, want %v", c.doc, got, c.fast)
		}
	}
}

// TestFastSchemaAgrees: on values the fast form judges, it says valid
// exactly where the library does, except that it leaves integers written
// with a fraction or an exponent to the library (never valid where the
// library is not).
func TestFastSchemaAgrees(t *testing.T) {
	cases := map[string][]struct {
		data  string
		valid bool // the library's verdict
		sure  bool // the fast form says valid
	}{
		recordSchema: {
			{`{"id":"1","blob":"xx"}`, true, true},
			{`{"blob":"xx","id":"\u00e9"}`, true, true},
			{`{"id":"1"}`, false, false},
			{`{"id":1,"blob":"x"}`, false, false},
			{`{"id":"1","blob":"x","more":null}`, false, false},
			{`[]`, false, false},
			{`"x"`, false, false},
		},
		nestedSchema: {
			{`{"site":"a","readings":[]}`, true, true},
			{`{"site":"a","readings":[{"at":"t","value":1.5,"n":3,"ok":true,"note":"x"}],"extra":{"z":[1]}}`, true, true},
			{`{"site":"a","readings":[{"at":"t","value":null}]}`, true, true},
			{`{"site":"a","readings":[{"at":"t","value":"1"}]}`, false, false},
			{`{"site":"a","readings":[{"at":"t","value":1,"n":1.0}]}`, true, false}, // integer 1.0: the library's
			{`{"site":"a","readings":[{"at":"t","value":1,"n":1e2}]}`, true, false},
			{`{"site":"a","readings":[{"at":"t","value":1,"n":1.5}]}`, false, false},
			{`{"site":"a","readings":[{"at":"t","value":1,"note":2}]}`, false, false},
			{`{"site":"a","readings":[{"at":"t"}]}`, false, false},
			{`{"site":"a","readings":{}}`, false, false},
			{`{"site":"a","readings":[],"never":0}`, false, false},
			{`{"readings":[]}`, false, false},
		},
	}
	for doc, values := range cases {
		sch, err := compileOne(t, doc)
		if err != nil {
			t.Fatal(err)
		}
		fast := newFastSchema([]byte(doc))
		if fast == nil {
			t.Fatalf("%s: no fast form", doc)
		}
		for _, c := range values {
			v, err := decodeJSON([]byte(c.data))
			if err != nil {
				t.Fatalf("%s: %v", c.data, err)
			}
			if lib := sch.Validate(v) == nil; lib != c.valid {
				t.Fatalf("%s: library says valid=%v, case says %v", c.data, lib, c.valid)
			}
			if got := fast.valid(v); got != c.sure {
				t.Errorf("%s under %.40s: fast says %v, want %v", c.data, doc, got, c.sure)
			}
		}
	}
}

// TestCheckFastSchemaMessages: a workflow whose schema has a fast form
// accepts valid data, and refuses invalid data with the library's
// message.
func TestCheckFastSchemaMessages(t *testing.T) {
	fsys := fstest.MapFS{"record-1.json": &fstest.MapFile{Data: []byte(recordSchema)}}
	p, err := Parse([]byte(`version: 1
name: t
schemas:
  record@1: record-1.json
workflows:
  - name: records
    schema: record@1
    classifications: [internal]
    retention: ops-2y
    destinations: [archive]
    principals: [bench]
    max_size: 65536
`), fsys)
	if err != nil {
		t.Fatal(err)
	}
	if w := p.workflows["records"]; w.fast == nil {
		t.Fatal("the record schema has no fast form")
	}
	req := Request{Principal: "bench", Workflow: "records", Classification: "internal", Destination: "archive", MediaType: "application/json"}
	req.Data = []byte(`{"id":"1","blob":"x"}`)
	if err := p.Check(req); err != nil {
		t.Fatalf("valid record refused: %v", err)
	}
	req.Data = []byte(`{"id":"1","blob":7}`)
	err = p.Check(req)
	var v *Violation
	if !errors.As(err, &v) || v.Rule != RuleSchemaViolation || !strings.HasPrefix(v.Message, `at "/blob": `) {
		t.Fatalf("Check = %v, want a schema_violation at /blob", err)
	}
}

// FuzzFastSchema: whatever the schema and the data, the fast form never
// says valid where the library says invalid.
func FuzzFastSchema(f *testing.F) {
	f.Add(recordSchema, `{"id":"1","blob":"x"}`)
	f.Add(nestedSchema, `{"site":"a","readings":[{"at":"t","value":1,"n":2}]}`)
	f.Add(`{"type":"integer"}`, `1.0`)
	f.Add(`{"type":["integer","string"]}`, `-0`)
	f.Add(`{"items":{"type":"null"}}`, `[null,1]`)
	f.Add(`{"additionalProperties":{"type":"boolean"},"properties":{"a":true}}`, `{"a":1,"b":true}`)
	f.Add(`{"type":"object","required":["a","a"]}`, `{"a":1}`)
	f.Fuzz(func(t *testing.T, doc, data string) {
		fast := newFastSchema([]byte(doc))
		if fast == nil {
			return
		}
		sch, err := compileOne(t, doc)
		if err != nil {
			return
		}
		v, err := decodeJSON([]byte(data))
		if err != nil {
			return
		}
		if fast.valid(v) {
			if err := sch.Validate(v); err != nil {
				t.Fatalf("schema %s, data %s: fast form says valid, library: %v", doc, data, err)
			}
		}
	})
}

// BenchmarkCheckFastSchema: Check of a 1 KiB record under a schema with a
// fast form (fast), and the same with the schema library alone (library).
func BenchmarkCheckFastSchema(b *testing.B) {
	fsys := fstest.MapFS{"record-1.json": &fstest.MapFile{Data: []byte(recordSchema)}}
	req := Request{Principal: "bench", Workflow: "records", Classification: "internal", Destination: "archive", MediaType: "application/json",
		Data: []byte(`{"id":"1","blob":"` + strings.Repeat("x", 1000) + `"}`)}
	for _, fast := range []bool{true, false} {
		name := map[bool]string{true: "fast", false: "library"}[fast]
		b.Run(name, func(b *testing.B) {
			p, err := Parse([]byte("version: 1\nname: t\nschemas:\n  record@1: record-1.json\nworkflows:\n  - name: records\n    schema: record@1\n    classifications: [internal]\n    retention: ops-2y\n    destinations: [archive]\n    principals: [bench]\n    max_size: 65536\n"), fsys)
			if err != nil {
				b.Fatal(err)
			}
			if !fast {
				p.workflows["records"].fast = nil
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(req.Data)))
			for b.Loop() {
				if err := p.Check(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
