// Package jsontok is the JSON tokenizer shared by edgeseal's hand-written
// JSON scanners: the canonicalizer, the canonical-form checker and the
// record decoder of bundle, the export envelope decoder of agent/api and
// the data reader of agent/policy. Each of them walks objects and arrays
// its own way (sorting members, capturing spans, building values) and
// takes its tokens from here.
//
// It works in place on a byte slice, from an offset, and returns the
// offset after the token: no allocation, no copy, nothing read past the
// slice. It is strict RFC 8259: strings with their escapes checked
// (\uXXXX with four hex digits; Unquote pairs surrogates and can refuse a
// lone one), no unescaped control character, UTF-8 checked unless the
// caller asks otherwise; numbers checked against the grammar and handed
// back as their exact text (what a number means is the caller's
// business); literals; white space. Skip checks and moves past one whole
// value with a bound on nesting; End only finds where a value of input
// already checked ends. Object member names are strings like any other:
// duplicate names are for the caller to find, as each needs its own rule
// (encoding/json keeps the last, RFC 8785 refuses them).
//
// Errors are *Error: a Kind and the offset of the offending byte (the
// slice's length when the input ended inside a token).
package jsontok

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"unicode/utf8"
)

// Kind says what is wrong at an Error's offset.
type Kind uint8

const (
	// ErrEOF: the input ended inside a token or value.
	ErrEOF Kind = iota + 1
	// ErrSyntax: a byte that cannot start or continue a token here.
	ErrSyntax
	// ErrControl: a control character (below U+0020) in a string.
	ErrControl
	// ErrEscape: a backslash followed by a byte that makes no escape.
	ErrEscape
	// ErrUnicode: \u not followed by four hex digits.
	ErrUnicode
	// ErrUTF8: bytes that are not UTF-8 in a string.
	ErrUTF8
	// ErrSurrogate: a \u escape of a surrogate not in a pair (Unquote
	// with strict set).
	ErrSurrogate
	// ErrNotCanonicalU: in Canonical mode, a \u escape of a character
	// other than a control character.
	ErrNotCanonicalU
	// ErrNotCanonical: in Canonical mode, a \u00xx escape RFC 8785 does
	// not write (upper-case hex, or a character with a short escape).
	ErrNotCanonical
	// ErrDepth: nesting deeper than Skip's bound.
	ErrDepth
)

var kindText = [...]string{
	ErrEOF: "unexpected end", ErrSyntax: "unexpected byte", ErrControl: "control character in string",
	ErrEscape: "bad escape", ErrUnicode: "bad \\u escape", ErrUTF8: "invalid UTF-8",
	ErrSurrogate: "lone surrogate escape", ErrNotCanonicalU: "\\u escape of a non-control character",
	ErrNotCanonical: "escape not canonical", ErrDepth: "nested too deep",
}

// Error is a lexical error at byte Off of the input. For the escape
// kinds, Esc is the offset of the escape's backslash.
type Error struct {
	Kind Kind
	Off  int
	Esc  int
}

func (e *Error) Error() string {
	return "json: " + kindText[e.Kind] + " at byte " + strconv.Itoa(e.Off)
}

// fail is an *Error at off, of kind ErrEOF when off is at the end of b.
func fail(b []byte, off int, k Kind) error {
	if off >= len(b) {
		return &Error{Kind: ErrEOF, Off: len(b), Esc: -1}
	}
	return &Error{Kind: k, Off: off, Esc: -1}
}

func failEsc(b []byte, off, esc int, k Kind) error {
	if off >= len(b) {
		return &Error{Kind: ErrEOF, Off: len(b), Esc: esc}
	}
	return &Error{Kind: k, Off: off, Esc: esc}
}

// Space returns the offset of the first byte at or after i that is not
// JSON white space (space, tab, line feed, carriage return).
func Space(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// IsDigit reports an ASCII decimal digit.
func IsDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// Mode selects String's rules beyond RFC 8259.
type Mode uint8

const (
	// AllowBadUTF8 accepts bytes that are not UTF-8 in strings, flagged
	// BadUTF8 (encoding/json reads each as U+FFFD; so does Unquote).
	AllowBadUTF8 Mode = 1 << iota
	// Canonical accepts only the escapes RFC 8785 writes: \" \\ \b \f \n
	// \r \t, and \u00xx in lower-case hex for the other control
	// characters.
	Canonical
)

// Str describes a string token String accepted.
type Str uint8

const (
	// Escaped: the string holds a backslash escape.
	Escaped Str = 1 << iota
	// BadUTF8: the string holds bytes that are not UTF-8 (AllowBadUTF8).
	BadUTF8
)

// Plain reports a string whose bytes between the quotes are its value.
func (s Str) Plain() bool { return s == 0 }

// String checks the string token starting at b[i] (its opening quote)
// and returns the offset after its closing quote.
func String(b []byte, i int, m Mode) (int, Str, error) {
	if i >= len(b) || b[i] != '"' {
		return i, 0, fail(b, i, ErrSyntax)
	}
	i++
	// The common case: printable ASCII without a backslash up to the
	// closing quote; short ones byte by byte, longer ones a word at a
	// time.
	for n := min(len(b), i+16); i < n; i++ {
		if c := b[i]; !plainASCII[c] {
			if c == '"' {
				return i + 1, 0, nil
			}
			break
		}
	}
	if q := bytes.IndexByte(b[i:], '"'); q >= 0 && plainSpan(b[i:i+q]) {
		return i + q + 1, 0, nil
	}
	var f Str
	for i < len(b) {
		i = plainRun(b, i)
		for i < len(b) && plainASCII[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, f, nil
		case c == '\\':
			f |= Escaped
			n, err := escape(b, i, m)
			if err != nil {
				return i, f, err
			}
			i += n
		case c < 0x20:
			return i, f, fail(b, i, ErrControl)
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				if m&AllowBadUTF8 == 0 {
					return i, f, fail(b, i, ErrUTF8)
				}
				f |= BadUTF8
			}
			i += n
		}
	}
	return i, f, fail(b, i, ErrEOF)
}

// escape checks the escape at b[i] (a backslash) and returns its length.
func escape(b []byte, i int, m Mode) (int, error) {
	if i+1 >= len(b) {
		return 0, failEsc(b, i+1, i, ErrEOF)
	}
	switch e := b[i+1]; e {
	case '"', '\\', 'b', 'f', 'n', 'r', 't':
		return 2, nil
	case '/':
		if m&Canonical == 0 {
			return 2, nil
		}
	case 'u':
		if m&Canonical != 0 {
			return canonicalU(b, i)
		}
		for k := i + 2; k < i+6; k++ {
			if k >= len(b) || !isHex(b[k]) {
				return 0, failEsc(b, k, i, ErrUnicode)
			}
		}
		return 6, nil
	}
	return 0, failEsc(b, i+1, i, ErrEscape)
}

// canonicalU checks a \u escape in Canonical mode: \u00xx, lower-case
// hex, of a control character without a short escape.
func canonicalU(b []byte, i int) (int, error) {
	if i+6 > len(b) || b[i+2] != '0' || b[i+3] != '0' {
		return 0, &Error{Kind: ErrNotCanonicalU, Off: i, Esc: i}
	}
	h, l := b[i+4], b[i+5]
	if (h != '0' && h != '1') || !('0' <= l && l <= '9' || 'a' <= l && l <= 'f') {
		return 0, &Error{Kind: ErrNotCanonical, Off: i, Esc: i}
	}
	switch v := (h-'0')<<4 | hexVal(l); v {
	case '\b', '\f', '\n', '\r', '\t':
		return 0, &Error{Kind: ErrNotCanonical, Off: i, Esc: i}
	}
	return 6, nil
}

func hexVal(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// u4 reads the four hex digits of a \u escape at s[0] (-1 when s holds
// none).
func u4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		if !isHex(c) {
			return -1
		}
		r = r<<4 | rune(hexVal(c))
	}
	return r
}

// Unquote appends the value of the string token tok (quotes included, as
// String accepted it) to dst. A \u escape of a surrogate not in a pair is
// an error with strict set, else U+FFFD; bytes that are not UTF-8 become
// U+FFFD. Without strict the value is the one encoding/json gives.
func Unquote(dst, tok []byte, strict bool) ([]byte, error) {
	if len(tok) < 2 || tok[0] != '"' || tok[len(tok)-1] != '"' {
		return dst, fail(tok, 0, ErrSyntax)
	}
	s := tok[1 : len(tok)-1]
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) {
				return dst, failEsc(tok, 1+i+1, 1+i, ErrEscape)
			}
			switch e := s[i+1]; e {
			case '"', '\\', '/':
				dst = append(dst, e)
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := u4(s[i:])
				if r < 0 {
					return dst, failEsc(tok, 1+i+2, 1+i, ErrUnicode)
				}
				if r >= 0xD800 && r < 0xE000 {
					if r < 0xDC00 {
						if r2 := u4(s[i+6:]); r2 >= 0xDC00 && r2 < 0xE000 {
							dst = utf8.AppendRune(dst, 0x10000+(r-0xD800)<<10|(r2-0xDC00))
							i += 12
							continue
						}
					}
					if strict {
						return dst, &Error{Kind: ErrSurrogate, Off: 1 + i, Esc: 1 + i}
					}
					r = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, r)
				i += 6
				continue
			default:
				return dst, failEsc(tok, 1+i+1, 1+i, ErrEscape)
			}
			i += 2
		case c < utf8.RuneSelf:
			j := i + 1
			for j < len(s) && s[j] < utf8.RuneSelf && s[j] != '\\' {
				j++
			}
			dst = append(dst, s[i:j]...)
			i = j
		default:
			r, n := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && n == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, s[i:i+n]...)
			}
			i += n
		}
	}
	return dst, nil
}

// Number checks the number token at b[i],
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, and returns the offset
// after it (b[i:end] is its exact text) and whether it is an integer (no
// fraction, no exponent). As in the grammar, a leading zero ends the
// integer part: in "01" the number is "0" and "1" is left to the caller
// (no JSON text has a digit there).
func Number(b []byte, i int) (end int, integer bool, err error) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return i, false, fail(b, i, ErrEOF)
	case b[i] == '0':
		i++
	case IsDigit(b[i]):
		i = digits(b, i)
	default:
		return i, false, fail(b, i, ErrSyntax)
	}
	integer = true
	if i < len(b) && b[i] == '.' {
		integer = false
		i++
		if i >= len(b) || !IsDigit(b[i]) {
			return i, false, fail(b, i, ErrSyntax)
		}
		i = digits(b, i)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		integer = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !IsDigit(b[i]) {
			return i, false, fail(b, i, ErrSyntax)
		}
		i = digits(b, i)
	}
	return i, integer, nil
}

func digits(b []byte, i int) int {
	for i < len(b) && IsDigit(b[i]) {
		i++
	}
	return i
}

// Literal checks true, false or null at b[i] and returns the offset after
// it; the error is at the first byte that differs.
func Literal(b []byte, i int) (int, error) {
	var lit string
	switch {
	case i >= len(b):
		return i, fail(b, i, ErrEOF)
	case b[i] == 't':
		lit = "true"
	case b[i] == 'f':
		lit = "false"
	case b[i] == 'n':
		lit = "null"
	default:
		return i, fail(b, i, ErrSyntax)
	}
	for k := range len(lit) {
		if i+k >= len(b) || b[i+k] != lit[k] {
			return i + k, fail(b, i+k, ErrSyntax)
		}
	}
	return i + len(lit), nil
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

// plainASCII marks bytes a string holds as they are, without a closer
// look: printable ASCII but the quote and the backslash.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()
