package policy

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestParseRetention(t *testing.T) {
	for s, want := range map[string]Retention{
		"87600h": {D: 87600 * time.Hour}, "30d": {D: 30 * 24 * time.Hour}, "10y": {D: 10 * 365 * 24 * time.Hour},
		"permanent": {Permanent: true}, "90m": {D: 90 * time.Minute},
	} {
		if got, err := ParseRetention(s); err != nil || got != want {
			t.Errorf("%s: %+v %v", s, got, err)
		}
	}
	for _, s := range []string{"", "0s", "-1h", "0d", "y", "1.5y", "forever", "99999y", "Permanent"} {
		if _, err := ParseRetention(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
	p, y := Retention{Permanent: true}, Retention{D: 365 * 24 * time.Hour}
	if !y.Shorter(p) || p.Shorter(y) || p.Shorter(p) || y.Shorter(y) || !(Retention{D: time.Hour}).Shorter(y) {
		t.Fatal("Shorter: permanent is the longest")
	}
}

const retPolicy = `version: 1
schemas:
  doc@1: doc.json
  memo@1: memo.json
min_retention:
  doc@1: 10y
  memo@1: permanent
retention_classes:
  short: 30d
  long: 87600h
  forever: permanent
workflows:
  - {name: a, schema: doc@1, classifications: [x], retention: short, destinations: [d], principals: [p], max_size: 10}
  - {name: b, schema: doc@1, classifications: [x], retention: long, destinations: [d], principals: [p], max_size: 10}
  - {name: c, schema: memo@1, classifications: [x], retention: long, destinations: [d], principals: [p], max_size: 10}
  - {name: d, schema: memo@1, classifications: [x], retention: forever, destinations: [d], principals: [p], max_size: 10}
  - {name: e, schema: doc@1, classifications: [x], retention: unknown-class, destinations: [d], principals: [p], max_size: 10}
  - {name: f, classifications: [x], retention: short, destinations: [d], principals: [p], max_size: 10}
`

// TestShortRetentions: a class shorter than the schema's minimum, and
// a class without a duration, are listed; permanent is the longest.
func TestShortRetentions(t *testing.T) {
	fsys := fstest.MapFS{"doc.json": {Data: []byte(`{}`)}, "memo.json": {Data: []byte(`{}`)}}
	p, err := Parse([]byte(retPolicy), fsys)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range p.ShortRetentions() {
		got = append(got, s.Workflow)
	}
	if strings.Join(got, ",") != "a,c,e" {
		t.Fatalf("short retentions %v, want a,c,e", got)
	}
	for _, bad := range []string{
		strings.Replace(retPolicy, "  doc@1: 10y", "  nope@1: 10y", 1),
		strings.Replace(retPolicy, "  doc@1: 10y", "  doc@1: soon", 1),
		strings.Replace(retPolicy, "  short: 30d", "  short: 0s", 1),
	} {
		if _, err := Parse([]byte(bad), fsys); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}

func FuzzParseRetention(f *testing.F) {
	for _, s := range []string{"87600h", "30d", "10y", "permanent", "0s", "1.5y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRetention(s)
		if err == nil && !r.Permanent && r.D <= 0 {
			t.Fatalf("%q: %+v", s, r)
		}
	})
}
