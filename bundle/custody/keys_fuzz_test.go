package custody_test

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/custody"
)

// keyVectorBodies returns the bodies of the key vectors, valid and not.
func keyVectorBodies(f *testing.F) [][]byte {
	raw, err := os.ReadFile(keyVectorsPath)
	if err != nil {
		f.Fatal(err)
	}
	var v keyVectors
	if err := json.Unmarshal(raw, &v); err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, line := range v.Records {
		r, err := custody.ParseRecord([]byte(line))
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, r.Body)
	}
	for _, iv := range v.Invalid {
		out = append(out, []byte(iv.Body))
	}
	return out
}

// FuzzParseKeyBodies feeds every key body parser and the rotation
// statement parser; what one accepts must be canonical and re-encode to
// the same bytes.
func FuzzParseKeyBodies(f *testing.F) {
	for _, b := range keyVectorBodies(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if k, err := custody.ParseKeyCreateBody(in); err == nil {
			if out, _ := json.Marshal(k); !sameCanonical(out, in) {
				t.Fatalf("key.create accepted non-canonical %q", in)
			}
		}
		if k, st, err := custody.ParseKeyRotateBody(in); err == nil {
			if k.OldKeyID != st.OldKeyID || k.NewKeyID != st.NewKeyID || k.NewKeyID != custody.KeyID(st.NewPublic) {
				t.Fatalf("key.rotate accepted with ids that disagree: %q", in)
			}
			if out, _ := json.Marshal(k); !sameCanonical(out, in) {
				t.Fatalf("key.rotate accepted non-canonical %q", in)
			}
		}
		if k, err := custody.ParseKeyRevokeBody(in); err == nil {
			if out, _ := json.Marshal(k); !sameCanonical(out, in) {
				t.Fatalf("key.revoke accepted non-canonical %q", in)
			}
		}
		if st, err := custody.ParseKeyRotateStatement(in); err == nil {
			out, err := st.Marshal()
			if err != nil || !bytes.Equal(out, in) {
				t.Fatalf("statement does not round-trip: %v", err)
			}
		}
	})
}

// sameCanonical compares the JCS form of a Go encoding with accepted input.
func sameCanonical(goJSON, in []byte) bool {
	var a, b any
	if json.Unmarshal(goJSON, &a) != nil || json.Unmarshal(in, &b) != nil {
		return false
	}
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
