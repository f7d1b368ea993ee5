package api

import (
	"testing"
)

// FuzzParseEvidenceQuery: a GET /v1/evidence query is one selection
// (export, device with from and to, or case that device, principal and a
// time range may narrow) or a *ParamError.
func FuzzParseEvidenceQuery(f *testing.F) {
	for _, s := range []string{"export=E-1", "export=E-1&device=s/d&principal=p", "device=s/d&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z",
		"case=C-7", "case=C-7&device=s/d&principal=p&from=2026-01-01T00:00:00Z", "", "export=a&case=b", "device=s/d", "from=2026-01-01T00:00:00Z", "export=%zz"} {
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
