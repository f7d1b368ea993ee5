package custody_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gowebpki/jcs"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

type vectors struct {
	Record struct {
		Canonical string `json:"canonical"`
		LeafHash  string `json:"leafHash"`
		Fields    struct {
			Seq    uint64          `json:"seq"`
			Type   string          `json:"type"`
			Time   string          `json:"time"`
			Device string          `json:"device"`
			Prev   string          `json:"prev"`
			Actor  custody.Actor   `json:"actor"`
			Body   json.RawMessage `json:"body"`
		} `json:"fields"`
	} `json:"record"`
	Checkpoint struct {
		Origin  string `json:"origin"`
		Size    uint64 `json:"size"`
		RootHex string `json:"rootHex"`
		Body    string `json:"body"`
	} `json:"checkpoint"`
	PAE struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		PAEBase64   string `json:"paeBase64"`
		PAESha256   string `json:"paeSha256"`
	} `json:"pae"`
}

func loadVectors(t testing.TB) *vectors {
	t.Helper()
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

// The vectors were computed outside Go (Python hashlib/json), so they pin
// the format, not this implementation.
func TestRecordVector(t *testing.T) {
	v := loadVectors(t)
	f := v.Record.Fields
	tm, err := wire.ParseTime(f.Time)
	if err != nil {
		t.Fatal(err)
	}
	prev, err := wire.ParseHash(f.Prev)
	if err != nil {
		t.Fatal(err)
	}
	r := custody.Record{Seq: f.Seq, Type: f.Type, Time: tm, Device: f.Device, Prev: prev, Actor: f.Actor, Body: f.Body}
	got, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != v.Record.Canonical {
		t.Fatalf("canonical bytes\n got %s\nwant %s", got, v.Record.Canonical)
	}
	if h := wire.FormatHash(merkle.LeafHash(got)); h != v.Record.LeafHash {
		t.Errorf("leaf hash %s, want %s", h, v.Record.LeafHash)
	}
	file, err := os.ReadFile("testdata/record.canonical.json")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := custody.ParseRecord(file)
	if err != nil {
		t.Fatal(err)
	}
	e, err := parsed.ExportBody()
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Seq != 42 || e.Payload.Size != 5 || e.ExportID != "exp-000042" || !parsed.Time.Equal(tm) {
		t.Errorf("parsed %+v %+v", parsed, e)
	}
}

func TestParseRecordRejects(t *testing.T) {
	good := loadVectors(t).Record.Canonical
	cases := map[string]string{
		"whitespace":     strings.Replace(good, `"v":1`, `"v": 1`, 1),
		"key order":      strings.Replace(good, `{"actor":{"id":"n8n-reports","kind":"principal"`, `{"actor":{"kind":"principal","id":"n8n-reports"`, 1),
		"escaped":        strings.Replace(good, "été", `\u00e9t\u00e9`, 1),
		"version":        strings.Replace(good, `"v":1`, `"v":2`, 1),
		"unknown field":  strings.Replace(good, `"type":"export"`, `"type":"export","x":1`, 1),
		"unknown type":   strings.Replace(good, `"type":"export"`, `"type":"exfiltrate"`, 1),
		"upper hex":      strings.Replace(good, `"prev":"sha256:84fd`, `"prev":"sha256:84FD`, 1),
		"no micros":      strings.Replace(good, `01:15:00.123456Z`, `01:15:00Z`, 1),
		"offset time":    strings.Replace(good, `01:15:00.123456Z`, `01:15:00.123456+00:00`, 1),
		"body field":     strings.Replace(good, `"app":"n8n"`, `"app":"n8n","extra":true`, 1),
		"float seq":      strings.Replace(good, `"seq":42`, `"seq":42.0`, 1),
		"bad device":     strings.Replace(good, `"device":"site1/dev1"`, `"device":"site1/../dev1"`, 1),
		"duplicate key":  strings.Replace(good, `"v":1}`, `"v":1,"v":1}`, 1),
		"trailing":       good + "\n",
		"missing actor":  strings.Replace(good, `"actor":{"id":"n8n-reports","kind":"principal","via":"api"},`, ``, 1),
		"empty":          "",
		"array":          "[]",
		"negative size":  strings.Replace(good, `"size":5`, `"size":-5`, 1),
		"payload digest": strings.Replace(good, `"digest":"sha256:2c`, `"digest":"md5:2c`, 1),
	}
	for name, in := range cases {
		if in == good {
			t.Fatalf("%s: replacement did not apply", name)
		}
		if _, err := custody.ParseRecord([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	var nc *wire.NotCanonicalError
	if _, err := custody.ParseRecord([]byte(cases["key order"])); !errors.As(err, &nc) {
		t.Errorf("key order: want NotCanonicalError, got %v", err)
	}
}

func TestCheckpointVector(t *testing.T) {
	v := loadVectors(t).Checkpoint
	root, _ := hex.DecodeString(v.RootHex)
	c := merkle.Checkpoint{Origin: v.Origin, Size: v.Size, Root: [32]byte(root)}
	if got := string(c.Marshal()); got != v.Body {
		t.Fatalf("checkpoint %q, want %q", got, v.Body)
	}
	p, err := merkle.ParseCheckpoint([]byte(v.Body))
	if err != nil || p != c {
		t.Fatalf("parse: %+v %v", p, err)
	}
	for name, bad := range map[string]string{
		"no newline":   strings.TrimSuffix(v.Body, "\n"),
		"extension":    v.Body + "ext\n",
		"leading zero": strings.Replace(v.Body, "\n1234\n", "\n01234\n", 1),
		"origin":       strings.Replace(v.Body, "edgeseal/", "other/", 1),
		"short root":   strings.Replace(v.Body, "\n1234\n", "\n1234\nAAAA", 1)[:len(v.Body)-10] + "\n",
		"crlf":         strings.ReplaceAll(v.Body, "\n", "\r\n"),
	} {
		if _, err := merkle.ParseCheckpoint([]byte(bad)); err == nil {
			t.Errorf("%s: accepted %q", name, bad)
		}
	}
}

func TestPAEVector(t *testing.T) {
	v := loadVectors(t).PAE
	want, _ := base64.StdEncoding.DecodeString(v.PAEBase64)
	got := dsse.PAE(v.PayloadType, []byte(v.Payload))
	if !bytes.Equal(got, want) {
		t.Fatalf("PAE %q, want %q", got, want)
	}
	if sum := sha256.Sum256(got); hex.EncodeToString(sum[:]) != v.PAESha256 {
		t.Errorf("PAE digest %x", sum)
	}
}

func TestHash(t *testing.T) {
	h := sha256.Sum256([]byte("x"))
	s := wire.FormatHash(h)
	back, err := wire.ParseHash(s)
	if err != nil || back != h {
		t.Fatalf("round trip %s: %v", s, err)
	}
	for _, bad := range []string{"", "sha256:", s[:len(s)-1], strings.ToUpper(s), "sha512:" + s[7:], s + "0"} {
		if _, err := wire.ParseHash(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// Free-form bodies: what ParseRecord accepts must be RFC 8785 canonical
// by gowebpki/jcs too, and the refusals are the ones the format names.
func TestCanonicalBodies(t *testing.T) {
	head := `{"actor":{"id":"a","kind":"agent"},"body":`
	tail := `,"device":"s/d","prev":"sha256:` + strings.Repeat("0", 64) + `","seq":0,"time":"2026-11-26T01:15:00.000000Z","type":"agent.start","v":1}`
	cases := []struct {
		body string
		ok   bool
	}{
		{`{}`, true},
		{`{"a":[1,-2,{"b":null}],"b":true}`, true},
		{"{\"\U0001F600\":1,\"\":2}", false},              // "" sorts first
		{"{\"\":2,\"\U0001F600\":1,\"\uE000\":3}", true},  // U+1F600 (D83D) before U+E000 in UTF-16
		{"{\"\":2,\"\uE000\":3,\"\U0001F600\":1}", false}, // byte order is not UTF-16 order
		{`{"a":"\u001f\n\"\\/"}`, true},                   // "/" unescaped, \u001f kept
		{`{"a":"\u001F"}`, false},                         // upper-case hex
		{`{"a":"\/"}`, false},                             // needless escape
		{`{"a":"\u00e9"}`, false},                         // escaped non-control character
		{`{"a":1.5}`, false},                              // fractions are refused
		{`{"a":1e3}`, false},                              // exponent
		{`{"a":9007199254740993}`, false},                 // beyond 2^53
		{`{"a":-0}`, false},                               // negative zero
		{"{\"a\":\"\x7f\u00e9\"}", true},                  // DEL and non-ASCII stay literal
		{"{\"a\":\"\xff\"}", false},                       // invalid UTF-8
		{`{"a":{"b":{"c":[[[[]]]]}}}`, true},              // nesting
		{`{"a":1,"a":1}`, false},                          // duplicate key
		{`{"a" :1}`, false},                               // whitespace
	}
	for _, c := range cases {
		rec := []byte(head + c.body + tail)
		_, err := custody.ParseRecord(rec)
		if (err == nil) != c.ok {
			t.Errorf("body %q: ParseRecord err %v, want ok=%v", c.body, err, c.ok)
		}
		if err == nil {
			if want, jerr := jcs.Transform(rec); jerr != nil || !bytes.Equal(want, rec) {
				t.Errorf("body %q accepted but JCS gives %s (%v)", c.body, want, jerr)
			}
		}
	}
}

func TestParseTime(t *testing.T) {
	good := []string{"2026-11-26T01:15:00.123456Z", "2024-02-29T23:59:59.999999Z", "0001-01-01T00:00:00.000000Z"}
	for _, s := range good {
		tm, err := wire.ParseTime(s)
		if err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		if got := wire.FormatTime(tm); got != s {
			t.Errorf("round trip %s -> %s", s, got)
		}
		if ref, _ := time.Parse(wire.TimeLayout, s); !ref.Equal(tm) {
			t.Errorf("%s parsed as %v, time.Parse says %v", s, tm, ref)
		}
	}
	bad := []string{"2026-11-26T01:15:00Z", "2026-11-26T01:15:00.123456+00:00", "2025-02-29T00:00:00.000000Z",
		"2026-04-31T00:00:00.000000Z", "2026-13-01T00:00:00.000000Z", "2026-11-26T24:00:00.000000Z",
		"2026-11-26T01:60:00.000000Z", "2026-11-26T01:15:60.000000Z", "2026-11-26 01:15:00.123456Z",
		"2026-11-26T01:15:00.12345aZ", "2026-11-26T01:15:00.123456z", "+026-11-26T01:15:00.123456Z"}
	for _, s := range bad {
		if _, err := wire.ParseTime(s); err == nil {
			t.Errorf("accepted %s", s)
		}
	}
}

func FuzzParseTime(f *testing.F) {
	f.Add("2026-11-26T01:15:00.123456Z")
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := wire.ParseTime(s)
		ref, rerr := time.Parse(wire.TimeLayout, s)
		refOK := rerr == nil && ref.Format(wire.TimeLayout) == s
		if (err == nil) != refOK {
			t.Fatalf("%q: ParseTime err %v, time.Parse ok %v", s, err, refOK)
		}
		if err == nil && !tm.Equal(ref) {
			t.Fatalf("%q: %v vs %v", s, tm, ref)
		}
	})
}
