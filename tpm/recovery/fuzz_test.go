package recovery

import (
	"os"
	"path/filepath"
	"testing"
)

func addVectors(f *testing.F, names ...string) {
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzParse: Parse never panics, and what it accepts marshals back to a
// wrap it accepts again.
func FuzzParse(f *testing.F) {
	addVectors(f, "wrap.json", "tampered-device.json")
	f.Add([]byte(`{"v":1}`))
	k := vectorKey(f, "edgeseal recovery test vector")
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := Parse(b)
		if err != nil {
			return
		}
		out, err := w.Marshal()
		if err != nil {
			t.Fatalf("accepted wrap does not marshal: %v", err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("marshalled wrap does not parse: %v", err)
		}
		_, _ = w.Open(k)
	})
}

// FuzzParseKeys: the key file parsers never panic, and an accepted key
// round-trips with the same id.
func FuzzParseKeys(f *testing.F) {
	addVectors(f, "recovery.key", "recovery.key.pub")
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, err := ParsePrivateKey(b); err == nil {
			out, err := k.MarshalPEM()
			if err != nil {
				t.Fatal(err)
			}
			k2, err := ParsePrivateKey(out)
			if err != nil || k2.ID != k.ID {
				t.Fatalf("private key round trip: %v", err)
			}
		}
		if k, err := ParsePublicKey(b); err == nil {
			k2, err := ParsePublicKey(k.MarshalPEM())
			if err != nil || k2.ID != k.ID {
				t.Fatalf("public key round trip: %v", err)
			}
		}
	})
}
