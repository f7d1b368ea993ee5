package trustfile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/trustfile"
)

func FuzzParsePCRAuthorization(f *testing.F) {
	for _, name := range []string{"valid.json", "other-values.json", "unknown-field.json", "missing-value.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "pcrauth", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{}`))
	key := readKey(f, "policy-key.pem")
	f.Fuzz(func(t *testing.T, in []byte) {
		a, err := trustfile.ParsePCRAuthorization(in)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to a statement that parses the same,
		// and verifying it must not panic.
		out, err := a.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		again, err := trustfile.ParsePCRAuthorization(out)
		if err != nil {
			t.Fatalf("re-encoded statement refused: %v", err)
		}
		if again.ApprovedPolicy != a.ApprovedPolicy || again.Device != a.Device || again.PolicyRef != a.PolicyRef {
			t.Fatal("round trip changed the statement")
		}
		_ = a.Verify(&key.PublicKey, a.Device)
	})
}
