package e2e

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/secure-systems-lab/go-securesystemslib/signerverifier"
)

// TestVerifyRefusesMalleatedCopies runs `edgeseal verify` on the golden
// bundles of bundle/testdata/unique: the genuine one verifies (exit 0),
// every copy changed without the device key (an edited Bagging-Date, a
// second or duplicated signature, ...) exits 1 naming the check of
// cases.txt.
func TestVerifyRefusesMalleatedCopies(t *testing.T) {
	dir := repoFile("bundle", "testdata", "unique")
	trust := filepath.Join(dir, "trust.json")
	if out, code := runCmd(t, "verify", filepath.Join(dir, "good.tar"), "--trust", trust); code != 0 {
		t.Fatalf("good.tar: exit %d:\n%s", code, out)
	}
	cases, err := os.ReadFile(filepath.Join(dir, "cases.txt"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.SplitSeq(strings.TrimSpace(string(cases)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			t.Fatalf("cases.txt line %q", line)
		}
		n++
		t.Run(f[0], func(t *testing.T) {
			out, code := runCmd(t, "verify", filepath.Join(dir, f[0]), "--trust", trust)
			if code != 1 {
				t.Fatalf("exit %d, want 1:\n%s", code, out)
			}
			if !regexp.MustCompile(`(?m)^\s*FAIL\s+` + regexp.QuoteMeta(f[1]) + `\s`).MatchString(out) {
				t.Fatalf("output does not fail %s:\n%s", f[1], out)
			}
		})
	}
	if n < 5 {
		t.Fatalf("only %d cases", n)
	}
}

// sslibKeyID is the adapter docs/formats.md describes: go-securesystemslib's
// ECDSA verifier of keys/signing.pem, with KeyID the seal's key id.
type sslibKeyID struct {
	dsse.Verifier
	id string
}

func (k sslibKeyID) KeyID() (string, error) { return k.id, nil }

// TestDemoSealsVerifyWithSecureSystemsLib checks the seals `edgeseal demo`
// makes (TPM simulator) with go-securesystemslib's DSSE verifier, reading
// the bundle with archive/tar only, as an outside tool would.
func TestDemoSealsVerifyWithSecureSystemsLib(t *testing.T) {
	dir := t.TempDir()
	if out, code := runCmd(t, "demo", "--dir", dir); code != 0 {
		t.Fatalf("demo exit %d:\n%s", code, out)
	}
	bundles, _ := filepath.Glob(filepath.Join(dir, "bundles", "*.bundle.tar"))
	if len(bundles) == 0 {
		t.Fatal("demo left no bundles")
	}
	for _, path := range bundles {
		files := map[string][]byte{}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(f)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if files[h.Name], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
		var env dsse.Envelope
		if err := json.Unmarshal(files["seal.dsse.json"], &env); err != nil {
			t.Fatal(err)
		}
		key, err := signerverifier.LoadKey(files["keys/signing.pem"])
		if err != nil {
			t.Fatalf("%s: keys/signing.pem: %v", filepath.Base(path), err)
		}
		sv, err := signerverifier.NewECDSASignerVerifierFromSSLibKey(key)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(files["keys/signing.pub"])
		ev, err := dsse.NewEnvelopeVerifier(sslibKeyID{sv, "sha256:" + hex.EncodeToString(sum[:])})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ev.Verify(t.Context(), &env); err != nil {
			t.Fatalf("%s: go-securesystemslib: %v", filepath.Base(path), err)
		}
	}
}
