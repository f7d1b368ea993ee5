package api

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
)

// DefaultBatchChunk is Options.BatchChunk's default: the line bytes of a
// batch held at once, and so the most one request journals in one go.
const DefaultBatchChunk = 4 << 20

// answerLineSize is about the bytes of one accepted line's answer (a
// generated id, seq and journal size of 7 digits): the answers of a
// sub-batch are held in one buffer grown once.
const answerLineSize = 240

// BatchAnswer is one line of the answer to POST /v1/exports:batch.
type BatchAnswer struct {
	Line    int                  `json:"line"` // 1-based, counting non-blank lines
	Status  int                  `json:"status"`
	Receipt *agent.ExportReceipt `json:"receipt,omitempty"`
	Error   *ErrorInfo           `json:"error,omitempty"`
}

// POST /v1/exports:batch
//
// The body is decoded as it arrives, line by line, into sub-batches of at
// most BatchChunk line bytes (a longer line is one on its own); each is
// handed to the core in one call (one journal batch) once the next line
// would not fit it, the last once the body has ended. A batch within one
// chunk is thus read whole before anything is journaled; a larger one is
// journaled chunk by chunk, in order. The answers are held (encoded, about
// 150 bytes a line) and sent once every line is durable.
func (s *Server) postBatch(w http.ResponseWriter, r *http.Request, c Core) {
	p, ok := s.exportPrincipal(w, r, c)
	if !ok {
		return
	}
	if !p.Has(config.RoleExporter) {
		s.reject(w, r, c, p, agent.IngestRequest{}, &agent.ForbiddenError{Principal: p.Name, Role: config.RoleExporter})
		return
	}
	base, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !ndjsonTypes[base] {
		s.reject(w, r, c, p, agent.IngestRequest{}, unsupported("send %s: one JSON export per line", NDJSONType))
		return
	}
	select {
	case s.batches <- struct{}{}:
		defer func() { <-s.batches }()
	case <-r.Context().Done():
		return // the client left while waiting its turn
	}
	var answers []byte
	var coreErr error
	commit := func(first int, lines []agent.BatchLine) error {
		res, err := c.IngestBatch(r.Context(), p, s.opts.Via, lines)
		if err != nil {
			coreErr = err
			return err
		}
		answers = slices.Grow(answers, len(res)*answerLineSize)
		for i, br := range res {
			a := s.batchAnswer(first+i, br)
			answers = appendBatchAnswer(answers, &a)
		}
		return nil
	}
	if err := s.streamBatch(http.MaxBytesReader(w, r.Body, s.opts.MaxBody), commit); err != nil {
		if coreErr != nil {
			s.writeError(w, r, coreErr)
			return
		}
		s.reject(w, r, c, p, agent.IngestRequest{}, err)
		return
	}
	w.Header().Set("Content-Type", NDJSONType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(answers)
}

// batchAnswer is the answer of line (1-based) from its result.
func (s *Server) batchAnswer(line int, br agent.BatchResult) BatchAnswer {
	a := BatchAnswer{Line: line, Status: http.StatusCreated}
	switch {
	case br.Err != nil:
		ans := classify(br.Err)
		if ans.status >= 500 {
			s.log.Error("batch line failed", "line", line, "err", br.Err)
		}
		a.Status, a.Error = ans.status, &ans.info
	case br.Receipt.Duplicate:
		a.Status, a.Receipt = http.StatusOK, &br.Receipt
	default:
		a.Receipt = &br.Receipt
	}
	return a
}

// streamBatch decodes an NDJSON body line by line (a line that does not
// decode carries its error) and hands the lines to commit in sub-batches
// of at most BatchChunk line bytes, first the 1-based number of the
// sub-batch's first line. Over the byte or line limit is a 413 *Error, a
// body that breaks off or has no line a 400 *Error; then the sub-batches
// before it were committed, the one being read was not. An error of
// commit is returned as is.
func (s *Server) streamBatch(body io.Reader, commit func(first int, lines []agent.BatchLine) error) error {
	lr := lineReader{br: bufio.NewReaderSize(body, 64<<10)}
	var lines []agent.BatchLine
	held, first, n := 0, 1, 0
	for {
		raw, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			var mb *http.MaxBytesError
			if errors.As(err, &mb) {
				return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeBodyTooLarge,
					Msg: fmt.Sprintf("request body over the limit of %d bytes (api.max_body)", s.opts.MaxBody)}
			}
			return malformed("reading the body: %v", err)
		}
		line := bytes.TrimSpace(raw)
		if len(line) == 0 {
			continue
		}
		if n == s.opts.MaxBatchLines {
			return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooManyLines,
				Msg: fmt.Sprintf("more than %d lines (api.max_batch_lines)", s.opts.MaxBatchLines)}
		}
		n++
		if len(lines) > 0 && held+len(line) > s.opts.BatchChunk {
			if err := commit(first, lines); err != nil {
				return err
			}
			clear(lines)
			first, lines, held = n, lines[:0], 0
		}
		// The line is the reader's until the next one: keep a copy of
		// the data (of the whole line when it does not decode, for its
		// digest).
		req, err := DecodeExport(line)
		if err != nil {
			req.Data = bytes.Clone(line)
		} else {
			req.Data = bytes.Clone(req.Data)
		}
		lines = append(lines, agent.BatchLine{Req: req, Err: err})
		held += len(line)
	}
	if n == 0 {
		return malformed("empty batch: want one JSON export per line")
	}
	return commit(first, lines)
}

// lineReader splits a body at '\n'; a line longer than the reader's
// buffer is gathered in long.
type lineReader struct {
	br   *bufio.Reader
	long []byte
}

// next returns the next line without its '\n', valid until the next
// call; io.EOF once the body has ended with no line left.
func (lr *lineReader) next() ([]byte, error) {
	if cap(lr.long) > 1<<20 {
		lr.long = nil // not held past the long line
	}
	lr.long = lr.long[:0]
	for {
		b, err := lr.br.ReadSlice('\n')
		switch {
		case err == nil && len(lr.long) == 0:
			return b[:len(b)-1], nil
		case err == nil:
			lr.long = append(lr.long, b[:len(b)-1]...)
			return lr.long, nil
		case errors.Is(err, bufio.ErrBufferFull):
			lr.long = append(lr.long, b...)
		case err == io.EOF && len(lr.long)+len(b) > 0:
			return append(lr.long, b...), nil
		default:
			return nil, err
		}
	}
}
