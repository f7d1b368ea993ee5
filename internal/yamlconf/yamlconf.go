// Package yamlconf decodes a YAML configuration file strictly into a Go
// struct, by the fields' yaml tags, for the agent's and the archive's
// config packages.
//
// Unknown keys, duplicate keys, merge keys ("<<"), a second document,
// non-string keys, empty list items and values of the wrong type are
// errors. Every error is an *Error naming the dotted key
// ("seal.interval", "principals[1].roles[0]") and the line. A null value
// (or a key with nothing after it) leaves the field as it was, so a
// struct filled with defaults before decoding keeps them for the keys a
// file leaves out. Aliases are followed, within a budget of values per
// document, so that aliases repeating large subtrees cannot make decoding
// slow.
//
// Scalars: strings; integers (YAML !!int only); booleans (true or false
// only); time.Duration as a Go duration string ("10s", "1m30s");
// fs.FileMode in octal ("0660", 0o660, at most 0777); pointers to these
// (a null leaves them nil); and the types of Options.Scalars.
package yamlconf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// MaxValues bounds the values one document may decode (aliases counted
// each time they are followed).
const MaxValues = 100_000

// maxAliasDepth bounds alias chains; yaml.v3 already refuses alias cycles.
const maxAliasDepth = 16

// maxKeyLen is how much of an unknown key an error quotes.
const maxKeyLen = 80

// Error is a problem at one key of the document.
type Error struct {
	Key    string // dotted key; "" for the whole document
	Line   int    // 1-based; 0 when unknown
	Reason string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// A Scalar decodes one scalar value into a type of its own.
type Scalar struct {
	// Want completes "want ..." in the error for a value that is not a
	// scalar, e.g. `a size such as "32 MiB"`.
	Want string
	// Decode sets v from n (a scalar node, not null); its error's text is
	// the reason reported at n's key.
	Decode func(n *yaml.Node, v reflect.Value) error
}

// Options adds scalar types to the ones every document knows.
type Options struct {
	Scalars map[reflect.Type]Scalar
}

// Lines holds the line of every key a document set, by dotted key.
type Lines map[string]int

// Line is the line of key, or of its closest parent the document set; 0
// when none is set.
func (l Lines) Line(key string) int {
	for key != "" {
		if n, ok := l[key]; ok {
			return n
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			return 0
		}
		key = key[:i]
	}
	return 0
}

// Decode decodes the one YAML document of data into the struct v points
// to. An empty document, or one holding only null, leaves v as it was. It
// returns the lines of the keys set, or the problem (a *Error, not an
// error, for the caller to turn into its own error type).
func Decode(data []byte, v any, opts *Options) (Lines, *Error) {
	d := &decoder{lines: Lines{}, scalars: builtin}
	if opts != nil && len(opts.Scalars) > 0 {
		d.scalars = make(map[reflect.Type]Scalar, len(builtin)+len(opts.Scalars))
		for t, s := range builtin {
			d.scalars[t] = s
		}
		for t, s := range opts.Scalars {
			d.scalars[t] = s
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return d.lines, nil
		}
		return nil, &Error{Reason: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &Error{Line: extra.Line, Reason: "more than one YAML document"}
	}
	if len(doc.Content) == 0 {
		return d.lines, nil
	}
	root := doc.Content[0]
	if isNull(root) {
		return d.lines, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, &Error{Line: root.Line, Reason: "want a mapping of keys at the top level"}
	}
	if err := d.value(root, reflect.ValueOf(v).Elem(), ""); err != nil {
		return nil, err
	}
	return d.lines, nil
}

var builtin = map[reflect.Type]Scalar{
	reflect.TypeFor[time.Duration](): {Want: `a duration such as "10s"`, Decode: decodeDuration},
	reflect.TypeFor[fs.FileMode]():   {Want: "an octal file mode such as 0660", Decode: decodeMode},
}

func decodeDuration(n *yaml.Node, v reflect.Value) error {
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("want a duration such as \"10s\", got %q", n.Value)
	}
	v.SetInt(int64(dur))
	return nil
}

func decodeMode(n *yaml.Node, v reflect.Value) error {
	var m uint64
	var err error
	if n.Tag == "!!int" {
		err = n.Decode(&m) // YAML reads 0660 and 0o660 as octal
	} else {
		m, err = strconv.ParseUint(strings.TrimPrefix(n.Value, "0o"), 8, 32)
	}
	if err != nil || m > 0o777 {
		return fmt.Errorf("want an octal file mode from 0000 to 0777 such as 0660, got %q", n.Value)
	}
	v.SetUint(m)
	return nil
}

type decoder struct {
	lines   Lines
	nodes   int
	scalars map[reflect.Type]Scalar
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < maxAliasDepth; i++ {
		n = n.Alias
	}
	return n
}

// value decodes n into v. A null leaves v as it was.
func (d *decoder) value(n *yaml.Node, v reflect.Value, key string) *Error {
	n = deref(n)
	if n.Kind == yaml.AliasNode {
		return &Error{Key: key, Line: n.Line, Reason: "alias chain too deep"}
	}
	if d.nodes++; d.nodes > MaxValues {
		return &Error{Key: key, Line: n.Line, Reason: fmt.Sprintf("more than %d values (aliases included)", MaxValues)}
	}
	if key != "" {
		d.lines[key] = n.Line
	}
	if isNull(n) {
		return nil
	}
	bad := func(format string, a ...any) *Error {
		return &Error{Key: key, Line: n.Line, Reason: fmt.Sprintf(format, a...)}
	}
	if s, ok := d.scalars[v.Type()]; ok {
		if n.Kind != yaml.ScalarNode {
			return bad("want %s", s.Want)
		}
		if err := s.Decode(n, v); err != nil {
			return bad("%v", err)
		}
		return nil
	}
	switch v.Kind() {
	case reflect.Struct:
		return d.mapping(n, v, key)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if err := d.value(n, p.Elem(), key); err != nil {
			return err
		}
		v.Set(p)
		return nil
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return bad("want a list")
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, e := range n.Content {
			ek := key + "[" + strconv.Itoa(i) + "]"
			if isNull(deref(e)) {
				return &Error{Key: ek, Line: e.Line, Reason: "empty list item"}
			}
			if err := d.value(e, s.Index(i), ek); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			return bad("want a string")
		}
		v.SetString(n.Value)
		return nil
	case reflect.Int, reflect.Int64:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			return bad("want an integer, got %q", n.Value)
		}
		var i int64
		if err := n.Decode(&i); err != nil || v.OverflowInt(i) {
			return bad("want an integer, got %q", n.Value)
		}
		v.SetInt(i)
		return nil
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || (n.Value != "true" && n.Value != "false") {
			return bad("want true or false, got %q", n.Value)
		}
		v.SetBool(n.Value == "true")
		return nil
	}
	return bad("unsupported type %s", v.Type()) // a programming error, caught by tests
}

// mapping decodes a YAML mapping into struct v by its fields' yaml tags.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, key string) *Error {
	if n.Kind != yaml.MappingNode {
		return &Error{Key: key, Line: n.Line, Reason: "want a mapping of keys"}
	}
	t := v.Type()
	fields := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			fields[name] = i
		}
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return &Error{Key: key, Line: k.Line, Reason: "keys must be plain strings"}
		}
		sub := k.Value
		if len(sub) > maxKeyLen {
			sub = strings.ToValidUTF8(sub[:maxKeyLen], "") + "..."
		}
		if key != "" {
			sub = key + "." + sub
		}
		if seen[k.Value] {
			return &Error{Key: sub, Line: k.Line, Reason: "duplicate key"}
		}
		seen[k.Value] = true
		idx, ok := fields[k.Value]
		if !ok {
			return &Error{Key: sub, Line: k.Line, Reason: "unknown key"}
		}
		if err := d.value(val, v.Field(idx), sub); err != nil {
			return err
		}
	}
	return nil
}
