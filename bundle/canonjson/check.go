package canonjson

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/edgeseal/edgeseal/bundle/internal/strict"
	"github.com/edgeseal/edgeseal/internal/jsontok"
)

// maxDepth bounds nesting in canonical JSON.
const maxDepth = 32

// maxJSONInt is the largest integer magnitude the checker and Append accept.
const maxJSONInt = strict.MaxJSONInt

// Member is one member of an object that CheckMembers accepted.
type Member struct {
	Key []byte // decoded
	Val []byte // raw value
	Off int    // offset of Val in the checked bytes
}

// check reports whether b is one JSON value in RFC 8785 (JCS)
// canonical form, restricted to integer numbers of magnitude below 2^53
// (records carry no fractions): no whitespace, object keys strictly
// increasing in UTF-16 order (so no duplicates), strings escaped exactly
// as JCS does, valid UTF-8. It returns the offset of the first offending
// byte. It is a single pass without allocation for the common case.
func check(b []byte) (int, error) {
	c := canonChecker{b: b}
	if err := c.value(0); err != nil {
		return c.i, err
	}
	if c.i != len(b) {
		return c.i, fmt.Errorf("trailing data")
	}
	return 0, nil
}

type canonChecker struct {
	b []byte
	i int

	// With capture set, the members of the top-level object and of its
	// "body" member are recorded on the way, sparing decoders a rescan.
	capture   bool
	inBody    bool
	top, body []Member
}

// CheckMembers checks that b is one JSON object in RFC 8785 canonical
// form, restricted to integer numbers of magnitude below 2^53 (see
// check), and returns the members of that object and of its "body"
// member (the layout of a custody record), appended to top and body, so
// that a decoder need not scan them again. On error it returns the
// offset of the first offending byte.
func CheckMembers(b []byte, top, body []Member) ([]Member, []Member, int, error) {
	c := canonChecker{b: b, capture: true, top: top, body: body}
	if len(b) == 0 || b[0] != '{' {
		return nil, nil, 0, fmt.Errorf("not an object")
	}
	if err := c.value(0); err != nil {
		return nil, nil, c.i, err
	}
	if c.i != len(b) {
		return nil, nil, c.i, fmt.Errorf("trailing data")
	}
	return c.top, c.body, 0, nil
}

func (c *canonChecker) value(depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("nested deeper than %d", maxDepth)
	}
	if c.i >= len(c.b) {
		return fmt.Errorf("unexpected end")
	}
	switch ch := c.b[c.i]; {
	case ch == '{':
		return c.object(depth)
	case ch == '[':
		c.i++
		if c.i < len(c.b) && c.b[c.i] == ']' {
			c.i++
			return nil
		}
		for {
			if err := c.value(depth + 1); err != nil {
				return err
			}
			if c.i >= len(c.b) {
				return fmt.Errorf("unexpected end")
			}
			if c.b[c.i] == ']' {
				c.i++
				return nil
			}
			if c.b[c.i] != ',' {
				return fmt.Errorf("want , or ]")
			}
			c.i++
		}
	case ch == '"':
		end, _, err := jsontok.String(c.b, c.i, jsontok.Canonical)
		if err != nil {
			return c.strErr(err)
		}
		c.i = end
		return nil
	case ch == '-' || ch >= '0' && ch <= '9':
		return c.number()
	default:
		end, err := jsontok.Literal(c.b, c.i)
		if err != nil {
			return fmt.Errorf("unexpected byte %q", ch)
		}
		c.i = end
		return nil
	}
}

func (c *canonChecker) object(depth int) error {
	c.i++ // '{'
	if c.i < len(c.b) && c.b[c.i] == '}' {
		c.i++
		return nil
	}
	var prev []byte
	for {
		if c.i >= len(c.b) || c.b[c.i] != '"' {
			return fmt.Errorf("want key")
		}
		start := c.i
		key, err := c.str()
		if err != nil {
			return err
		}
		if prev != nil && compareUTF16(prev, key) >= 0 {
			c.i = start
			return fmt.Errorf("key %q not after %q", key, prev)
		}
		prev = key
		if c.i >= len(c.b) || c.b[c.i] != ':' {
			return errors.New("want a colon")
		}
		c.i++
		vstart := c.i
		body := c.capture && depth == 0 && string(key) == "body"
		if body {
			c.inBody = true
		}
		if err := c.value(depth + 1); err != nil {
			return err
		}
		if c.capture {
			switch {
			case depth == 0:
				c.top = append(c.top, Member{key, c.b[vstart:c.i], vstart})
				c.inBody = false
			case depth == 1 && c.inBody:
				c.body = append(c.body, Member{key, c.b[vstart:c.i], vstart})
			}
		}
		if c.i >= len(c.b) {
			return fmt.Errorf("unexpected end")
		}
		if c.b[c.i] == '}' {
			c.i++
			return nil
		}
		if c.b[c.i] != ',' {
			return fmt.Errorf("want , or }")
		}
		c.i++
	}
}

// str checks a canonical string and returns its decoded value (the raw
// bytes when there is no escape).
func (c *canonChecker) str() ([]byte, error) {
	start := c.i
	end, f, err := jsontok.String(c.b, c.i, jsontok.Canonical)
	if err != nil {
		return nil, c.strErr(err)
	}
	c.i = end
	if f&jsontok.Escaped == 0 {
		return c.b[start+1 : end-1], nil
	}
	// Canonical escapes are of control characters only: no surrogates.
	return jsontok.Unquote(make([]byte, 0, end-start), c.b[start:end], true)
}

// strErr names what jsontok refused in a string, at its escape or byte.
func (c *canonChecker) strErr(err error) error {
	var te *jsontok.Error
	if !errors.As(err, &te) {
		return err
	}
	c.i = te.Off
	if te.Esc >= 0 {
		c.i = te.Esc
	}
	switch te.Kind {
	case jsontok.ErrEOF:
		if te.Esc >= 0 {
			return fmt.Errorf("unexpected end")
		}
		return fmt.Errorf("unterminated string")
	case jsontok.ErrControl:
		return fmt.Errorf("unescaped control character")
	case jsontok.ErrUTF8:
		return fmt.Errorf("invalid UTF-8")
	case jsontok.ErrNotCanonicalU:
		return fmt.Errorf("\\u escape of a non-control character")
	case jsontok.ErrNotCanonical:
		return fmt.Errorf("escape not canonical")
	case jsontok.ErrEscape:
		return fmt.Errorf("escape \\%c", c.b[te.Off])
	}
	return err
}

// number checks a canonical number: an integer, no leading zero, no
// negative zero, within ±(2^53-1).
func (c *canonChecker) number() error {
	start := c.i
	digits := start
	if c.b[start] == '-' {
		digits++
	}
	if digits >= len(c.b) || !jsontok.IsDigit(c.b[digits]) {
		c.i = digits
		return fmt.Errorf("number without digits")
	}
	_, integer, err := jsontok.Number(c.b, c.i)
	// The integer part and the value of its first 16 digits.
	var n uint64
	k := digits
	for ; k < len(c.b) && jsontok.IsDigit(c.b[k]); k++ {
		if k-digits < 16 {
			n = n*10 + uint64(c.b[k]-'0')
		}
	}
	c.i = k
	switch {
	case c.b[digits] == '0' && k-digits > 1:
		return fmt.Errorf("leading zero")
	case n == 0 && digits > start:
		return fmt.Errorf("negative zero")
	case err != nil || !integer:
		return fmt.Errorf("only integers are allowed")
	}
	// 2^53-1 has 16 digits; without a leading zero, more are beyond it.
	if k-digits > 16 || n > maxJSONInt {
		return fmt.Errorf("integer %s beyond 2^53", c.b[start:k])
	}
	return nil
}

// compareUTF16 orders two UTF-8 strings by their UTF-16 code units, the
// JCS key order.
func compareUTF16(a, b []byte) int {
	for len(a) > 0 && len(b) > 0 {
		if a[0] < utf8.RuneSelf && b[0] < utf8.RuneSelf {
			if a[0] != b[0] {
				return int(a[0]) - int(b[0])
			}
			a, b = a[1:], b[1:]
			continue
		}
		ra, na := utf8.DecodeRune(a)
		rb, nb := utf8.DecodeRune(b)
		if ra != rb {
			return utf16First(ra) - utf16First(rb)
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) - len(b)
}

func utf16First(r rune) int {
	if r >= 0x10000 {
		return 0xd800 + int((r-0x10000)>>10)
	}
	return int(r)
}
