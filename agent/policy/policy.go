// Package policy loads the signed-off export policy and checks exports
// against it.
//
// A policy file (YAML, or JSON, which is read as YAML) names the workflows
// that may export and, for each, its JSON Schema, allowed media types,
// classifications and destinations, retention class, allowed principals and
// size limit:
//
//	version: 1
//	schemas:                       # id "name@version" -> file, relative to the policy file
//	  invoice@1: schemas/invoice-1.json
//	workflows:
//	  - name: invoices-daily
//	    schema: invoice@1          # JSON payloads are validated against it
//	    media_types: [application/json]   # optional; see Workflow.MediaTypes
//	    classifications: [internal, confidential]
//	    retention: finance-10y
//	    destinations: [archive]
//	    principals: [n8n-prod]     # principal names from the agent config
//	    max_size: 1048576          # bytes
//	min_retention:                 # optional: schema id -> shortest retention (duration, 30d, 10y or permanent)
//	  invoice@1: 10y
//	retention_classes:             # optional: class -> duration or permanent, to compare with min_retention
//	  finance-10y: 10y
//
// A workflow whose retention class is shorter than its schema's
// min_retention (or has no duration in retention_classes) is not refused:
// [Policy.ShortRetentions] lists it and the agent raises a governance
// alert.
//
// On a device the policy normally comes signed by policy administrators,
// with its schema files, in one document (package agent/policy/signed);
// this package reads the policy inside it.
//
// Decoding is strict (unknown and duplicate keys are errors) and every
// schema is compiled when the policy is loaded, so a bad schema is a load
// error naming its workflow. Schemas may $ref files beside them in the
// policy's directory tree, never anything outside it or on a network. Schemas
// default to JSON Schema draft 2020-12, "format" is asserted, and "pattern"
// uses Go's regexp (RE2: linear time, no backreferences).
//
// # Digest
//
// [Policy.Digest] identifies the policy in force in every export record:
// "sha256:" and the lowercase hex SHA-256 of
//
//	u64be(len(P)) || P || for each schema file F, in byte order of its name N:
//	    u64be(len(N)) || N || u64be(len(F)) || F
//
// where P is the policy file's bytes, N the schema file's slash-separated path
// relative to the policy file's directory, and the schema files are all those
// the policy names plus any they $ref. Lengths frame every part so no two
// different sets of files share a digest; editing a schema changes it.
package policy

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// Limits on what Load and Parse read.
const (
	MaxFileSize   = 4 << 20 // policy file and each schema file
	MaxSchemaRefs = 256     // schema files in all
)

// Workflow is one workflow of the policy, as written in the file.
type Workflow struct {
	Name        string `yaml:"name"`        // 1 to 128 of [A-Za-z0-9._-]
	Description string `yaml:"description"` // free text, not checked
	// Schema is "name@version", a key of the policy's schemas. JSON payloads
	// are validated against it. Omit it for workflows that export files.
	Schema string `yaml:"schema"`
	// MediaTypes the workflow accepts ("text/csv", "application/pdf", or a
	// whole type "text/*"). When empty: only JSON (application/json or
	// */*+json) if Schema is set, any media type if not.
	MediaTypes      []string `yaml:"media_types"`
	Classifications []string `yaml:"classifications"` // at least one
	Retention       string   `yaml:"retention"`       // the retention class
	Destinations    []string `yaml:"destinations"`    // at least one
	Principals      []string `yaml:"principals"`      // names allowed to export; at least one
	MaxSize         int64    `yaml:"max_size"`        // bytes, > 0
	// Encrypt: the workflow's payloads are sealed to the archive's
	// content key when the agent has one (default true); false sends
	// them in plaintext.
	Encrypt *bool `yaml:"encrypt"`
}

// file is the policy file's layout.
type file struct {
	Version     int               `yaml:"version"` // format version: 1
	Name        string            `yaml:"name"`    // free text
	Description string            `yaml:"description"`
	Schemas     map[string]string `yaml:"schemas"`
	Workflows   []Workflow        `yaml:"workflows"`
	// MinRetention: schema id -> the shortest retention its exports may
	// be kept for (a duration such as 87600h, or "permanent").
	MinRetention map[string]string `yaml:"min_retention"`
	// RetentionClasses: class -> its duration (or "permanent"), for
	// comparing a workflow's class with its schema's min_retention.
	RetentionClasses map[string]string `yaml:"retention_classes"`
	// PlaintextClassifications: exports of these classifications are
	// not encrypted, whatever their workflow says (default none).
	PlaintextClassifications []string `yaml:"plaintext_classifications"`
}

// Policy is a loaded policy. It is immutable and safe for concurrent use.
type Policy struct {
	name      string
	digest    string
	workflows map[string]*workflow
	order     []string
	retention retentionRules
	plaintext map[string]bool // classifications not encrypted
}

type workflow struct {
	Workflow
	schema *jsonschema.Schema // nil when the workflow has no schema
	fast   *fastSchema        // schema's fast form; nil: outside the subset
}

// Error is a problem with the policy file or one of its schemas.
type Error struct {
	Workflow string // the workflow concerned, "" if none
	Field    string // e.g. "schema", "max_size", "schemas.invoice@1"; "" for the whole file
	Reason   string
	Err      error // the underlying cause, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("policy: ")
	if e.Workflow != "" {
		fmt.Fprintf(&b, "workflow %q: ", e.Workflow)
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Reason)
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Load reads the policy file at path, and the schema files it names from
// the directory it is in, and compiles the schemas.
func Load(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("policy: read %s: %w", path, err)
	}
	return Parse(data, os.DirFS(filepath.Dir(path)))
}

// Parse reads a policy from its bytes; schema files are read from fsys,
// which stands for the policy file's directory. fsys may be nil when the
// policy names no schemas.
func Parse(data []byte, fsys fs.FS) (*Policy, error) {
	if len(data) > MaxFileSize {
		return nil, &Error{Reason: fmt.Sprintf("file larger than %d bytes", MaxFileSize)}
	}
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Reason: "empty file"}
		}
		return nil, &Error{Reason: "decode", Err: err}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &Error{Reason: "more than one YAML document"}
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	rr, err := f.retentionRules()
	if err != nil {
		return nil, err
	}

	schemas, files, err := compile(f, fsys)
	if err != nil {
		return nil, err
	}
	p := &Policy{
		name:      f.Name,
		digest:    digest(data, files),
		workflows: make(map[string]*workflow, len(f.Workflows)),
		retention: rr,
		plaintext: map[string]bool{},
	}
	for _, c := range f.PlaintextClassifications {
		p.plaintext[c] = true
	}
	for _, w := range f.Workflows {
		w.MediaTypes = normalizeTypes(w.MediaTypes)
		wf := &workflow{Workflow: w, schema: schemas[w.Schema]}
		if wf.schema != nil {
			if doc, ok := files[f.Schemas[w.Schema]]; ok {
				wf.fast = newFastSchema(doc)
			}
		}
		p.workflows[w.Name] = wf
		p.order = append(p.order, w.Name)
	}
	return p, nil
}

// Digest is "sha256:<hex>" over the policy file and its schema files, as
// the package documentation defines.
func (p *Policy) Digest() string { return p.digest }

// Name is the policy's free-text name ("" if the file gives none).
func (p *Policy) Name() string { return p.name }

// Encrypt reports whether an export of workflow with classification is
// sealed to the archive's content key: yes unless the workflow says
// encrypt: false or the classification is one of
// plaintext_classifications (default: everything is encrypted).
func (p *Policy) Encrypt(workflow, classification string) bool {
	if p.plaintext[classification] {
		return false
	}
	w, ok := p.workflows[workflow]
	return !ok || w.Encrypt == nil || *w.Encrypt
}

// Workflows lists the workflow names in file order.
func (p *Policy) Workflows() []string { return slices.Clone(p.order) }

// Workflow returns a copy of the named workflow, with media types normalized
// (lowercase, without parameters).
func (p *Policy) Workflow(name string) (Workflow, bool) {
	w, ok := p.workflows[name]
	if !ok {
		return Workflow{}, false
	}
	c := w.Workflow
	c.MediaTypes = slices.Clone(c.MediaTypes)
	c.Classifications = slices.Clone(c.Classifications)
	c.Destinations = slices.Clone(c.Destinations)
	c.Principals = slices.Clone(c.Principals)
	return c, true
}

// digest hashes the policy bytes and the schema files (name -> bytes).
func digest(policy []byte, files map[string][]byte) string {
	h := sha256.New()
	var n [8]byte
	put := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	put(policy)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(a, b) })
	for _, name := range names {
		put([]byte(name))
		put(files[name])
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// validate checks the decoded file; schemas are compiled afterwards.
func (f *file) validate() error {
	if f.Version != 1 {
		return &Error{Field: "version", Reason: fmt.Sprintf("want 1, got %d", f.Version)}
	}
	for id, path := range f.Schemas {
		field := "schemas." + id
		if !validSchemaID(id) {
			return &Error{Field: field, Reason: "want an id name@version of [A-Za-z0-9._-]"}
		}
		if !validSchemaPath(path) {
			return &Error{Field: field, Reason: fmt.Sprintf("want a relative path of [A-Za-z0-9._/-] inside the policy's directory, got %.80q", path)}
		}
	}
	if len(f.Workflows) == 0 {
		return &Error{Field: "workflows", Reason: "at least one workflow is required"}
	}
	seen := map[string]bool{}
	for i := range f.Workflows {
		w := &f.Workflows[i]
		if !validName(w.Name, 128, "") {
			return &Error{Field: fmt.Sprintf("workflows[%d].name", i), Reason: fmt.Sprintf("want 1 to 128 of [A-Za-z0-9._-], got %.80q", w.Name)}
		}
		if seen[w.Name] {
			return &Error{Workflow: w.Name, Field: "name", Reason: "workflow listed twice"}
		}
		seen[w.Name] = true
		if err := w.validate(f.Schemas); err != nil {
			return err
		}
	}
	return nil
}

func (w *Workflow) validate(schemas map[string]string) error {
	bad := func(field, format string, a ...any) error {
		return &Error{Workflow: w.Name, Field: field, Reason: fmt.Sprintf(format, a...)}
	}
	if w.Schema != "" {
		if _, ok := schemas[w.Schema]; !ok {
			return bad("schema", "%.80q is not in the policy's schemas", w.Schema)
		}
	}
	anyJSON := false
	for i, mt := range w.MediaTypes {
		if strings.HasSuffix(mt, "/*") {
			mt = strings.TrimSuffix(mt, "/*") + "/x-any"
		}
		base, _, err := mime.ParseMediaType(mt)
		if err != nil || !strings.Contains(base, "/") || strings.HasPrefix(base, "*/") {
			return bad(fmt.Sprintf("media_types[%d]", i), "%.80q is not a media type like text/csv or text/*", w.MediaTypes[i])
		}
		anyJSON = anyJSON || isJSON(base)
	}
	if w.Schema != "" && len(w.MediaTypes) > 0 && !anyJSON {
		return bad("media_types", "the workflow has a schema but allows no JSON media type")
	}
	if err := checkList(w.Classifications, "classifications", 128, ""); err != "" {
		return bad("classifications", "%s", err)
	}
	if w.Retention == "" {
		return bad("retention", "required")
	}
	if err := checkList(w.Destinations, "destinations", 512, ""); err != "" {
		return bad("destinations", "%s", err)
	}
	if err := checkList(w.Principals, "principals", 64, "@"); err != "" {
		return bad("principals", "%s", err)
	}
	if w.MaxSize <= 0 {
		return bad("max_size", "want a size in bytes greater than 0, got %d", w.MaxSize)
	}
	return nil
}

// checkList wants at least one entry, each a name (nameExtra: extra allowed
// bytes) or, for destinations, any non-empty printable string; no repeats.
func checkList(l []string, what string, max int, nameExtra string) string {
	if len(l) == 0 {
		return "at least one is required"
	}
	seen := make(map[string]bool, len(l))
	for _, s := range l {
		ok := validName(s, max, nameExtra)
		if what == "destinations" {
			ok = s != "" && len(s) <= max && printable(s)
		}
		if !ok {
			return fmt.Sprintf("%.80q is not a valid entry", s)
		}
		if seen[s] {
			return fmt.Sprintf("%.80q listed twice", s)
		}
		seen[s] = true
	}
	return ""
}

func validName(s string, max int, extra string) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == '-' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return false
		}
	}
	return true
}

func validSchemaID(id string) bool {
	name, version, ok := strings.Cut(id, "@")
	return ok && validName(name, 128, "") && validName(version, 64, "")
}

func validSchemaPath(p string) bool {
	return fs.ValidPath(p) && p != "." && validName(p, 1024, "/") && !strings.Contains(p, "//")
}
