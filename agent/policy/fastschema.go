package policy

import (
	"encoding/json"
	"strings"
)

// fastSchema is a schema in a small subset of JSON Schema 2020-12 that
// most export schemas use (type, properties, required,
// additionalProperties, items and annotations), checked by walking the
// decoded value directly. It only ever answers "valid" for a value the
// compiled schema accepts too: when it says no, or cannot tell (an integer
// written with a fraction or an exponent), the compiled schema validates
// the value again and gives the verdict and the message. The schema
// library copies every string it validates and allocates per value; this
// walk allocates nothing.
type fastSchema struct {
	never    bool  // the false schema
	types    uint8 // allowed types (typeObject, ...); 0: any
	props    map[string]*fastSchema
	required []string
	noAddl   bool        // additionalProperties: false
	addl     *fastSchema // additionalProperties as a schema; nil: any
	items    *fastSchema // items; nil: any
}

const (
	typeObject uint8 = 1 << iota
	typeArray
	typeString
	typeNumber
	typeInteger
	typeBoolean
	typeNull
)

var typeBits = map[string]uint8{
	"object": typeObject, "array": typeArray, "string": typeString, "number": typeNumber,
	"integer": typeInteger, "boolean": typeBoolean, "null": typeNull,
}

// draft2020 is the only $schema the subset takes (the compiler's default
// draft when there is none).
const draft2020 = "https://json-schema.org/draft/2020-12/schema"

// annotations are keywords that assert nothing.
var annotations = map[string]bool{
	"$comment": true, "title": true, "description": true, "examples": true,
	"default": true, "deprecated": true, "readOnly": true, "writeOnly": true,
}

// maxFastDepth bounds the nesting of schemas the subset takes.
const maxFastDepth = 32

// newFastSchema returns the fast form of the schema file doc (its bytes,
// as compiled), or nil when it uses anything outside the subset: then the
// compiled schema validates every value.
func newFastSchema(doc []byte) *fastSchema {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil
	}
	s, ok := fastFrom(v, true, 0)
	if !ok {
		return nil
	}
	return s
}

// fastFrom converts one (sub)schema; root allows $schema and $id.
func fastFrom(v any, root bool, depth int) (*fastSchema, bool) {
	if depth > maxFastDepth {
		return nil, false
	}
	switch x := v.(type) {
	case bool:
		return &fastSchema{never: !x}, true
	case map[string]any:
		s := &fastSchema{}
		for k, val := range x {
			switch {
			case annotations[k]:
			case root && k == "$schema":
				if val != draft2020 {
					return nil, false
				}
			case root && k == "$id":
				if _, ok := val.(string); !ok {
					return nil, false
				}
			case k == "type":
				t, ok := fastTypes(val)
				if !ok {
					return nil, false
				}
				s.types = t
			case k == "properties":
				m, ok := val.(map[string]any)
				if !ok {
					return nil, false
				}
				s.props = make(map[string]*fastSchema, len(m))
				for name, sub := range m {
					fs, ok := fastFrom(sub, false, depth+1)
					if !ok {
						return nil, false
					}
					s.props[name] = fs
				}
			case k == "required":
				l, ok := val.([]any)
				if !ok {
					return nil, false
				}
				for _, r := range l {
					name, ok := r.(string)
					if !ok {
						return nil, false
					}
					s.required = append(s.required, name)
				}
			case k == "additionalProperties":
				fs, ok := fastFrom(val, false, depth+1)
				if !ok {
					return nil, false
				}
				switch b, isBool := val.(bool); {
				case isBool && !b:
					s.noAddl = true
				case !isBool:
					s.addl = fs
				}
			case k == "items":
				if _, ok := val.(map[string]any); !ok {
					return nil, false // items: true/false/array: left to the library
				}
				fs, ok := fastFrom(val, false, depth+1)
				if !ok {
					return nil, false
				}
				s.items = fs
			default:
				return nil, false
			}
		}
		return s, true
	}
	return nil, false
}

// fastTypes reads a type keyword: one name or a list of names.
func fastTypes(v any) (uint8, bool) {
	switch x := v.(type) {
	case string:
		t, ok := typeBits[x]
		return t, ok
	case []any:
		var all uint8
		for _, e := range x {
			name, ok := e.(string)
			if !ok {
				return 0, false
			}
			t, ok := typeBits[name]
			if !ok || all&t != 0 {
				return 0, false
			}
			all |= t
		}
		return all, len(x) > 0
	}
	return 0, false
}

// valid reports whether v (as decodeJSON returns it) is surely valid
// under s; false: not valid, or not sure.
func (s *fastSchema) valid(v any) bool {
	if s.never {
		return false
	}
	if s.types != 0 && !s.typeOK(v) {
		return false
	}
	switch x := v.(type) {
	case map[string]any:
		for _, r := range s.required {
			if _, ok := x[r]; !ok {
				return false
			}
		}
		for k, val := range x {
			if p, ok := s.props[k]; ok {
				if !p.valid(val) {
					return false
				}
				continue
			}
			if s.noAddl || s.addl != nil && !s.addl.valid(val) {
				return false
			}
		}
	case []any:
		if s.items != nil {
			for _, e := range x {
				if !s.items.valid(e) {
					return false
				}
			}
		}
	}
	return true
}

// typeOK reports whether v has one of s's types. A number is an integer
// here only when written without fraction or exponent (JSON Schema counts
// 1.0 as an integer: the library decides those).
func (s *fastSchema) typeOK(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		return s.types&typeObject != 0
	case []any:
		return s.types&typeArray != 0
	case string:
		return s.types&typeString != 0
	case bool:
		return s.types&typeBoolean != 0
	case nil:
		return s.types&typeNull != 0
	case json.Number:
		if s.types&typeNumber != 0 {
			return true
		}
		return s.types&typeInteger != 0 && !strings.ContainsAny(string(x), ".eE")
	}
	return false
}
