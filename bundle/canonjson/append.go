package canonjson

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"unsafe"

	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/jsontok"
)

// Append appends the RFC 8785 (JCS) form of the JSON value src
// to dst: object members sorted by their UTF-16 code units, strings
// escaped as ECMAScript's JSON.stringify does, no insignificant space.
// Numbers must have integer values within ±(2^53-1), the only numbers
// the formats use (custody.ParseRecord refuses others); anything else is
// an error (a *wire.FormatError), as are duplicate member names, invalid
// UTF-8 and trailing bytes. custody.Record.Marshal canonicalizes a
// record's body with it; Transform of github.com/gowebpki/jcs is its
// reference (see FuzzCanonical).
func Append(dst, src []byte) ([]byte, error) {
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

func (p *canonParser) space() { p.i = jsontok.Space(p.src, p.i) }

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
		return AppendString(dst, s), nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number(dst)
	case c == 't' || c == 'f' || c == 'n':
		if end, err := jsontok.Literal(p.src, p.i); err == nil {
			dst = append(dst, p.src[p.i:end]...)
			p.i = end
			return dst, nil
		}
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
		dst = AppendString(dst, m.key)
		dst = append(dst, ':')
		dst = append(dst, m.val...)
	}
	return append(dst, '}'), nil
}

// str reads a JSON string token and returns its value: valid UTF-8, no
// lone surrogate escape (encoding/json would read it as U+FFFD, JCS
// refuses it).
func (p *canonParser) str() (string, error) {
	start := p.i
	end, f, err := jsontok.String(p.src, p.i, 0)
	if err != nil {
		var te *jsontok.Error
		if errors.As(err, &te) {
			p.i = te.Off
			switch te.Kind {
			case jsontok.ErrEOF:
				return "", p.fail("unterminated string")
			case jsontok.ErrControl:
				return "", p.fail("control character in string")
			case jsontok.ErrUTF8:
				return "", p.fail("invalid UTF-8")
			}
		}
		return "", p.fail("bad string")
	}
	p.i = end
	if f.Plain() {
		return string(p.src[start+1 : end-1]), nil
	}
	v, err := jsontok.Unquote(make([]byte, 0, end-start), p.src[start:end], true)
	if err != nil {
		return "", p.fail("bad string")
	}
	return string(v), nil
}

// number appends the integer the number token at p.i stands for: an
// integer within ±(2^53-1), or a number with a fraction or an exponent
// whose value is such an integer ("1.0", "1e3", "-0.0"), written as that
// integer, as JCS writes it.
func (p *canonParser) number(dst []byte) ([]byte, error) {
	start := p.i
	end, integer, err := jsontok.Number(p.src, p.i)
	if err != nil || end < len(p.src) && jsontok.IsDigit(p.src[end]) { // "01"
		var te *jsontok.Error
		if errors.As(err, &te) {
			p.i = te.Off
		} else {
			for p.i = end; p.i < len(p.src) && jsontok.IsDigit(p.src[p.i]); p.i++ {
			}
		}
		return nil, p.fail("bad number")
	}
	p.i = end
	lit := string(p.src[start:end])
	if integer {
		n, err := strconv.ParseInt(lit, 10, 64)
		if err != nil || n > maxJSONInt || n < -maxJSONInt {
			return nil, p.fail("integer beyond 2^53")
		}
		if n == 0 {
			return append(dst, '0'), nil // "-0" is 0
		}
		return strconv.AppendInt(dst, n, 10), nil
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > maxJSONInt {
		return nil, p.fail("number is not an integer within 2^53")
	}
	if f == 0 {
		return append(dst, '0'), nil
	}
	return strconv.AppendInt(dst, int64(f), 10), nil
}

// AppendString appends s (valid UTF-8) as JSON.stringify writes it.
func AppendString(dst []byte, s string) []byte {
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
