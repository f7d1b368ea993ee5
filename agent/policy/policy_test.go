package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// exampleFS is the example policy's directory as a MapFS, for editing.
func exampleFS(t testing.TB) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(os.DirFS("testdata"), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(filepath.Join("testdata", path))
		m[path] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// wantDigest recomputes the documented digest independently of digest().
func wantDigest(policy []byte, files map[string][]byte) string {
	var buf []byte
	frame := func(b []byte) {
		buf = binary.BigEndian.AppendUint64(buf, uint64(len(b)))
		buf = append(buf, b...)
	}
	frame(policy)
	var names []string
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		frame([]byte(n))
		frame(files[n])
	}
	sum := sha256.Sum256(buf)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func TestLoadExample(t *testing.T) {
	p := loadExample(t)
	if got := p.Workflows(); !slices.Equal(got, []string{"invoices-daily", "sensor-batches", "monthly-report", "scans"}) {
		t.Errorf("Workflows = %v", got)
	}
	if p.Name() != "plant-berlin exports" {
		t.Errorf("Name = %q", p.Name())
	}
	w, ok := p.Workflow("invoices-daily")
	if !ok || w.Schema != "invoice@1" || w.Retention != "finance-10y" || w.MaxSize != 1048576 ||
		!slices.Equal(w.Principals, []string{"n8n-prod"}) {
		t.Errorf("Workflow = %+v, %v", w, ok)
	}
	w.Principals[0] = "mallory" // a copy: the policy must not change
	if err := p.Check(invoice(nil)); err != nil {
		t.Errorf("editing a Workflow copy changed the policy: %v", err)
	}
	if _, ok := p.Workflow("nope"); ok {
		t.Error("unknown workflow found")
	}

	m := exampleFS(t)
	files := map[string][]byte{}
	for _, n := range []string{"schemas/invoice-1.json", "schemas/common.json", "schemas/sensor-batch-2.json"} {
		files[n] = m[n].Data
	}
	if got, want := p.Digest(), wantDigest(m["policy.yaml"].Data, files); got != want {
		t.Errorf("Digest = %s, want %s (policy + all three schema files)", got, want)
	}
}

func TestDigestTracksEveryFile(t *testing.T) {
	base := exampleFS(t)
	p0, err := Parse(base["policy.yaml"].Data, base)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(base["policy.yaml"].Data, base)
	if err != nil || again.Digest() != p0.Digest() {
		t.Fatalf("digest not stable: %s vs %s (%v)", again.Digest(), p0.Digest(), err)
	}
	seen := map[string]string{p0.Digest(): "original"}
	for _, name := range []string{"policy.yaml", "schemas/invoice-1.json", "schemas/common.json", "schemas/sensor-batch-2.json"} {
		m := exampleFS(t)
		m[name].Data = append(m[name].Data, '\n') // a whitespace edit
		p, err := Parse(m["policy.yaml"].Data, m)
		if err != nil {
			t.Fatal(err)
		}
		if prev, dup := seen[p.Digest()]; dup {
			t.Errorf("editing %s gives the digest of %s", name, prev)
		}
		seen[p.Digest()] = name
	}
	// A file the policy does not use does not count.
	m := exampleFS(t)
	m["schemas/unused.json"] = &fstest.MapFile{Data: []byte(`{}`)}
	if p, err := Parse(m["policy.yaml"].Data, m); err != nil || p.Digest() != p0.Digest() {
		t.Errorf("unused file changed the digest (%v)", err)
	}
}

func TestParseJSONPolicy(t *testing.T) {
	m := exampleFS(t)
	doc := "{\n\t\"version\": 1,\n\t\"schemas\": {\"invoice@1\": \"schemas/invoice-1.json\"},\n\t\"workflows\": [{\n\t\t\"name\": \"invoices-daily\", \"schema\": \"invoice@1\",\n" +
		"\t\t\"classifications\": [\"confidential\"], \"retention\": \"finance-10y\",\n\t\t\"destinations\": [\"archive\"], \"principals\": [\"n8n-prod\"], \"max_size\": 1048576\n\t}]\n}\n"
	p, err := Parse([]byte(doc), m)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(invoice(nil)); err != nil {
		t.Fatal(err)
	}
}

// policyDoc is a valid policy with one workflow whose lines are wf, and the
// schemas block schemas.
func policyDoc(schemas, wf string) []byte {
	return []byte("version: 1\nschemas:\n" + schemas + "workflows:\n  - name: w1\n" + wf)
}

const okSchemas = "  s@1: s.json\n"
const okWF = "    schema: s@1\n    classifications: [internal]\n    retention: r1\n    destinations: [archive]\n    principals: [p1]\n    max_size: 10\n"

func TestParseErrors(t *testing.T) {
	okFS := fstest.MapFS{"s.json": {Data: []byte(`{"type":"object"}`)}}
	wf := func(old, new string) string { return strings.Replace(okWF, old, new, 1) }
	tests := []struct {
		name     string
		doc      []byte
		fsys     fs.FS
		workflow string
		field    string
		reason   string
	}{
		{"empty", nil, okFS, "", "", "empty"},
		{"not yaml", []byte("version: [\n"), okFS, "", "", "decode"},
		{"unknown key", []byte("version: 1\nworkflow: []\n"), okFS, "", "", "decode"},
		{"unknown workflow key", policyDoc(okSchemas, okWF+"    apps: [n8n]\n"), okFS, "", "", "decode"},
		{"duplicate key", policyDoc(okSchemas, okWF+"    max_size: 11\n"), okFS, "", "", "decode"},
		{"two documents", append(policyDoc(okSchemas, okWF), "---\nversion: 1\n"...), okFS, "", "", "more than one"},
		{"too large", []byte("version: 1\n#" + strings.Repeat("x", MaxFileSize)), okFS, "", "", "larger"},
		{"no version", []byte("workflows: []\n"), okFS, "", "version", "want 1"},
		{"version 2", []byte("version: 2\n"), okFS, "", "version", "want 1"},
		{"no workflows", []byte("version: 1\n"), okFS, "", "workflows", "at least one"},
		{"bad schema id", policyDoc("  s1: s.json\n", okWF), okFS, "", "schemas.s1", "name@version"},
		{"schema path up", policyDoc("  s@1: ../s.json\n", okWF), okFS, "", "schemas.s@1", "relative path"},
		{"schema path absolute", policyDoc("  s@1: /etc/s.json\n", okWF), okFS, "", "schemas.s@1", "relative path"},
		{"bad workflow name", []byte("version: 1\nworkflows:\n  - name: \"a b\"\n"), okFS, "", "workflows[0].name", "A-Za-z"},
		{"workflow twice", []byte(string(policyDoc(okSchemas, okWF)) + "  - name: w1\n" + okWF), okFS, "w1", "name", "twice"},
		{"unknown schema", policyDoc(okSchemas, wf("s@1", "s@2")), okFS, "w1", "schema", "not in the policy's schemas"},
		{"bad media type", policyDoc(okSchemas, okWF+"    media_types: [json]\n"), okFS, "w1", "media_types[0]", "not a media type"},
		{"any media type", policyDoc(okSchemas, okWF+"    media_types: [\"*/*\"]\n"), okFS, "w1", "media_types[0]", "not a media type"},
		{"schema without json type", policyDoc(okSchemas, okWF+"    media_types: [text/csv]\n"), okFS, "w1", "media_types", "no JSON"},
		{"no classifications", policyDoc(okSchemas, wf("classifications: [internal]", "classifications: []")), okFS, "w1", "classifications", "at least one"},
		{"classification twice", policyDoc(okSchemas, wf("[internal]", "[internal, internal]")), okFS, "w1", "classifications", "twice"},
		{"no retention", policyDoc(okSchemas, wf("retention: r1", "retention: \"\"")), okFS, "w1", "retention", "required"},
		{"no destinations", policyDoc(okSchemas, wf("[archive]", "[]")), okFS, "w1", "destinations", "at least one"},
		{"control char destination", policyDoc(okSchemas, wf("[archive]", "[\"a\\tb\"]")), okFS, "w1", "destinations", "not a valid"},
		{"no principals", policyDoc(okSchemas, wf("[p1]", "[]")), okFS, "w1", "principals", "at least one"},
		{"bad principal", policyDoc(okSchemas, wf("[p1]", "[\"p 1\"]")), okFS, "w1", "principals", "not a valid"},
		{"zero max_size", policyDoc(okSchemas, wf("max_size: 10", "max_size: 0")), okFS, "w1", "max_size", "greater than 0"},
		{"negative max_size", policyDoc(okSchemas, wf("max_size: 10", "max_size: -5")), okFS, "w1", "max_size", "greater than 0"},
		{"max_size with unit", policyDoc(okSchemas, wf("max_size: 10", "max_size: 1 MiB")), okFS, "", "", "decode"},
		{"schema file missing", policyDoc(okSchemas, okWF), fstest.MapFS{}, "w1", "schema", "s@1"},
		{"no fs", policyDoc(okSchemas, okWF), nil, "w1", "schema", "s@1"},
		{"schema not json", policyDoc(okSchemas, okWF), fstest.MapFS{"s.json": {Data: []byte(`{`)}}, "w1", "schema", "s@1"},
		{"schema invalid", policyDoc(okSchemas, okWF), fstest.MapFS{"s.json": {Data: []byte(`{"type": 5}`)}}, "w1", "schema", "s@1"},
		{"schema bad regexp", policyDoc(okSchemas, okWF), fstest.MapFS{"s.json": {Data: []byte(`{"pattern": "("}`)}}, "w1", "schema", "s@1"},
		{"schema refs outside", policyDoc(okSchemas, okWF), fstest.MapFS{"s.json": {Data: []byte(`{"$ref": "../../etc/x.json"}`)}}, "w1", "schema", "s@1"},
		{"schema refs network", policyDoc(okSchemas, okWF), fstest.MapFS{"s.json": {Data: []byte(`{"$ref": "https://example.com/x.json"}`)}}, "w1", "schema", "s@1"},
		{"unknown metaschema", policyDoc(okSchemas, okWF), fstest.MapFS{"s.json": {Data: []byte(`{"$schema": "https://example.com/meta"}`)}}, "w1", "schema", "s@1"},
		{"schema too large", policyDoc(okSchemas, okWF), fstest.MapFS{"s.json": {Data: []byte(`{"title":"` + strings.Repeat("x", MaxFileSize) + `"}`)}}, "w1", "schema", "s@1"},
		{"unused schema invalid", policyDoc(okSchemas+"  t@1: t.json\n", okWF), fstest.MapFS{"s.json": okFS["s.json"], "t.json": {Data: []byte(`{"type": 5}`)}}, "", "schemas.t@1", "t.json"},
	}
	// What the message says beyond Reason, for errors with a cause.
	causes := map[string]string{
		"unknown key":           "field workflow not found",
		"unknown workflow key":  "field apps not found",
		"duplicate key":         `"max_size" already defined`,
		"max_size with unit":    "cannot unmarshal",
		"schema file missing":   "file does not exist",
		"no fs":                 "no directory",
		"schema not json":       "not JSON",
		"schema invalid":        "metaschema",
		"schema bad regexp":     "metaschema",
		"schema refs outside":   "file:///etc/x.json is outside the policy's directory",
		"schema refs network":   "https://example.com/x.json is outside",
		"unknown metaschema":    "https://example.com/meta is outside",
		"schema too large":      "larger than",
		"unused schema invalid": "metaschema",
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(tt.doc, tt.fsys)
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Parse = %v, %v; want a *policy.Error", p, err)
			}
			if pe.Workflow != tt.workflow || pe.Field != tt.field || !strings.Contains(pe.Reason, tt.reason) {
				t.Fatalf("got {workflow %q field %q reason %q}, want {%q %q ...%q...}\n%v", pe.Workflow, pe.Field, pe.Reason, tt.workflow, tt.field, tt.reason, err)
			}
			if want := causes[tt.name]; !strings.Contains(err.Error(), want) {
				t.Fatalf("message %q does not say %q", err, want)
			}
			if tt.workflow != "" && !strings.Contains(err.Error(), `workflow "`+tt.workflow+`"`) {
				t.Errorf("message %q does not name the workflow", err)
			}
		})
	}
	// The minimal document itself is valid, so each case above fails for its own reason.
	if _, err := Parse(policyDoc(okSchemas, okWF), okFS); err != nil {
		t.Fatalf("base document: %v", err)
	}
}

func TestLoadMissing(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "policy.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
}

func TestWorkflowWithoutSchemaAllowsAnyType(t *testing.T) {
	p, err := Parse(policyDoc("", strings.Replace(okWF, "    schema: s@1\n", "", 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, mt := range []string{"application/json", "text/csv", "application/octet-stream"} {
		req := Request{Principal: "p1", Workflow: "w1", Classification: "internal", Destination: "archive", MediaType: mt, Size: 3, Data: []byte("not json")[:3]}
		if err := p.Check(req); err != nil {
			t.Errorf("%s: %v", mt, err)
		}
	}
}
