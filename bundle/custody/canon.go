package custody

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/edgeseal/edgeseal/bundle/wire"
)

// appendCanonical appends the RFC 8785 (JCS) form of the JSON value src
// to dst: object members sorted by their UTF-16 code units, strings
// escaped as ECMAScript's JSON.stringify does, no insignificant space.
// Numbers must have integer values within ±(2^53-1), the only numbers
// the formats use (ParseRecord refuses others); anything else is an error,
// as are duplicate member names, invalid UTF-8 and trailing bytes.
// It is the fast path of Record.Marshal; jcs.Transform is its reference
// (see FuzzCanonical).
func appendCanonical(dst, src []byte) ([]byte, error) {
	p := canonParser{src: src}
	p.space()
	out, err := p.value(dst, 0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.src) {
		return nil, p.fail("trailing bytes")
	}
	return out, nil
}

type canonParser struct {
	src []byte
	i   int
}

const maxCanonDepth = 64

var errCanon = errors.New("not canonicalizable JSON")

func (p *canonParser) fail(what string) error {
	return &wire.FormatError{Format: "json", Reason: what + " at byte " + strconv.Itoa(p.i), Err: errCanon}
}

func (p *canonParser) space() {
	for p.i < len(p.src) {
		switch p.src[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *canonParser) value(dst []byte, depth int) ([]byte, error) {
	if depth > maxCanonDepth {
		return nil, p.fail("nesting too deep")
	}
	if p.i >= len(p.src) {
		return nil, p.fail("unexpected end")
	}
	switch c := p.src[p.i]; {
	case c == '{':
		return p.object(dst, depth)
	case c == '[':
		p.i++
		dst = append(dst, '[')
		p.space()
		if p.i < len(p.src) && p.src[p.i] == ']' {
			p.i++
			return append(dst, ']'), nil
		}
		for {
			var err error
			p.space()
			if dst, err = p.value(dst, depth+1); err != nil {
				return nil, err
			}
			p.space()
			if p.i >= len(p.src) {
				return nil, p.fail("unterminated array")
			}
			switch p.src[p.i] {
			case ',':
				p.i++
				dst = append(dst, ',')
			case ']':
				p.i++
				return append(dst, ']'), nil
			default:
				return nil, p.fail("expected , or ]")
			}
		}
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return appendJCSString(dst, s), nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number(dst)
	case bytes.HasPrefix(p.src[p.i:], []byte("true")):
		p.i += 4
		return append(dst, "true"...), nil
	case bytes.HasPrefix(p.src[p.i:], []byte("false")):
		p.i += 5
		return append(dst, "false"...), nil
	case bytes.HasPrefix(p.src[p.i:], []byte("null")):
		p.i += 4
		return append(dst, "null"...), nil
	}
	return nil, p.fail("unexpected byte")
}

type canonMember struct {
	key string
	val []byte // canonical
}

func (p *canonParser) object(dst []byte, depth int) ([]byte, error) {
	p.i++ // {
	var ms []canonMember
	p.space()
	if p.i < len(p.src) && p.src[p.i] == '}' {
		p.i++
		return append(dst, "{}"...), nil
	}
	for {
		p.space()
		if p.i >= len(p.src) || p.src[p.i] != '"' {
			return nil, p.fail("expected member name")
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.src) || p.src[p.i] != ':' {
			return nil, p.fail("expected :")
		}
		p.i++
		p.space()
		v, err := p.value(nil, depth+1)
		if err != nil {
			return nil, err
		}
		ms = append(ms, canonMember{k, v})
		p.space()
		if p.i >= len(p.src) {
			return nil, p.fail("unterminated object")
		}
		if p.src[p.i] == ',' {
			p.i++
			continue
		}
		if p.src[p.i] != '}' {
			return nil, p.fail("expected , or }")
		}
		p.i++
		break
	}
	slices.SortFunc(ms, func(a, b canonMember) int { return compareUTF16String(a.key, b.key) })
	dst = append(dst, '{')
	for i, m := range ms {
		if i > 0 {
			if ms[i-1].key == m.key {
				return nil, p.fail("duplicate member " + strconv.Quote(m.key))
			}
			dst = append(dst, ',')
		}
		dst = appendJCSString(dst, m.key)
		dst = append(dst, ':')
		dst = append(dst, m.val...)
	}
	return append(dst, '}'), nil
}

// str reads a JSON string token and returns its value.
func (p *canonParser) str() (string, error) {
	start := p.i
	p.i++ // opening quote
	simple := true
	for p.i < len(p.src) {
		c := p.src[p.i]
		switch {
		case c == '"':
			p.i++
			tok := p.src[start:p.i]
			if simple {
				if !utf8.Valid(tok) {
					return "", p.fail("invalid UTF-8")
				}
				return string(tok[1 : len(tok)-1]), nil
			}
			var s string
			if err := json.Unmarshal(tok, &s); err != nil || !utf8.Valid(tok) {
				return "", p.fail("bad string")
			}
			if !utf8.ValidString(s) || hasLoneSurrogate(tok) {
				return "", p.fail("bad string")
			}
			return s, nil
		case c == '\\':
			simple = false
			p.i += 2
		case c < 0x20:
			return "", p.fail("control character in string")
		default:
			p.i++
		}
	}
	return "", p.fail("unterminated string")
}

// hasLoneSurrogate reports a \u escape of a surrogate not in a pair,
// which encoding/json turns into U+FFFD and JCS refuses.
func hasLoneSurrogate(tok []byte) bool {
	for i := 0; i+5 < len(tok); i++ {
		if tok[i] != '\\' {
			continue
		}
		if tok[i+1] != 'u' {
			i++
			continue
		}
		r, err := strconv.ParseUint(string(tok[i+2:i+6]), 16, 32)
		if err != nil {
			return true
		}
		if r >= 0xD800 && r < 0xDC00 {
			if i+11 < len(tok) && tok[i+6] == '\\' && tok[i+7] == 'u' {
				r2, err := strconv.ParseUint(string(tok[i+8:i+12]), 16, 32)
				if err == nil && r2 >= 0xDC00 && r2 < 0xE000 {
					i += 11
					continue
				}
			}
			return true
		}
		if r >= 0xDC00 && r < 0xE000 {
			return true
		}
		i += 5
	}
	return false
}

func (p *canonParser) number(dst []byte) ([]byte, error) {
	start := p.i
	if p.src[p.i] == '-' {
		p.i++
	}
	digits := p.i
	if n := p.digits(); n == 0 || (p.src[digits] == '0' && n > 1) {
		return nil, p.fail("bad number")
	}
	if p.i < len(p.src) && (p.src[p.i] == '.' || p.src[p.i] == 'e' || p.src[p.i] == 'E') {
		return p.integralNumber(dst, start)
	}
	n, err := strconv.ParseInt(string(p.src[start:p.i]), 10, 64)
	if err != nil || n > maxJSONInt || n < -maxJSONInt {
		return nil, p.fail("integer beyond 2^53")
	}
	if n == 0 {
		return append(dst, '0'), nil // "-0" is 0
	}
	return strconv.AppendInt(dst, n, 10), nil
}

// digits skips a run of decimal digits and returns its length.
func (p *canonParser) digits() int {
	start := p.i
	for p.i < len(p.src) && p.src[p.i] >= '0' && p.src[p.i] <= '9' {
		p.i++
	}
	return p.i - start
}

// integralNumber finishes a number with a fraction or an exponent, as
// JCS writes it: accepted only when its value is an integer within
// ±(2^53-1) ("1.0", "1e3", "-0.0"), written as that integer.
func (p *canonParser) integralNumber(dst []byte, start int) ([]byte, error) {
	if p.src[p.i] == '.' {
		p.i++
		if p.digits() == 0 {
			return nil, p.fail("bad number")
		}
	}
	if p.i < len(p.src) && (p.src[p.i] == 'e' || p.src[p.i] == 'E') {
		p.i++
		if p.i < len(p.src) && (p.src[p.i] == '+' || p.src[p.i] == '-') {
			p.i++
		}
		if p.digits() == 0 {
			return nil, p.fail("bad number")
		}
	}
	f, err := strconv.ParseFloat(string(p.src[start:p.i]), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > maxJSONInt {
		return nil, p.fail("number is not an integer within 2^53")
	}
	if f == 0 {
		return append(dst, '0'), nil
	}
	return strconv.AppendInt(dst, int64(f), 10), nil
}

// appendJCSString appends s (valid UTF-8) as JSON.stringify writes it.
func appendJCSString(dst []byte, s string) []byte {
	const hexd = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// compareUTF16String is compareUTF16 for strings (viewed as bytes, not
// copied: compareUTF16 only reads them).
func compareUTF16String(a, b string) int {
	return compareUTF16(unsafe.Slice(unsafe.StringData(a), len(a)), unsafe.Slice(unsafe.StringData(b), len(b)))
}
