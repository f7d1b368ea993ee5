package api

import (
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
)

// FuzzParseEvidenceQuery: a GET /v1/evidence query is one selection
// (export, device with from and to, or case that device, principal and a
// time range may narrow) or a *ParamError.
func FuzzParseEvidenceQuery(f *testing.F) {
	for _, s := range []string{"export=E-1", "export=E-1&device=s/d&principal=p", "device=s/d&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z",
		"case=C-7", "case=C-7&decrypt=1", "export=E-1&decrypt=1&reason=review", "case=C-7&device=s/d&principal=p&from=2026-01-01T00:00:00Z", "", "export=a&case=b", "device=s/d", "from=2026-01-01T00:00:00Z", "export=%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		eq, err := parseEvidenceQuery(raw)
		if err != nil {
			checkParamErr(t, err)
			return
		}
		byCase := eq.q.Case != ""
		byTime := !eq.q.From.IsZero() && !byCase
		n := 0
		for _, set := range []bool{eq.q.Export != "", byTime, byCase} {
			if set {
				n++
			}
		}
		if n != 1 || eq.selection == "" {
			t.Fatalf("%q: accepted %+v", raw, eq)
		}
		if byTime && (eq.q.Device == "" || eq.q.To.IsZero() || !eq.q.From.Before(eq.q.To)) {
			t.Fatalf("%q: time range %+v", raw, eq.q)
		}
		if !eq.q.From.IsZero() && !eq.q.To.IsZero() && !eq.q.From.Before(eq.q.To) {
			t.Fatalf("%q: time range %+v", raw, eq.q)
		}
	})
}

// FuzzParseSizes: GET /v1/log/consistency takes 1 <= from <= to or a
// *ParamError.
func FuzzParseSizes(f *testing.F) {
	for _, s := range []string{"from=1&to=2", "from=0&to=1", "from=2&to=1", "from=1", "from=01&to=2", "from=1&to=2&to=3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		from, to, err := parseSizes(raw)
		if err != nil {
			checkParamErr(t, err)
			return
		}
		if from == 0 || from > to {
			t.Fatalf("%q: accepted %d..%d", raw, from, to)
		}
	})
}

// FuzzParseDecrypt: the decrypt parameters of a payload or pack are
// absent (no reason either), or decrypt=1 with a why: a case id of the
// allowed characters, or a reason that is not blank, each bounded; else a
// *ParamError.
func FuzzParseDecrypt(f *testing.F) {
	for _, s := range []string{"decrypt=1&reason=review", "decrypt=1&case=CASE-7", "decrypt=1", "reason=x", "decrypt=0&reason=x",
		"decrypt=1&case=a%20b", "decrypt=1&reason=%20%20", "decrypt=1&case=C&reason=r", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := parseParams(raw, "decrypt", "case", "reason")
		if err != nil {
			checkParamErr(t, err)
			return
		}
		d, err := parseDecrypt(p, "case")
		if err != nil {
			checkParamErr(t, err)
			return
		}
		if !d.on {
			if d.reason != "" {
				t.Fatalf("%q: a reason without decrypt", raw)
			}
			return
		}
		if d.caseID == "" && strings.TrimSpace(d.reason) == "" {
			t.Fatalf("%q: decrypt without a why", raw)
		}
		if d.caseID != "" && checkCaseID("case", d.caseID) != nil || len(d.reason) > archive.MaxDecryptReason {
			t.Fatalf("%q: accepted %+v", raw, d)
		}
	})
}
