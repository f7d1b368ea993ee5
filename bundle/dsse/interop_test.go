package dsse_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/secure-systems-lab/go-securesystemslib/signerverifier"
)

// keyIDVerifier is the adapter docs/formats.md describes for stock DSSE
// verifiers: a verifier of keys/signing.pem whose KeyID is the seal's key
// id, "sha256:" + hex(SHA-256(keys/signing.pub)).
type keyIDVerifier struct {
	dsse.Verifier
	id string
}

func (k keyIDVerifier) KeyID() (string, error) { return k.id, nil }

// untar reads a bundle as an outside tool would: archive/tar, no edgeseal code.
func untar(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if files[h.Name], err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSealVerifiesWithSecureSystemsLib checks a format 2 seal with
// go-securesystemslib's DSSE verifier and its ECDSA verifier loaded from
// keys/signing.pem, as an outside tool would.
func TestSealVerifiesWithSecureSystemsLib(t *testing.T) {
	ctx := context.Background()
	files := untar(t, filepath.Join("..", "testdata", "unique", "good.tar")) // a format 2 bundle of package bundle
	var env dsse.Envelope
	if err := json.Unmarshal(files["seal.dsse.json"], &env); err != nil {
		t.Fatal(err)
	}
	key, err := signerverifier.LoadKey(files["keys/signing.pem"])
	if err != nil {
		t.Fatalf("keys/signing.pem: %v", err)
	}
	sv, err := signerverifier.NewECDSASignerVerifierFromSSLibKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(files["keys/signing.pub"])
	keyID := "sha256:" + hex.EncodeToString(sum[:])

	// Stock: the library's own key id (of its JSON key form) is not the
	// seal's, so it skips the signature. This is why the adapter exists.
	stock, err := dsse.NewEnvelopeVerifier(sv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stock.Verify(ctx, &env); err == nil {
		t.Fatal("the stock verifier accepted a signature under another key id; drop the adapter from the docs")
	}

	ev, err := dsse.NewEnvelopeVerifier(keyIDVerifier{sv, keyID})
	if err != nil {
		t.Fatal(err)
	}
	accepted, payload, err := ev.VerifyAndDecode(ctx, &env)
	if err != nil {
		t.Fatalf("go-securesystemslib refused the seal: %v", err)
	}
	if len(accepted) != 1 || accepted[0].KeyID != keyID || env.Signatures[0].KeyID != keyID {
		t.Fatalf("accepted %+v, envelope keyid %s, want %s", accepted, env.Signatures[0].KeyID, keyID)
	}
	var st struct {
		PredicateType string `json:"predicateType"`
		Predicate     struct {
			KeyID string `json:"keyId"`
		} `json:"predicate"`
	}
	if err := json.Unmarshal(payload, &st); err != nil {
		t.Fatal(err)
	}
	if st.PredicateType != "https://edgeseal.dev/seal/v2" || st.Predicate.KeyID != keyID {
		t.Fatalf("statement %+v", st)
	}

	// The same verifier refuses a changed payload.
	bad := env
	bad.Payload = string(bytes.Replace([]byte(env.Payload), []byte("A"), []byte("B"), 1))
	if _, err := ev.Verify(ctx, &bad); err == nil {
		t.Fatal("a changed payload verified")
	}
}
