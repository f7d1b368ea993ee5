package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/edgeseal/edgeseal/agent"
)

// Header names of the raw form of POST /v1/exports.
const (
	HeaderID             = "Edgeseal-Id"
	HeaderWorkflow       = "Edgeseal-Workflow"
	HeaderApp            = "Edgeseal-App"
	HeaderPurpose        = "Edgeseal-Purpose"
	HeaderSchema         = "Edgeseal-Schema"
	HeaderClassification = "Edgeseal-Classification"
	HeaderRetention      = "Edgeseal-Retention"
	HeaderDestination    = "Edgeseal-Destination"
)

// NDJSONType is the media type of batch requests and answers.
const NDJSONType = "application/x-ndjson"

var ndjsonTypes = map[string]bool{
	NDJSONType: true, "application/ndjson": true, "application/jsonl": true,
	"application/x-jsonlines": true, "application/jsonlines": true,
}

func badField(field, format string, a ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeBadField, Field: field, Msg: fmt.Sprintf(format, a...)}
}

func malformed(format string, a ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeMalformedJSON, Msg: fmt.Sprintf(format, a...)}
}

func unsupported(format string, a ...any) *Error {
	return &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMedia, Msg: fmt.Sprintf(format, a...)}
}

// DecodeExport decodes the JSON envelope of one export (a request body or
// one batch line). Decoding is strict: one JSON object, no unknown or
// repeated keys, string fields as strings, data required (any JSON value,
// kept byte for byte), nothing after the object. Errors are *Error (400).
func DecodeExport(body []byte) (agent.IngestRequest, error) {
	req := agent.IngestRequest{MediaType: "application/json"}
	s := &jsonScanner{b: body}
	if c := s.next(); c != '{' {
		if c == 0 || c == '[' || c == '"' || c == '-' || isDigit(c) || c == 't' || c == 'f' || c == 'n' {
			if _, err := s.value(); err != nil {
				return req, malformed("%s", err)
			}
			return req, malformed("want a JSON object")
		}
		return req, malformed("%s", s.fail())
	}
	s.i++
	var seen uint16 // the fields given, by bit
	haveData := false
	for first := true; ; first = false {
		c := s.next()
		if c == '}' {
			s.i++
			break
		}
		if !first {
			if c != ',' {
				return req, malformed("%s", s.fail())
			}
			s.i++
			s.ws()
		}
		key, err := s.str()
		if err != nil {
			return req, malformed("%s", err)
		}
		if s.next() != ':' {
			return req, malformed("%s", s.fail())
		}
		s.i++
		raw, err := s.value()
		if err != nil {
			return req, malformed("%s", err)
		}
		bit, dst := exportField(&req, key)
		if bit != 0 && seen&bit != 0 {
			return req, badField(key, "given twice")
		}
		seen |= bit
		switch {
		case key == "data":
			req.Data, haveData = raw, true
			continue
		case dst == nil:
			return req, badField(clipKey(key), "unknown field")
		}
		if raw[0] != '"' {
			return req, badField(key, "want a string")
		}
		v := &jsonScanner{b: raw}
		if *dst, err = v.str(); err != nil {
			return req, badField(key, "want a string")
		}
	}
	// Only white space may follow (next's 0 would also be a NUL byte).
	if s.ws(); s.i < len(s.b) {
		return req, malformed("data after the JSON object")
	}
	return req, checkEnvelope(req, haveData)
}

// checkEnvelope checks what a decoded envelope must have: data, and a JSON
// media type.
func checkEnvelope(req agent.IngestRequest, haveData bool) error {
	if !haveData {
		return badField("data", "required: the exported JSON value")
	}
	base, _, err := mime.ParseMediaType(req.MediaType)
	if err != nil || !(base == "application/json" || strings.HasSuffix(base, "+json")) {
		return badField("media_type", "want a JSON media type (application/json or */*+json)")
	}
	return nil
}

// exportField names the field key of the JSON envelope: its bit among the
// fields and where a string field goes (nil for data and unknown keys; an
// unknown key has bit 0).
func exportField(req *agent.IngestRequest, key string) (uint16, *string) {
	switch key {
	case "id":
		return 1 << 0, &req.ID
	case "workflow":
		return 1 << 1, &req.Workflow
	case "app":
		return 1 << 2, &req.App
	case "purpose":
		return 1 << 3, &req.Purpose
	case "schema":
		return 1 << 4, &req.Schema
	case "classification":
		return 1 << 5, &req.Classification
	case "retention":
		return 1 << 6, &req.Retention
	case "destination":
		return 1 << 7, &req.Destination
	case "media_type":
		return 1 << 8, &req.MediaType
	case "data":
		return 1 << 9, nil
	}
	return 0, nil
}

// DecodeHeaders reads the export metadata of the raw form from the
// Edgeseal-* headers and the media type from Content-Type. Errors are
// *Error: 400 for a repeated or bad header, 415 for a missing or bad
// Content-Type.
func DecodeHeaders(h http.Header) (agent.IngestRequest, error) {
	var req agent.IngestRequest
	for _, f := range []struct {
		name, field string
		dst         *string
	}{
		{HeaderID, "id", &req.ID}, {HeaderWorkflow, "workflow", &req.Workflow},
		{HeaderApp, "app", &req.App}, {HeaderPurpose, "purpose", &req.Purpose},
		{HeaderSchema, "schema", &req.Schema}, {HeaderClassification, "classification", &req.Classification},
		{HeaderRetention, "retention", &req.Retention}, {HeaderDestination, "destination", &req.Destination},
	} {
		vs := h.Values(f.name)
		switch {
		case len(vs) > 1:
			return req, badField(f.field, "header %s given %d times", f.name, len(vs))
		case len(vs) == 1:
			*f.dst = strings.TrimSpace(vs[0])
		}
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		return req, unsupported("Content-Type is required: the payload's media type")
	}
	base, params, err := mime.ParseMediaType(ct)
	if err != nil || !strings.Contains(base, "/") || strings.Contains(base, "*") {
		return req, unsupported("Content-Type %.80q is not a media type", ct)
	}
	req.MediaType = mime.FormatMediaType(base, params)
	if req.MediaType == "" {
		return req, unsupported("Content-Type %.80q is not a media type", ct)
	}
	return req, nil
}

// partialFromHeaders is what the headers say about an export whose body
// was not read (for the export.rejected record of a refused attempt).
func partialFromHeaders(h http.Header) agent.IngestRequest {
	return agent.IngestRequest{
		ID: h.Get(HeaderID), Workflow: h.Get(HeaderWorkflow), App: h.Get(HeaderApp),
	}
}

// jsonErr describes a decoding error without echoing input.
func jsonErr(err error) string {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of JSON"
	}
	return "invalid JSON"
}

func clipKey(k string) string {
	if len(k) > 64 {
		k = k[:64]
	}
	return strings.ToValidUTF8(k, "?")
}

// readBody reads a body limited by http.MaxBytesReader into one buffer
// of size+1 bytes when its length is known (size >= 0; Content-Length),
// growing it only when the body is longer (then refused: net/http stops
// a body at its Content-Length); over the limit is a 413 *Error.
func readBody(r io.Reader, size, limit int64) ([]byte, error) {
	var b []byte
	var err error
	if size >= 0 && size <= limit {
		b, err = readSized(r, make([]byte, 0, size+1))
	} else {
		b, err = io.ReadAll(r)
	}
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeBodyTooLarge,
			Msg: fmt.Sprintf("request body over the limit of %d bytes (api.max_body)", limit)}
	}
	if err != nil {
		return nil, malformed("reading the body: %v", err)
	}
	return b, nil
}

// readSized is io.ReadAll into b's spare capacity first.
func readSized(r io.Reader, b []byte) ([]byte, error) {
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // grow
		}
	}
}
