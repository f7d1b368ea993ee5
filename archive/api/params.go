package api

import (
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Request bounds (docs/archive-api.md "Transport").
const (
	MaxQueryLen    = 4096
	MaxParamLen    = 256
	MaxBodyLen     = 4096
	maxStatsDays   = 366
	defaultStatDay = 30
)

// ParamError is a parameter the API refuses (400 bad_request).
type ParamError struct {
	Name   string
	Reason string
}

func (e *ParamError) Error() string {
	if e.Name == "" {
		return e.Reason
	}
	return fmt.Sprintf("parameter %q: %s", e.Name, e.Reason)
}

// params are a query string's parameters, each given once.
type params map[string]string

// parseParams reads a raw query string: at most MaxQueryLen bytes, only
// the names allowed, each at most once, values of at most MaxParamLen
// bytes of valid UTF-8 without control characters.
func parseParams(raw string, allowed ...string) (params, error) {
	if len(raw) > MaxQueryLen {
		return nil, &ParamError{Reason: fmt.Sprintf("query string of %d bytes, at most %d", len(raw), MaxQueryLen)}
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, &ParamError{Reason: "malformed query string"}
	}
	out := params{}
	for name, vs := range vals {
		if !contains(allowed, name) {
			return nil, &ParamError{Name: cut(name, 40), Reason: "unknown parameter"}
		}
		if len(vs) != 1 {
			return nil, &ParamError{Name: name, Reason: "given more than once"}
		}
		v := vs[0]
		if len(v) > MaxParamLen {
			return nil, &ParamError{Name: name, Reason: fmt.Sprintf("longer than %d bytes", MaxParamLen)}
		}
		if !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return nil, &ParamError{Name: name, Reason: "not valid UTF-8 text"}
		}
		out[name] = v
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func cut(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "?")
}

// limit reads "limit" (default archive.DefaultPageLimit).
func (p params) limit() (int, error) {
	v, ok := p["limit"]
	if !ok {
		return archive.DefaultPageLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > archive.MaxPageLimit || strconv.Itoa(n) != v {
		return 0, &ParamError{Name: "limit", Reason: fmt.Sprintf("not an integer in 1..%d", archive.MaxPageLimit)}
	}
	return n, nil
}

// asc reads "order": desc (default) or asc.
func (p params) asc() (bool, error) {
	switch p["order"] {
	case "", "desc":
		return false, nil
	case "asc":
		return true, nil
	}
	return false, &ParamError{Name: "order", Reason: "want asc or desc"}
}

// time reads an RFC 3339 time (zero when absent).
func (p params) time(name string) (time.Time, error) {
	v, ok := p[name]
	if !ok {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, &ParamError{Name: name, Reason: "not an RFC 3339 time (2026-12-07T09:00:00Z)"}
	}
	return t, nil
}

// timeRange reads from and to (from before to when both are given).
func (p params) timeRange() (from, to time.Time, err error) {
	if from, err = p.time("from"); err != nil {
		return
	}
	if to, err = p.time("to"); err != nil {
		return
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return from, to, &ParamError{Name: "to", Reason: "not after from"}
	}
	return from, to, nil
}

// device checks a "site/name" device parameter.
func checkDevice(name, v string) error {
	site, dev, ok := strings.Cut(v, "/")
	if !ok || site == "" || dev == "" || strings.Contains(dev, "/") {
		return &ParamError{Name: name, Reason: "want site/name"}
	}
	return nil
}

// digest reads a bundle digest: "sha256:<hex>" or "<hex>", written back
// as "sha256:<hex>".
func parseDigest(name, v string) (string, [32]byte, error) {
	h := strings.TrimPrefix(v, "sha256:")
	var d [32]byte
	if len(h) != 64 || strings.ToLower(h) != h {
		return "", d, &ParamError{Name: name, Reason: "want sha256:<64 lowercase hex>"}
	}
	if _, err := hex.Decode(d[:], []byte(h)); err != nil {
		return "", d, &ParamError{Name: name, Reason: "want sha256:<64 lowercase hex>"}
	}
	return wire.FormatHash(d), d, nil
}

// exportParams are the parameters of GET /v1/exports.
var exportParams = []string{"export", "device", "site", "workflow", "app", "principal", "classification", "status", "reason", "bundle", "log_index", "case", "from", "to", "limit", "cursor", "order"}

// parseExportQuery reads the query of GET /v1/exports.
func parseExportQuery(raw string) (archive.ExportQuery, error) {
	var q archive.ExportQuery
	p, err := parseParams(raw, exportParams...)
	if err != nil {
		return q, err
	}
	q.Export, q.Device, q.Site, q.Workflow, q.App = p["export"], p["device"], p["site"], p["workflow"], p["app"]
	q.Principal, q.Classification, q.Status, q.Reason, q.Cursor = p["principal"], p["classification"], p["status"], p["reason"], p["cursor"]
	q.Case = p["case"]
	if q.Device != "" {
		if err := checkDevice("device", q.Device); err != nil {
			return q, err
		}
	}
	if q.Status != "" && q.Status != archive.StatusAccepted && q.Status != archive.StatusRefused {
		return q, &ParamError{Name: "status", Reason: "want accepted or refused"}
	}
	if v, ok := p["bundle"]; ok {
		if q.Bundle, _, err = parseDigest("bundle", v); err != nil {
			return q, err
		}
	}
	if v, ok := p["log_index"]; ok {
		n, err := strconv.ParseUint(v, 10, 63)
		if err != nil || strconv.FormatUint(n, 10) != v {
			return q, &ParamError{Name: "log_index", Reason: "not a non-negative integer"}
		}
		q.LogIndex = &n
	}
	if q.From, q.To, err = p.timeRange(); err != nil {
		return q, err
	}
	if q.Limit, err = p.limit(); err != nil {
		return q, err
	}
	q.Asc, err = p.asc()
	return q, err
}

// parseAccessQuery reads the query of GET /v1/access.
func parseAccessQuery(raw string) (archive.AccessQuery, error) {
	var q archive.AccessQuery
	p, err := parseParams(raw, "export", "device", "bundle", "user", "from", "to", "limit", "cursor", "order")
	if err != nil {
		return q, err
	}
	q.Export, q.Device, q.User, q.Cursor = p["export"], p["device"], p["user"], p["cursor"]
	if q.Device != "" {
		if err := checkDevice("device", q.Device); err != nil {
			return q, err
		}
	}
	if v, ok := p["bundle"]; ok {
		if q.Bundle, _, err = parseDigest("bundle", v); err != nil {
			return q, err
		}
	}
	if q.From, q.To, err = p.timeRange(); err != nil {
		return q, err
	}
	if q.Limit, err = p.limit(); err != nil {
		return q, err
	}
	q.Asc, err = p.asc()
	return q, err
}

// statsQuery is GET /v1/stats.
type statsQuery struct {
	by       string
	from, to time.Time // UTC days, inclusive
}

// parseStatsQuery reads the query of GET /v1/stats.
func parseStatsQuery(raw string, now time.Time) (statsQuery, error) {
	q := statsQuery{by: "status"}
	p, err := parseParams(raw, "by", "from", "to")
	if err != nil {
		return q, err
	}
	if v, ok := p["by"]; ok {
		if !contains(archive.StatsBy, v) {
			return q, &ParamError{Name: "by", Reason: "want one of " + strings.Join(archive.StatsBy, ", ")}
		}
		q.by = v
	}
	day := func(name string, def time.Time) (time.Time, error) {
		v, ok := p[name]
		if !ok {
			return def, nil
		}
		t, err := time.Parse(time.DateOnly, v)
		if err != nil || t.Year() < 1970 || t.Year() > 9999 {
			return t, &ParamError{Name: name, Reason: "not a day YYYY-MM-DD"}
		}
		return t, nil
	}
	today := now.UTC().Truncate(24 * time.Hour)
	if q.to, err = day("to", today); err != nil {
		return q, err
	}
	if q.from, err = day("from", q.to.AddDate(0, 0, -(defaultStatDay-1))); err != nil {
		return q, err
	}
	if q.to.Before(q.from) {
		return q, &ParamError{Name: "to", Reason: "before from"}
	}
	if q.to.Sub(q.from) >= maxStatsDays*24*time.Hour {
		return q, &ParamError{Name: "from", Reason: fmt.Sprintf("more than %d days", maxStatsDays)}
	}
	return q, nil
}

// parseIndex reads the query of GET /v1/access/proof.
func parseIndex(raw string) (uint64, error) {
	p, err := parseParams(raw, "index")
	if err != nil {
		return 0, err
	}
	v, ok := p["index"]
	n, perr := strconv.ParseUint(v, 10, 63)
	if !ok || perr != nil || strconv.FormatUint(n, 10) != v {
		return 0, &ParamError{Name: "index", Reason: "a non-negative integer is required"}
	}
	return n, nil
}

// checkPathSegment checks a path value ({site}, {name}, {id}).
func checkPathSegment(name, v string) error {
	if v == "" || len(v) > MaxParamLen || !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return &ParamError{Name: name, Reason: "empty, too long or not text"}
	}
	return nil
}
