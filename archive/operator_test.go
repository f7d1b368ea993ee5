package archive_test

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
)

const (
	testDigestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	testDigestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	testDigestC = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
)

func signedHold(t testing.TB) []byte {
	t.Helper()
	s := &archive.OperatorStatement{Type: archive.StatementHoldSet, By: "alice", Time: "2026-12-07T03:00:00.000000Z",
		Case: "C-1", Target: &archive.HoldTarget{Device: "site1/dev1"}, Objects: []string{testDigestA, testDigestB}}
	rec, err := archive.SignOperatorStatement(s, operatorKey)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func signedPurge(t testing.TB) []byte {
	t.Helper()
	s := &archive.OperatorStatement{Type: archive.StatementPurge, By: "alice", Time: "2026-12-07T03:00:00.000000Z", Reason: "expired",
		Purged: []archive.PurgedObject{{Bundle: testDigestA, Skeleton: testDigestB, Payloads: []string{testDigestC}, Class: "7y", RetainUntil: "2026-12-07T02:00:00.000000Z"}}}
	rec, err := archive.SignOperatorStatement(s, operatorKey)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestOperatorStatementRoundTrip(t *testing.T) {
	for _, rec := range [][]byte{signedHold(t), signedPurge(t)} {
		s, err := archive.ParseOperatorStatement(rec)
		if err != nil {
			t.Fatalf("%s: %v", rec, err)
		}
		if !s.Operator.Equal(operatorKey.Public().(ed25519.PublicKey)) {
			t.Fatal("operator key lost")
		}
		again, err := s.Marshal()
		if err != nil || !bytes.Equal(again, rec) {
			t.Fatalf("re-marshal differs: %s", again)
		}
	}
}

func TestOperatorStatementRefused(t *testing.T) {
	hold := string(signedHold(t))
	purge := string(signedPurge(t))
	cases := map[string]string{
		"signature": strings.Replace(hold, `"by":"alice"`, `"by":"mallo"`, 1),
		"canonical": strings.Replace(hold, `{"by"`, `{ "by"`, 1),
		"version":   strings.Replace(hold, `"v":1`, `"v":2`, 1),
		"type":      strings.Replace(hold, `"type":"hold.set"`, `"type":"hold.sex"`, 1),
		"unknown":   strings.Replace(hold, `{"by"`, `{"aaa":1,"by"`, 1),
		"objects":   strings.Replace(hold, `"objects":["`+testDigestA+`","`+testDigestB+`"]`, `"objects":["`+testDigestB+`","`+testDigestA+`"]`, 1),
		"target":    strings.Replace(hold, `"target":{"device":"site1/dev1"}`, `"target":{"bundle":"`+testDigestA+`","device":"site1/dev1"}`, 1),
		"class":     strings.Replace(purge, `"class":"7y"`, `"class":"7 y"`, 1),
		"skeleton":  strings.Replace(purge, `"skeleton":"`+testDigestB+`"`, `"skeleton":"`+testDigestA+`"`, 1),
		"key":       strings.Replace(purge, `"key":"sha256:`, `"key":"sha256:0`, 1),
	}
	for name, rec := range cases {
		if rec == hold || rec == purge {
			t.Fatalf("%s: the variant did not change the statement", name)
		}
		if _, err := archive.ParseOperatorStatement([]byte(rec)); err == nil {
			t.Errorf("%s: parsed %s", name, rec)
		}
	}
}

func FuzzParseOperatorStatement(f *testing.F) {
	f.Add(signedHold(f))
	f.Add(signedPurge(f))
	f.Add([]byte(`{"v":1,"type":"hold.set"}`))
	f.Add([]byte(`{"v":1,"type":"retention.purge","purged":[{}]}`))
	f.Add([]byte(`{"v":1,"type":"device.approve","device":"site1/dev1"}`))
	for _, typ := range []string{archive.StatementDeviceApprove, archive.StatementDeviceRevoke, archive.StatementDeviceRevokeKey} {
		s := &archive.OperatorStatement{Type: typ, By: "alice", Time: "2026-12-07T03:00:00.000000Z", Device: "site1/dev1", Reason: "r"}
		if typ != archive.StatementDeviceRevoke {
			s.KeyID = testDigestA
		}
		if typ == archive.StatementDeviceApprove {
			s.TrustDigest, s.Reason = testDigestB, ""
		}
		rec, err := archive.SignOperatorStatement(s, operatorKey)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(rec)
	}
	var dv struct{ Valid, Refused []struct{ Statement string } }
	readVectorFile(f, "testdata/device-statement-v1.json", &dv)
	for _, c := range append(dv.Valid, dv.Refused...) {
		f.Add([]byte(c.Statement)) // approvals with a trustFile among them
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := archive.ParseOperatorStatement(b)
		if err != nil {
			return
		}
		again, err := s.Marshal()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("a parsed statement does not marshal to its bytes: %v", err)
		}
		payload, err := s.SignedPayload()
		if err != nil || !ed25519.Verify(s.Operator, payload, s.Sig) {
			t.Fatal("a parsed statement's signature does not verify")
		}
	})
}

// FuzzPurgeStatement builds tombstones from fuzzed fields: whatever
// SignOperatorStatement signs, ParseOperatorStatement reads back to the
// same statement, and a statement it refuses to sign is never written.
func FuzzPurgeStatement(f *testing.F) {
	f.Add("7y", testDigestC, "2026-12-07T02:00:00.000000Z", "expired", 1)
	f.Add("", "sha256:00", "yesterday", "", 0)
	f.Add("a.b_c-D", testDigestA, "2026-12-07T02:00:00Z", strings.Repeat("x", 1025), 2)
	f.Fuzz(func(t *testing.T, class, payload, until, reason string, n int) {
		s := &archive.OperatorStatement{Type: archive.StatementPurge, By: "alice", Time: "2026-12-07T03:00:00.000000Z", Reason: reason,
			Purged: []archive.PurgedObject{{Bundle: testDigestA, Skeleton: testDigestB, Payloads: []string{payload}, Class: class, RetainUntil: until}}}
		if n%3 == 1 {
			s.Purged = append(s.Purged, archive.PurgedObject{Bundle: testDigestA, Skeleton: testDigestC, Payloads: []string{}, Class: "7y", RetainUntil: until})
		}
		rec, err := archive.SignOperatorStatement(s, operatorKey)
		if err != nil {
			return
		}
		got, err := archive.ParseOperatorStatement(rec)
		if err != nil {
			t.Fatalf("a signed statement does not parse: %v\n%s", err, rec)
		}
		if len(got.Purged) != len(s.Purged) || got.Purged[0].Class != class || got.Purged[0].RetainUntil != until || got.Reason != reason {
			t.Fatalf("parsed %+v from %+v", got, s)
		}
	})
}
