package api

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// maxJSONDepth is encoding/json's nesting limit, kept so that both
// decoders accept the same documents.
const maxJSONDepth = 10000

// syntaxError is a JSON syntax error at a byte offset of the input.
type syntaxError struct {
	Offset int
	EOF    bool // the input ended inside a value
}

func (e *syntaxError) Error() string {
	if e.EOF {
		return "unexpected end of JSON"
	}
	return fmt.Sprintf("invalid JSON at byte %d", e.Offset)
}

// jsonScanner walks one JSON document in place: the envelope's keys and
// strings are decoded, the data value is validated and kept as its span of
// the input. It accepts exactly the documents encoding/json accepts
// (FuzzDecodeExportMatchesReference holds it to that).
type jsonScanner struct {
	b []byte
	i int
}

func (s *jsonScanner) fail() error {
	if s.i >= len(s.b) {
		return &syntaxError{Offset: len(s.b), EOF: true}
	}
	return &syntaxError{Offset: s.i}
}

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next skips white space and reports the next byte (0 at the end).
func (s *jsonScanner) next() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// str decodes the string at s.i (which must start with a quote).
func (s *jsonScanner) str() (string, error) {
	start, plain, err := s.skipString()
	if err != nil {
		return "", err
	}
	span := s.b[start:s.i]
	if plain {
		return string(span[1 : len(span)-1]), nil
	}
	// Escapes or bytes that are not UTF-8: encoding/json's rules (lone
	// surrogates and bad bytes become U+FFFD).
	var v string
	if err := json.Unmarshal(span, &v); err != nil {
		return "", &syntaxError{Offset: start}
	}
	return v, nil
}

// skipString moves past the string at s.i and returns where it started and
// whether it is plain: no escapes, valid UTF-8, so its bytes are its value.
func (s *jsonScanner) skipString() (start int, plain bool, err error) {
	start = s.i
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return start, false, s.fail()
	}
	s.i++
	plain = true
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return start, plain, nil
		case c < 0x20:
			return start, false, s.fail()
		case c == '\\':
			plain = false
			s.i++
			if s.i >= len(s.b) {
				return start, false, s.fail()
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				s.i++
				for range 4 {
					if s.i >= len(s.b) || !isHex(s.b[s.i]) {
						return start, false, s.fail()
					}
					s.i++
				}
			default:
				return start, false, s.fail()
			}
		case c < utf8.RuneSelf:
			s.i++
		default:
			r, n := utf8.DecodeRune(s.b[s.i:])
			if r == utf8.RuneError && n == 1 {
				plain = false
			}
			s.i += n
		}
	}
	return start, false, s.fail()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// value moves past one JSON value at s.i (after white space), validating
// it, and returns its span.
func (s *jsonScanner) value() ([]byte, error) {
	s.ws()
	start := s.i
	// open holds the containers entered: '{' or '['.
	var open []byte
	for {
		// A value.
		if s.i >= len(s.b) {
			return nil, s.fail()
		}
		switch c := s.b[s.i]; {
		case c == '{' || c == '[':
			if len(open) == maxJSONDepth {
				return nil, s.fail()
			}
			open = append(open, c)
			s.i++
			close := byte('}')
			if c == '[' {
				close = ']'
			}
			if s.next() == close {
				s.i++
				open = open[:len(open)-1]
				break
			}
			if c == '{' {
				if err := s.key(); err != nil {
					return nil, err
				}
			}
			continue
		case c == '"':
			if _, _, err := s.skipString(); err != nil {
				return nil, err
			}
		case c == '-' || isDigit(c):
			if err := s.number(); err != nil {
				return nil, err
			}
		case c == 't':
			if err := s.literal("true"); err != nil {
				return nil, err
			}
		case c == 'f':
			if err := s.literal("false"); err != nil {
				return nil, err
			}
		case c == 'n':
			if err := s.literal("null"); err != nil {
				return nil, err
			}
		default:
			return nil, s.fail()
		}
		// After a value: close containers or go to the next element.
		for {
			if len(open) == 0 {
				return s.b[start:s.i], nil
			}
			top := open[len(open)-1]
			c := s.next()
			if c == ',' {
				s.i++
				if top == '{' {
					s.ws()
					if err := s.key(); err != nil {
						return nil, err
					}
				} else {
					s.ws()
				}
				break
			}
			if top == '{' && c == '}' || top == '[' && c == ']' {
				s.i++
				open = open[:len(open)-1]
				continue
			}
			return nil, s.fail()
		}
	}
}

// key moves past an object key and its colon, and the white space after.
func (s *jsonScanner) key() error {
	if _, _, err := s.skipString(); err != nil {
		return err
	}
	if s.next() != ':' {
		return s.fail()
	}
	s.i++
	s.ws()
	return nil
}

func (s *jsonScanner) literal(lit string) error {
	for k := range len(lit) {
		if s.i >= len(s.b) || s.b[s.i] != lit[k] {
			return s.fail()
		}
		s.i++
	}
	return nil
}

// number moves past a JSON number: -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)?
func (s *jsonScanner) number() error {
	if s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i >= len(s.b):
		return s.fail()
	case s.b[s.i] == '0':
		s.i++
	case isDigit(s.b[s.i]):
		for s.i < len(s.b) && isDigit(s.b[s.i]) {
			s.i++
		}
	default:
		return s.fail()
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.i >= len(s.b) || !isDigit(s.b[s.i]) {
			return s.fail()
		}
		for s.i < len(s.b) && isDigit(s.b[s.i]) {
			s.i++
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.i >= len(s.b) || !isDigit(s.b[s.i]) {
			return s.fail()
		}
		for s.i < len(s.b) && isDigit(s.b[s.i]) {
			s.i++
		}
	}
	return nil
}
