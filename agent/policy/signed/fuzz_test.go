package signed

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzVerify feeds outside bytes to the signed policy parser: it never
// panics, and what it accepts is signed by the threshold.
func FuzzVerify(f *testing.F) {
	keys, admins := testKeys(f, f.TempDir(), 2, "alice", "bob")
	payload := packTestdata(f)
	f.Add(signAll(f, payload, keys...))
	f.Add(signAll(f, payload, keys[0]))
	f.Add(payload)
	f.Add([]byte(`{"payloadType":"application/vnd.edgeseal.policy+json","payload":"e30=","signatures":[{"keyid":"k","sig":"AA=="}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Verify(b, admins)
		if err != nil {
			if s != nil {
				t.Fatal("a result with an error")
			}
			return
		}
		if len(s.Signers) < 2 || s.Policy == nil {
			t.Fatalf("accepted with signers %v", s.Signers)
		}
	})
}

// FuzzParseDocument: the payload parser accepts only canonical documents
// that load.
func FuzzParseDocument(f *testing.F) {
	f.Add(packTestdata(f))
	f.Add([]byte(`{"files":{},"policy":"version: 1\n","version":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, p, err := ParseDocument(b)
		if err != nil {
			var e *Error
			if d != nil || p != nil {
				t.Fatal("a result with an error")
			}
			_ = errors.As(err, &e)
			return
		}
		again, err := canonical(d)
		if err != nil || string(again) != string(b) {
			t.Fatalf("accepted non-canonical bytes")
		}
	})
}

// FuzzParseAdmins: an accepted admin set re-reads the same.
func FuzzParseAdmins(f *testing.F) {
	_, a := testKeys(f, f.TempDir(), 1, "alice", "bob")
	good, _ := a.Marshal()
	f.Add(good)
	f.Add([]byte(`{"version":1,"threshold":1,"admins":[{"name":"a","publicKey":"AA=="}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAdmins(b)
		if err != nil {
			return
		}
		if a.Threshold < 1 || a.Threshold > len(a.Admins) {
			t.Fatalf("threshold %d of %d", a.Threshold, len(a.Admins))
		}
		m, _ := json.Marshal(a)
		if _, err := ParseAdmins(m); err != nil {
			t.Fatalf("re-read: %v", err)
		}
	})
}
