package signed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing/fstest"
	"unicode/utf8"

	"github.com/edgeseal/edgeseal/agent/policy"

	"github.com/gowebpki/jcs"
)

// PayloadType is the DSSE payload type of a signed policy.
const PayloadType = "application/vnd.edgeseal.policy+json"

// DocumentVersion is the only document version.
const DocumentVersion = 1

// MaxPayload bounds the payload: the envelope (base64, 4/3 of it) must fit
// a journal record (custody.MaxRecordSize, 1 MiB) with room to spare.
const MaxPayload = 512 << 10

// Document is the payload of a signed policy.
type Document struct {
	Version int               `json:"version"`
	Policy  string            `json:"policy"` // the policy file's text
	Files   map[string]string `json:"files"`  // schema files, by path relative to the policy file
}

// Error is a problem with a signed policy or an admin set.
type Error struct {
	What   string // "document", "envelope", "admins", "signatures", "duties"
	Reason string
	Err    error
}

func (e *Error) Error() string {
	s := "policy: signed " + e.What + ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Pack reads the policy file at path and the schema files it uses, checks
// the policy (policy.Load), and returns the canonical payload.
func Pack(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	rec := &recordFS{fsys: os.DirFS(filepath.Dir(path)), read: map[string][]byte{}}
	if _, err := policy.Parse(data, rec); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	d := Document{Version: DocumentVersion, Policy: string(data), Files: map[string]string{}}
	for name, b := range rec.read {
		d.Files[name] = string(b)
	}
	if err := d.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return canonical(&d)
}

// Marshal returns the canonical payload of d.
func (d *Document) Marshal() ([]byte, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	return canonical(d)
}

// ParseDocument reads a payload strictly: canonical JSON, no unknown
// fields, version 1, UTF-8 text, at most MaxPayload bytes; the policy
// must load (policy.Parse) from its files and use every one of them.
func ParseDocument(b []byte) (*Document, *policy.Policy, error) {
	bad := func(reason string, err error) error { return &Error{What: "document", Reason: reason, Err: err} }
	if len(b) > MaxPayload {
		return nil, nil, bad(fmt.Sprintf("larger than %d bytes", MaxPayload), nil)
	}
	var d Document
	if err := unmarshalStrict(b, &d); err != nil {
		return nil, nil, bad("decode", err)
	}
	if err := d.check(); err != nil {
		return nil, nil, err
	}
	canon, err := canonical(&d)
	if err != nil {
		return nil, nil, bad("encode", err)
	}
	if !bytes.Equal(canon, b) {
		return nil, nil, bad("not canonical JSON (RFC 8785)", nil)
	}
	p, err := d.Load()
	if err != nil {
		return nil, nil, err
	}
	return &d, p, nil
}

// Load parses the document's policy with its files, and refuses files the
// policy does not use.
func (d *Document) Load() (*policy.Policy, error) {
	m := fstest.MapFS{}
	for name, s := range d.Files {
		m[name] = &fstest.MapFile{Data: []byte(s), Mode: 0o444}
	}
	rec := &recordFS{fsys: m, read: map[string][]byte{}}
	p, err := policy.Parse([]byte(d.Policy), rec)
	if err != nil {
		return nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(d.Files)) {
		if _, ok := rec.read[name]; !ok {
			return nil, &Error{What: "document", Reason: fmt.Sprintf("file %.120q is not used by the policy", name)}
		}
	}
	return p, nil
}

func (d *Document) check() error {
	bad := func(format string, a ...any) error {
		return &Error{What: "document", Reason: fmt.Sprintf(format, a...)}
	}
	if d.Version != DocumentVersion {
		return bad("version: want %d, got %d", DocumentVersion, d.Version)
	}
	if d.Policy == "" || !utf8.ValidString(d.Policy) {
		return bad("policy: want the policy file's UTF-8 text")
	}
	if d.Files == nil {
		return bad("files: required (may be empty)")
	}
	if len(d.Files) > policy.MaxSchemaRefs {
		return bad("more than %d files", policy.MaxSchemaRefs)
	}
	for name, s := range d.Files {
		if !fs.ValidPath(name) || name == "." || !utf8.ValidString(s) {
			return bad("file %.120q: want a relative path and UTF-8 text", name)
		}
	}
	return nil
}

// recordFS remembers the bytes of every file opened through it.
type recordFS struct {
	fsys fs.FS
	read map[string][]byte
}

func (r *recordFS) Open(name string) (fs.File, error) {
	f, err := r.fsys.Open(name)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, policy.MaxFileSize+1))
	f.Close()
	if err != nil {
		return nil, err
	}
	r.read[name] = b
	m := fstest.MapFS{name: &fstest.MapFile{Data: b}}
	return m.Open(name)
}

func canonical(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jcs.Transform(raw)
}

// unmarshalStrict decodes exactly one JSON value, refusing unknown fields
// and trailing data.
func unmarshalStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data")
	}
	return nil
}
