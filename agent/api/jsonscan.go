package api

import (
	"errors"
	"fmt"

	"github.com/edgeseal/edgeseal/internal/jsontok"
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

// jsonScanner walks one JSON document in place with internal/jsontok: the
// envelope's keys and strings are decoded, the data value is validated and
// kept as its span of the input. It accepts exactly the documents
// encoding/json accepts (FuzzDecodeExportMatchesReference holds it to
// that): bytes that are not UTF-8 and lone surrogate escapes in strings
// are read as U+FFFD.
type jsonScanner struct {
	b []byte
	i int
}

// scanMode is encoding/json's: bytes that are not UTF-8 are taken.
const scanMode = jsontok.AllowBadUTF8

func (s *jsonScanner) fail() error {
	if s.i >= len(s.b) {
		return &syntaxError{Offset: len(s.b), EOF: true}
	}
	return &syntaxError{Offset: s.i}
}

// tokErr is the syntaxError of a jsontok error.
func tokErr(err error) error {
	var te *jsontok.Error
	if !errors.As(err, &te) {
		return err
	}
	return &syntaxError{Offset: te.Off, EOF: te.Kind == jsontok.ErrEOF}
}

func (s *jsonScanner) ws() { s.i = jsontok.Space(s.b, s.i) }

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
	start := s.i
	end, f, err := jsontok.String(s.b, s.i, scanMode)
	if err != nil {
		return "", tokErr(err)
	}
	s.i = end
	span := s.b[start:end]
	if f.Plain() {
		return string(span[1 : len(span)-1]), nil
	}
	// Escapes or bytes that are not UTF-8: encoding/json's rules (lone
	// surrogates and bad bytes become U+FFFD).
	v, err := jsontok.Unquote(make([]byte, 0, len(span)), span, false)
	if err != nil {
		return "", &syntaxError{Offset: start}
	}
	return string(v), nil
}

func isDigit(c byte) bool { return jsontok.IsDigit(c) }

// value moves past one JSON value at s.i (after white space), validating
// it, and returns its span.
func (s *jsonScanner) value() ([]byte, error) {
	s.ws()
	start := s.i
	end, err := jsontok.Skip(s.b, s.i, maxJSONDepth, scanMode)
	if err != nil {
		s.i = end
		return nil, tokErr(err)
	}
	s.i = end
	return s.b[start:end], nil
}
