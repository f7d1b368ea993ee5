package api

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/edgeseal/edgeseal/agent"
)

// The answers of accepted exports, the API's most frequent, are written
// by hand in the bytes encoding/json gives them (field order, no HTML
// escaping); a receipt with a string that would need escaping (never
// seen: ids, digests and leaves are plain ASCII) goes through
// encoding/json.

// appendReceipt appends rc's JSON object; ok is false (dst unchanged in
// length) when one of its strings needs escaping.
func appendReceipt(dst []byte, rc *agent.ExportReceipt) ([]byte, bool) {
	if !plainJSON(rc.ExportID) || !plainJSON(rc.Leaf) || !plainJSON(rc.Digest) {
		return dst, false
	}
	dst = append(dst, `{"exportId":"`...)
	dst = append(dst, rc.ExportID...)
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendUint(dst, rc.Seq, 10)
	dst = append(dst, `,"leaf":"`...)
	dst = append(dst, rc.Leaf...)
	dst = append(dst, `","journalSize":`...)
	dst = strconv.AppendUint(dst, rc.Size, 10)
	dst = append(dst, `,"digest":"`...)
	dst = append(dst, rc.Digest...)
	dst = append(dst, '"')
	if rc.Duplicate {
		dst = append(dst, `,"duplicate":true`...)
	}
	return append(dst, '}'), true
}

// plainJSON reports whether s is written in JSON as it is: printable
// ASCII but '"' and '\'.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// appendBatchAnswer appends a's line (with its '\n') as json.Encoder
// writes it with HTML escaping off.
func appendBatchAnswer(dst []byte, a *BatchAnswer) []byte {
	if a.Error == nil && a.Receipt != nil {
		n := len(dst)
		dst = append(dst, `{"line":`...)
		dst = strconv.AppendInt(dst, int64(a.Line), 10)
		dst = append(dst, `,"status":`...)
		dst = strconv.AppendInt(dst, int64(a.Status), 10)
		dst = append(dst, `,"receipt":`...)
		if out, ok := appendReceipt(dst, a.Receipt); ok {
			return append(out, "}\n"...)
		}
		dst = dst[:n]
	}
	return appendEncoded(dst, a)
}

// appendEncoded appends v as json.Encoder writes it with HTML escaping
// off (a line with its '\n').
func appendEncoded(dst []byte, v any) []byte {
	buf := &appendWriter{b: dst}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the API's answer types always encode
	return buf.b
}

type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// writeReceipt answers an accepted export: status, Location and the
// receipt, as writeJSON would.
func writeReceipt(w http.ResponseWriter, status int, rc *agent.ExportReceipt) {
	body, ok := appendReceipt(make([]byte, 0, 256), rc)
	if !ok {
		writeJSON(w, status, rc)
		return
	}
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["X-Content-Type-Options"] = nosniff
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n')) // the client went away; nothing to do
}

var (
	jsonContentType = []string{"application/json"}
	nosniff         = []string{"nosniff"}
)
