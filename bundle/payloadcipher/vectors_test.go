package payloadcipher_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite testdata/vector.json (a fresh encapsulation)")

// vector is testdata/vector.json: one payload sealed to a content key
// derived from a fixed ikm, for an outside HPKE implementation to open.
type vector struct {
	Comment    string `json:"comment"`
	KEM        int    `json:"kem"`
	KDF        int    `json:"kdf"`
	AEAD       int    `json:"aead"`
	IKM        string `json:"ikm"`        // hex, RFC 9180 DeriveKeyPair input
	PrivateKey string `json:"privateKey"` // hex, SerializePrivateKey (the 32-byte X-Wing seed)
	PublicKey  string `json:"publicKey"`  // hex, SerializePublicKey
	KeyID      string `json:"keyId"`
	Device     string `json:"device"`
	BoundBody  string `json:"boundBody"` // the record's bound body (text)
	Info       string `json:"info"`      // hex
	Plaintext  string `json:"plaintext"` // hex
	Ciphertext string `json:"ciphertext"`
	Digest     string `json:"digest"` // of the ciphertext
}

const vectorPath = "testdata/vector.json"

func readVector(t testing.TB) vector { return readJSON[vector](t, vectorPath) }

// readJSON reads the vector file at path into a T.
func readJSON[T any](t testing.TB, path string) T {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVector: the stored vector's key derives from its ikm, its info is
// Info of its device and bound body, and its ciphertext opens to its
// plaintext (and is refused under another info). With -update a fresh
// vector is written.
func TestVector(t *testing.T) {
	if *update {
		ikm := []byte("edgeseal payload test vector ikm, 32+ bytes")
		k := testKey(t, string(ikm))
		bound := `{"app":"crm","classification":"internal","destination":"s3://bucket","exportId":"e-0001","payload":{"canonicalization":"none","digest":"sha256:6a1d3b1c0d6ee39c4f9bb0c0dd69d9a6bbb4cd9d0b5e3c0a3cbd4f4f4a6cc0a1","mediaType":"text/csv","size":19},"payloadCipher":{"aead":2,"kdf":1,"kem":25722,"keyId":"` + k.ID + `"},"policy":"sha256:0000000000000000000000000000000000000000000000000000000000000000","purpose":"billing","retention":"P7Y","schema":"invoice@1","workflow":"invoices"}`
		pt := []byte("name,amount\nada,12\n")
		info := payloadcipher.Info("site-a/dev-1", []byte(bound))
		file, c, err := payloadcipher.Seal(k.Public(), info, pt)
		if err != nil {
			t.Fatal(err)
		}
		raw := rawPrivate(t, k)
		v := vector{
			Comment: "HPKE base mode (RFC 9180), single shot, empty aad: KEM 0x647a (ML-KEM-768+X25519, X-Wing), KDF HKDF-SHA256, AEAD AES-256-GCM. ciphertext = enc (1120 bytes) || AEAD ciphertext. info = \"edgeseal payload v1\" || 0x00 || device || 0x00 || SHA-256(boundBody).",
			KEM:     c.KEM, KDF: c.KDF, AEAD: c.AEAD,
			IKM: hex.EncodeToString(ikm), PrivateKey: hex.EncodeToString(raw), PublicKey: hex.EncodeToString(k.Public().Bytes()),
			KeyID: k.ID, Device: "site-a/dev-1", BoundBody: bound, Info: hex.EncodeToString(info),
			Plaintext: hex.EncodeToString(pt), Ciphertext: hex.EncodeToString(file), Digest: c.Digest,
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := fsutil.WriteFileAtomic(vectorPath, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v := readVector(t)
	k := testKey(t, string(unhex(t, v.IKM)))
	if k.ID != v.KeyID || hex.EncodeToString(k.Public().Bytes()) != v.PublicKey || hex.EncodeToString(rawPrivate(t, k)) != v.PrivateKey {
		t.Fatal("the vector's key is not the key its ikm derives")
	}
	info := payloadcipher.Info(v.Device, []byte(v.BoundBody))
	if hex.EncodeToString(info) != v.Info {
		t.Fatal("the vector's info is not Info(device, boundBody)")
	}
	file := unhex(t, v.Ciphertext)
	c := payloadcipher.Cipher{KEM: v.KEM, KDF: v.KDF, AEAD: v.AEAD, KeyID: v.KeyID, Digest: v.Digest}
	pt, err := payloadcipher.Open(k, &c, info, file)
	if err != nil || !bytes.Equal(pt, unhex(t, v.Plaintext)) {
		t.Fatalf("the vector does not open: %v", err)
	}
	if _, err := payloadcipher.Open(k, &c, payloadcipher.Info("site-a/dev-2", []byte(v.BoundBody)), file); err == nil {
		t.Fatal("the vector opened under another device")
	}
}

// TestVectorPython opens the vector with an implementation that shares
// no code with crypto/hpke: testdata/check_vector.py does X-Wing
// decapsulation (ML-KEM-768 and X25519 of the Python cryptography
// package, the SHA3-256 combiner), the RFC 9180 key schedule with HKDF
// and AES-256-GCM itself.
func TestVectorPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		testenv.Missing(t, "python3: %v", err)
		return
	}
	if out, err := exec.Command(py, "-c", "from cryptography.hazmat.primitives.asymmetric import mlkem").CombinedOutput(); err != nil {
		testenv.Missing(t, "python3 cryptography with ML-KEM: %v: %s", err, out)
		return
	}
	out, err := exec.Command(py, filepath.Join("testdata", "check_vector.py"), vectorPath).CombinedOutput()
	if err != nil {
		t.Fatalf("check_vector.py: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("ok: plaintext matches")) {
		t.Fatalf("check_vector.py said %s", out)
	}
}

// rawPrivate is the serialized private key the PEM file carries.
func rawPrivate(t testing.TB, k *payloadcipher.PrivateKey) []byte {
	t.Helper()
	b, err := k.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pemDecode(b)
	return blk
}
