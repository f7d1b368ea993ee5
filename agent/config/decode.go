package config

import (
	"fmt"
	"io/fs"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Byte size units.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
)

// ByteSize is a number of bytes. In YAML it is an integer or a string with
// a unit: B, KiB, MiB, GiB (powers of 1024) or KB, MB, GB (powers of 1000),
// with or without a space ("32 MiB", "512KiB"); units are case-insensitive.
type ByteSize int64

// String formats the size with the largest binary unit that divides it.
func (s ByteSize) String() string {
	switch {
	case s != 0 && s%GiB == 0:
		return strconv.FormatInt(int64(s/GiB), 10) + " GiB"
	case s != 0 && s%MiB == 0:
		return strconv.FormatInt(int64(s/MiB), 10) + " MiB"
	case s != 0 && s%KiB == 0:
		return strconv.FormatInt(int64(s/KiB), 10) + " KiB"
	}
	return strconv.FormatInt(int64(s), 10) + " B"
}

// ParseByteSize parses a size such as "32 MiB", "1GB" or "4096".
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%q is not a size like \"32 MiB\"", s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	var mult int64
	switch strings.ToLower(strings.TrimSpace(s[i:])) {
	case "", "b":
		mult = 1
	case "kib":
		mult = 1 << 10
	case "mib":
		mult = 1 << 20
	case "gib":
		mult = 1 << 30
	case "kb":
		mult = 1e3
	case "mb":
		mult = 1e6
	case "gb":
		mult = 1e9
	default:
		return 0, fmt.Errorf("%q has an unknown unit (B, KiB, MiB, GiB, KB, MB, GB)", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return ByteSize(n * mult), nil
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	modeType     = reflect.TypeFor[fs.FileMode]()
	sizeType     = reflect.TypeFor[ByteSize]()
)

func valueOf(c *Config) reflect.Value { return reflect.ValueOf(c).Elem() }

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// maxAliasDepth bounds alias chains; yaml.v3 already refuses alias cycles.
const maxAliasDepth = 16

// maxNodes bounds the values one decode visits, so that aliases repeating
// large subtrees cannot make decoding slow.
const maxNodes = 100_000

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < maxAliasDepth; i++ {
		n = n.Alias
	}
	return n
}

// value decodes n into v. A null leaves v as it was (its default).
func (d *decoder) value(n *yaml.Node, v reflect.Value, key string) error {
	n = deref(n)
	if n.Kind == yaml.AliasNode {
		return &Error{Key: key, Line: n.Line, Reason: "alias chain too deep"}
	}
	if d.nodes++; d.nodes > maxNodes {
		return &Error{Key: key, Line: n.Line, Reason: fmt.Sprintf("more than %d values (aliases included)", maxNodes)}
	}
	if key != "" {
		d.lines[key] = n.Line
	}
	if isNull(n) {
		return nil
	}
	bad := func(format string, a ...any) error {
		return &Error{Key: key, Line: n.Line, Reason: fmt.Sprintf(format, a...)}
	}
	switch v.Type() {
	case durationType:
		if n.Kind != yaml.ScalarNode {
			return bad("want a duration such as \"10s\"")
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil {
			return bad("want a duration such as \"10s\", got %q", n.Value)
		}
		v.SetInt(int64(dur))
		return nil
	case modeType:
		if n.Kind != yaml.ScalarNode {
			return bad("want an octal file mode such as 0660")
		}
		var m uint64
		var err error
		if n.Tag == "!!int" {
			err = n.Decode(&m) // YAML reads 0660 and 0o660 as octal
		} else {
			m, err = strconv.ParseUint(strings.TrimPrefix(n.Value, "0o"), 8, 32)
		}
		if err != nil || m > 0o777 {
			return bad("want an octal file mode from 0000 to 0777 such as 0660, got %q", n.Value)
		}
		v.SetUint(m)
		return nil
	case sizeType:
		if n.Kind != yaml.ScalarNode {
			return bad("want a size such as \"32 MiB\"")
		}
		s, err := ParseByteSize(n.Value)
		if err != nil {
			return bad("%v", err)
		}
		v.SetInt(int64(s))
		return nil
	}
	switch v.Kind() {
	case reflect.Struct:
		return d.mapping(n, v, key)
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
	case reflect.Int:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			return bad("want an integer, got %q", n.Value)
		}
		var i int
		if err := n.Decode(&i); err != nil {
			return bad("want an integer, got %q", n.Value)
		}
		v.SetInt(int64(i))
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
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, key string) error {
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
		if len(sub) > 80 {
			sub = strings.ToValidUTF8(sub[:80], "") + "..."
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
