package spool

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// MaxMetaSize is the largest sidecar read.
const MaxMetaSize = 64 << 10

// MetaSuffix ends the name of every sidecar.
const MetaSuffix = ".meta.json"

// Meta is a decoded sidecar: the export's metadata as its request
// carries it, and the principal. Data is never set; an empty ID is
// derived from the file name and content; MediaType is "media_type" (or
// "mediaType"), empty: guessed from the file name.
type Meta struct {
	IngestRequest
	Principal string // required: the name of the spool's principal
}

// MetaError is a sidecar that cannot be used. Field is the JSON key at
// fault, "" for the whole document.
type MetaError struct {
	Field, Reason string
}

func (e *MetaError) Error() string {
	if e.Field == "" {
		return "spool: sidecar: " + e.Reason
	}
	return fmt.Sprintf("spool: sidecar: %s: %s", e.Field, e.Reason)
}

// DecodeMeta decodes a sidecar strictly: one JSON object of string
// fields, no unknown or repeated keys, nothing after it, valid UTF-8, at
// most MaxMetaSize bytes, principal required. Errors are *MetaError.
func DecodeMeta(data []byte) (Meta, error) {
	var m Meta
	if len(data) > MaxMetaSize {
		return m, &MetaError{Reason: fmt.Sprintf("larger than %d bytes", MaxMetaSize)}
	}
	if !utf8.Valid(data) {
		return m, &MetaError{Reason: "not valid UTF-8"}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return m, &MetaError{Reason: "not JSON: " + jsonErr(err)}
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return m, &MetaError{Reason: "want a JSON object"}
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return m, &MetaError{Reason: "not JSON: " + jsonErr(err)}
		}
		key, _ := tok.(string)
		field := metaField(&m, key)
		if field == nil {
			return m, &MetaError{Field: clipKey(key), Reason: "unknown field"}
		}
		canon := key
		if key == "mediaType" {
			canon = "media_type"
		}
		if seen[canon] {
			return m, &MetaError{Field: key, Reason: "given twice"}
		}
		seen[canon] = true
		tok, err = dec.Token()
		if err != nil {
			return m, &MetaError{Field: key, Reason: "not JSON: " + jsonErr(err)}
		}
		s, ok := tok.(string)
		if !ok {
			return m, &MetaError{Field: key, Reason: "want a string"}
		}
		*field = s
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return m, &MetaError{Reason: "not JSON: " + jsonErr(err)}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return m, &MetaError{Reason: "data after the JSON object"}
	}
	if m.Principal == "" {
		return m, &MetaError{Field: "principal", Reason: "required: the principal the spool is trusted as"}
	}
	return m, nil
}

func metaField(m *Meta, key string) *string {
	switch key {
	case "id":
		return &m.ID
	case "workflow":
		return &m.Workflow
	case "app":
		return &m.App
	case "purpose":
		return &m.Purpose
	case "schema":
		return &m.Schema
	case "classification":
		return &m.Classification
	case "retention":
		return &m.Retention
	case "destination":
		return &m.Destination
	case "media_type", "mediaType":
		return &m.MediaType
	case "principal":
		return &m.Principal
	}
	return nil
}

func jsonErr(err error) string {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func clipKey(k string) string {
	if len(k) > 64 {
		k = k[:64]
		for len(k) > 0 && !utf8.ValidString(k) {
			k = k[:len(k)-1]
		}
		k += "…"
	}
	return k
}
