package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemaBase is the URL the policy's directory stands at for the schema
// compiler. Only URLs under it are loaded, and only from the policy's fs.FS.
const schemaBase = "file:///edgeseal-policy/"

// fsLoader serves schema files from the policy's directory and remembers
// every file it read, for the digest.
type fsLoader struct {
	fsys  fs.FS
	files map[string][]byte
}

func (l *fsLoader) Load(u string) (any, error) {
	rest, ok := strings.CutPrefix(u, schemaBase)
	if !ok {
		return nil, fmt.Errorf("%.120s is outside the policy's directory", u)
	}
	name, err := url.PathUnescape(rest)
	if err != nil || !validSchemaPath(name) {
		return nil, fmt.Errorf("%.120q is not a file inside the policy's directory", rest)
	}
	if l.fsys == nil {
		return nil, errors.New("no directory to read schema files from")
	}
	if len(l.files) >= MaxSchemaRefs {
		return nil, fmt.Errorf("more than %d schema files", MaxSchemaRefs)
	}
	f, err := l.fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, MaxFileSize)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: not JSON: %w", name, err)
	}
	l.files[name] = b
	return doc, nil
}

// compile compiles every schema the file lists, in id order. A schema that
// fails is reported against the first workflow that uses it.
func compile(f file, fsys fs.FS) (map[string]*jsonschema.Schema, map[string][]byte, error) {
	loader := &fsLoader{fsys: fsys, files: map[string][]byte{}}
	c := jsonschema.NewCompiler()
	c.UseLoader(loader)
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()

	ids := make([]string, 0, len(f.Schemas))
	for id := range f.Schemas {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make(map[string]*jsonschema.Schema, len(ids))
	for _, id := range ids {
		path := f.Schemas[id]
		sch, err := c.Compile(schemaBase + path)
		if err != nil {
			e := &Error{Field: "schemas." + id, Reason: "schema " + path, Err: err}
			for _, w := range f.Workflows {
				if w.Schema == id {
					e.Workflow, e.Field = w.Name, "schema"
					e.Reason = fmt.Sprintf("schema %s (%s)", id, path)
					break
				}
			}
			return nil, nil, e
		}
		out[id] = sch
	}
	return out, loader.files, nil
}
