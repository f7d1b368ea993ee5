package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/edgeseal/edgeseal/internal/jsontok"
)

// Limits on JSON data, beyond MaxJSONDepth.
const (
	// MaxNumberLen is the longest number literal accepted.
	MaxNumberLen = 100
	// MaxExponent bounds the exponent of a number literal. The schema
	// validator computes with exact rationals, which a literal such as
	// 1e-999999 makes slow.
	MaxExponent = 1000
)

// jsonError is malformed or refused JSON data, at a JSON pointer.
type jsonError struct {
	pointer string
	reason  string
}

func (e *jsonError) Error() string {
	return fmt.Sprintf("at %s: %s", quotePointer(e.pointer), e.reason)
}

// maxPointerText is the longest JSON pointer quoted in full in a message.
const maxPointerText = 200

// quotePointer quotes a JSON pointer for a message, shortened in the middle
// if it is long.
func quotePointer(p string) string {
	if len(p) > maxPointerText {
		p = strings.ToValidUTF8(p[:maxPointerText/2], "") + "..." + strings.ToValidUTF8(p[len(p)-maxPointerText/2:], "")
	}
	return strconv.Quote(p)
}

// decodeJSON parses exactly one JSON value (RFC 8259) into the form the
// schema validator takes: map[string]any, []any, string, json.Number, bool
// and nil, the same values encoding/json gives with UseNumber. Strings
// without escapes share data's bytes (no copy per string): data must not
// change while the result is in use, and the result is not kept. It refuses
// invalid UTF-8, repeated object keys (two readers of the same bytes could
// otherwise disagree on what was exported), nesting deeper than
// MaxJSONDepth, numbers that are not finite IEEE 754 doubles (RFC 8785
// canonical JSON cannot carry them) or that break MaxNumberLen or
// MaxExponent, and trailing data.
func decodeJSON(data []byte) (any, error) {
	if !utf8.Valid(data) {
		return nil, &jsonError{"", "not valid UTF-8"}
	}
	p := &jsonParser{data: data}
	p.space()
	if p.pos == len(data) {
		return nil, &jsonError{"", "no JSON data"}
	}
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos != len(data) {
		return nil, &jsonError{"", "data after the JSON value"}
	}
	return v, nil
}

// jsonParser is a recursive-descent JSON parser that keeps the path to the
// current value so that errors can name it.
type jsonParser struct {
	data []byte
	pos  int
	path []string
}

func (p *jsonParser) fail(format string, a ...any) error {
	return &jsonError{pointer(p.path), fmt.Sprintf(format, a...)}
}

func (p *jsonParser) unexpected() error {
	if p.pos >= len(p.data) {
		return p.fail("not JSON: unexpected end of data")
	}
	r, _ := utf8.DecodeRune(p.data[p.pos:])
	return p.fail("not JSON: unexpected %q at byte %d", r, p.pos)
}

func (p *jsonParser) space() { p.pos = jsontok.Space(p.data, p.pos) }

// expect consumes byte c after optional white space.
func (p *jsonParser) expect(c byte) error {
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == c {
		p.pos++
		return nil
	}
	return p.unexpected()
}

func (p *jsonParser) value() (any, error) {
	p.space()
	if p.pos >= len(p.data) {
		return nil, p.unexpected()
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.str()
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	}
	end, err := jsontok.Literal(p.data, p.pos)
	if err != nil {
		return nil, p.unexpected() // at the literal's first byte
	}
	v := any(nil)
	if c := p.data[p.pos]; c != 'n' {
		v = c == 't'
	}
	p.pos = end
	return v, nil
}

func (p *jsonParser) object() (any, error) {
	if len(p.path) >= MaxJSONDepth {
		return nil, p.fail("nested deeper than %d", MaxJSONDepth)
	}
	p.pos++ // {
	obj := map[string]any{}
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return obj, nil
	}
	for {
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.unexpected()
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		p.path = append(p.path, key)
		if _, dup := obj[key]; dup {
			return nil, p.fail("key %s repeated", quoteKey(key))
		}
		if err := p.expect(':'); err != nil {
			return nil, err
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		obj[key] = v
		p.path = p.path[:len(p.path)-1]
		p.space()
		if p.pos < len(p.data) && p.data[p.pos] == ',' {
			p.pos++
			continue
		}
		if err := p.expect('}'); err != nil {
			return nil, err
		}
		return obj, nil
	}
}

func (p *jsonParser) array() (any, error) {
	if len(p.path) >= MaxJSONDepth {
		return nil, p.fail("nested deeper than %d", MaxJSONDepth)
	}
	p.pos++ // [
	arr := []any{}
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return arr, nil
	}
	for {
		p.path = append(p.path, strconv.Itoa(len(arr)))
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
		p.path = p.path[:len(p.path)-1]
		p.space()
		if p.pos < len(p.data) && p.data[p.pos] == ',' {
			p.pos++
			continue
		}
		if err := p.expect(']'); err != nil {
			return nil, err
		}
		return arr, nil
	}
}

// str reads a string at p.pos (on its opening quote). Strings without
// escapes are taken as they are; the rare ones with escapes are decoded
// as encoding/json reads them (a lone surrogate escape is U+FFFD). The
// data was checked as UTF-8 as a whole before.
func (p *jsonParser) str() (string, error) {
	start := p.pos
	end, f, err := jsontok.String(p.data, p.pos, jsontok.AllowBadUTF8)
	if err != nil {
		return "", p.tokFail(err)
	}
	p.pos = end
	if f&jsontok.Escaped == 0 {
		if end-start == 2 {
			return "", nil
		}
		// The value shares data's bytes: decodeJSON's result is only read
		// by the schema validator, while data is held unchanged (Check's
		// caller holds it until it is journaled), and never kept.
		return unsafe.String(&p.data[start+1], end-start-2), nil
	}
	v, err := jsontok.Unquote(make([]byte, 0, end-start), p.data[start:end], false)
	if err != nil {
		return "", p.fail("not JSON: %v", err)
	}
	return string(v), nil
}

// tokFail is the error of a jsontok error at its offset.
func (p *jsonParser) tokFail(err error) error {
	var te *jsontok.Error
	if !errors.As(err, &te) {
		return p.fail("not JSON: %v", err)
	}
	switch te.Kind {
	case jsontok.ErrControl:
		return p.fail("not JSON: control character %q in string at byte %d", p.data[te.Off], te.Off)
	case jsontok.ErrUnicode, jsontok.ErrEOF:
		if te.Kind == jsontok.ErrEOF && (te.Esc < 0 || te.Esc+1 >= len(p.data) || p.data[te.Esc+1] != 'u') {
			break
		}
		return p.fail("not JSON: bad \\u escape at byte %d", te.Esc)
	}
	p.pos = te.Off
	return p.unexpected()
}

// number reads a number literal: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *jsonParser) number() (any, error) {
	start := p.pos
	end, integer, err := jsontok.Number(p.data, p.pos)
	if err != nil {
		return nil, p.tokFail(err)
	}
	p.pos = end
	lit := string(p.data[start:end])
	exp := ""
	for e := len(lit) - 1; !integer && e > 0; e-- {
		if lit[e] == 'e' || lit[e] == 'E' {
			exp = strings.TrimLeft(strings.TrimLeft(lit[e+1:], "+-"), "0")
			break
		}
	}
	if len(lit) > MaxNumberLen {
		return nil, p.fail("number literal longer than %d characters", MaxNumberLen)
	}
	if e, err := strconv.Atoi(exp); exp != "" && (err != nil || e > MaxExponent) {
		return nil, p.fail("number %s has an exponent over %d", lit, MaxExponent)
	}
	if f, err := strconv.ParseFloat(lit, 64); err != nil && math.IsInf(f, 0) {
		return nil, p.fail("number %s is out of the range of an IEEE 754 double", lit)
	}
	return json.Number(lit), nil
}

func quoteKey(k string) string {
	if len(k) > 64 {
		k = strings.ToValidUTF8(k[:64], "") + "..."
	}
	return strconv.Quote(k)
}
