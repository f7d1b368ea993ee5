package archive_test

import (
	"encoding/json"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

func FuzzParseEnrollRequest(f *testing.F) {
	c, err := bundletest.NewChain(f.Context(), nil, 0, bundletest.Options{})
	if err != nil {
		f.Fatal(err)
	}
	trust, _ := c.Trust.Marshal()
	req, _ := json.Marshal(map[string]any{"version": 1, "trust": json.RawMessage(trust), "pcrValues": c.Trust.GoldenPCRs, "note": "n"})
	f.Add(trust)
	f.Add(req)
	f.Add([]byte(`{"version":1,"trust":{},"pcrValues":{"0":"00"}}`))
	f.Add([]byte(`{"trust":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := archive.ParseEnrollRequest(b)
		if err != nil {
			return
		}
		if r.ParsedTrust() == nil {
			t.Fatal("parsed without trust")
		}
		again, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := archive.ParseEnrollRequest(again); err != nil {
			t.Fatalf("re-parse of a parsed request: %v", err)
		}
		_ = r.PCRsMatch()
	})
}

func TestEnrollRequest(t *testing.T) {
	c := newChain(t, 0, bundletest.Options{})
	trust, _ := c.Trust.Marshal()
	pcrs := map[string]string{}
	for k, v := range c.Trust.GoldenPCRs {
		pcrs[k] = v
	}
	req, _ := json.Marshal(map[string]any{"version": 1, "trust": json.RawMessage(trust), "pcrValues": pcrs})
	r, err := archive.ParseEnrollRequest(req)
	if err != nil || !r.PCRsMatch() {
		t.Fatalf("request: %v", err)
	}
	for k := range pcrs {
		pcrs[k] = "00" + pcrs[k][2:]
		break
	}
	req, _ = json.Marshal(map[string]any{"version": 1, "trust": json.RawMessage(trust), "pcrValues": pcrs})
	if r, err := archive.ParseEnrollRequest(req); err != nil || r.PCRsMatch() {
		t.Fatalf("moved pcrs: %v, match %v", err, err == nil && r.PCRsMatch())
	}
	for _, bad := range []string{
		`{"version":2,"trust":` + string(trust) + `,"pcrValues":{}}`,
		`{"version":1,"trust":` + string(trust) + `,"pcrValues":{}}`,
		`{"version":1,"trust":` + string(trust) + `,"pcrValues":{"1":"` + pcrs["0"] + `"}}`,
		`{"version":1,"trust":` + string(trust) + `,"extra":1}`,
		`[]`,
	} {
		if _, err := archive.ParseEnrollRequest([]byte(bad)); err == nil {
			t.Errorf("accepted %.80s", bad)
		}
	}
}

func FuzzParseEpochStatement(f *testing.F) {
	v := readStatementVectors(f)
	f.Add([]byte(v.Valid.Statement))
	for _, c := range v.Invalid {
		f.Add([]byte(c.Statement))
	}
	f.Add([]byte(`{"type":"device.rekey"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := archive.ParseEpochStatement(b)
		if err != nil {
			return
		}
		if s.ParsedTrust() == nil || s.Epoch != s.Closed.Epoch+1 || s.KeyID == s.Closed.KeyID {
			t.Fatalf("accepted an inconsistent statement: %+v", s)
		}
		again, err := s.Marshal()
		if err != nil || string(again) != string(b) {
			t.Fatalf("a parsed statement does not marshal back to its bytes: %v", err)
		}
	})
}

func FuzzParseActivation(f *testing.F) {
	v := readActivationVectors(f)
	f.Add([]byte(v.Challenge))
	f.Add([]byte(v.Response))
	for _, c := range v.InvalidChallenges {
		f.Add([]byte(c.Challenge))
	}
	for _, c := range v.InvalidResponses {
		f.Add([]byte(c.Response))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := archive.ParseChallenge(b); err == nil {
			again, err := c.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := archive.ParseChallenge(again); err != nil {
				t.Fatalf("re-parse of a parsed challenge: %v", err)
			}
		}
		if r, err := archive.ParseActivationResponse(b); err == nil {
			again, err := r.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := archive.ParseActivationResponse(again); err != nil {
				t.Fatalf("re-parse of a parsed response: %v", err)
			}
		}
	})
}

func FuzzParseEKRoots(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("not pem"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if pool, err := archive.ParseEKRoots(b); err == nil && pool == nil {
			t.Fatal("nil pool without an error")
		}
	})
}

// FuzzParseAccessEntry: an access log record is read strictly; what is
// accepted is canonical and marshals back to the same bytes.
func FuzzParseAccessEntry(f *testing.F) {
	f.Add([]byte(`{"action":"export.get","outcome":"ok","remote":"127.0.0.1:1","roles":["auditor"],"target":{"device":"s/d","export":"e"},"time":"2026-12-07T10:00:00.000000Z","type":"access","user":"alice","v":1,"via":"local"}`))
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"action":"export.payload","decrypt":{"case":"C-1","classification":"confidential","refused":"no role"},"outcome":"forbidden","remote":"192.0.2.8:40000","roles":["auditor"],"target":{"device":"s/d","export":"e"},"time":"2026-12-07T10:06:00.000000Z","type":"decrypt","user":"bob","v":1,"via":"local"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := archive.ParseAccessEntry(b)
		if err != nil {
			return
		}
		if e.V != 1 || (e.Type != archive.AccessEntryType && e.Type != archive.DecryptEntryType) || (e.Type == archive.DecryptEntryType) != (e.Decrypt != nil) {
			t.Fatalf("accepted %+v", e)
		}
		if d := e.Decrypt; d != nil && e.Outcome == "ok" && (d.Plaintext == "" || d.Case == "" && d.Reason == "" || d.Refused != "") {
			t.Fatalf("accepted an ok decryption without its plaintext or why: %+v", d)
		}
	})
}
