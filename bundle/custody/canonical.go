package custody

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// maxDepth bounds nesting in canonical JSON.
const maxDepth = 32

// checkCanonical reports whether b is one JSON value in RFC 8785 (JCS)
// canonical form, restricted to integer numbers of magnitude below 2^53
// (records carry no fractions): no whitespace, object keys strictly
// increasing in UTF-16 order (so no duplicates), strings escaped exactly
// as JCS does, valid UTF-8. It returns the offset of the first offending
// byte. It is a single pass without allocation for the common case.
func checkCanonical(b []byte) (int, error) {
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
	top, body []member
}

// checkCanonicalRecord is checkCanonical that also returns the members of
// the top-level object and of its "body" object, appended to top and body.
func checkCanonicalRecord(b []byte, top, body []member) ([]member, []member, int, error) {
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
		_, err := c.str()
		return err
	case ch == '-' || ch >= '0' && ch <= '9':
		return c.number()
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(c.b[c.i:], []byte(lit)) {
				c.i += len(lit)
				return nil
			}
		}
		return fmt.Errorf("unexpected byte %q", ch)
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
			return fmt.Errorf("want :")
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
				c.top = append(c.top, member{key, c.b[vstart:c.i], vstart})
				c.inBody = false
			case depth == 1 && c.inBody:
				c.body = append(c.body, member{key, c.b[vstart:c.i], vstart})
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
	c.i++ // opening quote
	start := c.i
	// The common case: no escape, no control or non-ASCII byte up to the
	// closing quote. Anything else takes the loop below from the start.
	if q := bytes.IndexByte(c.b[start:], '"'); q >= 0 && plainSpan(c.b[start:start+q]) {
		c.i = start + q + 1
		return c.b[start : start+q], nil
	}
	var dec []byte // decoded copy, only once an escape was seen
	for c.i < len(c.b) {
		// Runs of plain ASCII first: the common case, eight bytes at a
		// time while no byte of a word needs a closer look.
		j := plainRun(c.b, c.i)
		for j < len(c.b) && plainASCII[c.b[j]] {
			j++
		}
		if dec != nil {
			dec = append(dec, c.b[c.i:j]...)
		}
		c.i = j
		if c.i >= len(c.b) {
			break
		}
		ch := c.b[c.i]
		switch {
		case ch == '"':
			s := c.b[start:c.i]
			c.i++
			if dec != nil {
				return dec, nil
			}
			return s, nil
		case ch == '\\':
			if dec == nil {
				dec = append([]byte(nil), c.b[start:c.i]...)
			}
			if c.i+1 >= len(c.b) {
				return nil, fmt.Errorf("unexpected end")
			}
			e := c.b[c.i+1]
			switch e {
			case '"', '\\':
				dec = append(dec, e)
			case 'b':
				dec = append(dec, '\b')
			case 'f':
				dec = append(dec, '\f')
			case 'n':
				dec = append(dec, '\n')
			case 'r':
				dec = append(dec, '\r')
			case 't':
				dec = append(dec, '\t')
			case 'u':
				if c.i+6 > len(c.b) || string(c.b[c.i+2:c.i+4]) != "00" {
					return nil, fmt.Errorf("\\u escape of a non-control character")
				}
				v, err := strconv.ParseUint(string(c.b[c.i+4:c.i+6]), 16, 8)
				if err != nil || v >= 0x20 || v == '\b' || v == '\f' || v == '\n' || v == '\r' || v == '\t' ||
					string(c.b[c.i+4:c.i+6]) != fmt.Sprintf("%02x", v) {
					return nil, fmt.Errorf("escape not canonical")
				}
				dec = append(dec, byte(v))
				c.i += 4
			default:
				return nil, fmt.Errorf("escape \\%c", e)
			}
			c.i += 2
		case ch < 0x20:
			return nil, fmt.Errorf("unescaped control character")
		case ch < utf8.RuneSelf:
			if dec != nil {
				dec = append(dec, ch)
			}
			c.i++
		default:
			r, n := utf8.DecodeRune(c.b[c.i:])
			if r == utf8.RuneError && n <= 1 {
				return nil, fmt.Errorf("invalid UTF-8")
			}
			if dec != nil {
				dec = append(dec, c.b[c.i:c.i+n]...)
			}
			c.i += n
		}
	}
	return nil, fmt.Errorf("unterminated string")
}

func (c *canonChecker) number() error {
	start := c.i
	if c.b[c.i] == '-' {
		c.i++
	}
	digits := c.i
	var n uint64
	for c.i < len(c.b) && c.b[c.i] >= '0' && c.b[c.i] <= '9' {
		if c.i-digits < 16 {
			n = n*10 + uint64(c.b[c.i]-'0')
		}
		c.i++
	}
	switch {
	case c.i == digits:
		return fmt.Errorf("number without digits")
	case c.b[digits] == '0' && c.i-digits > 1:
		return fmt.Errorf("leading zero")
	case n == 0 && digits > start:
		return fmt.Errorf("negative zero")
	case c.i < len(c.b) && (c.b[c.i] == '.' || c.b[c.i] == 'e' || c.b[c.i] == 'E'):
		return fmt.Errorf("only integers are allowed")
	}
	// 2^53-1 has 16 digits; without a leading zero, more are beyond it.
	if c.i-digits > 16 || n > maxJSONInt {
		return fmt.Errorf("integer %s beyond 2^53", c.b[start:c.i])
	}
	return nil
}

// plainSpan reports whether s holds no byte below 0x20, no backslash and
// none of 0x80 and above (s holds no quote: the caller cut it before one).
func plainSpan(s []byte) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	var acc uint64
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := binary.LittleEndian.Uint64(s[i:])
		bs := x ^ (ones * '\\')
		// Exact as a yes/no, as in plainRun.
		acc |= (x-ones*0x20)&^x | (bs-ones)&^bs | x
	}
	if acc&highs != 0 {
		return false
	}
	for ; i < len(s); i++ {
		if !plainASCII[s[i]] {
			return false
		}
	}
	return true
}

// plainRun returns the end of the run of plainASCII bytes from i, or a
// point before it: it steps a word at a time and stops at the first word
// that holds a byte below 0x20, a quote, a backslash or one of 0x80 and
// above (the caller finishes byte by byte).
func plainRun(b []byte, i int) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for i+8 <= len(b) {
		x := binary.LittleEndian.Uint64(b[i:])
		q, bs := x^(ones*'"'), x^(ones*'\\')
		// Exact as a yes/no: the lowest byte that matches always sets its
		// high bit (borrows only come from matching bytes below it).
		if ((x-ones*0x20)&^x|(q-ones)&^q|(bs-ones)&^bs|x)&highs != 0 {
			return i
		}
		i += 8
	}
	return i
}

// plainASCII marks bytes a canonical string holds as they are, without
// a closer look: printable ASCII but the quote and the backslash.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

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
