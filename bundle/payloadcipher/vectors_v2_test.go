package payloadcipher_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/internal/testenv"
)

// vectorV2 is testdata/vector-v2.json: two payloads sealed in one
// version 2 window to the content key of vector.json, for an outside
// HPKE implementation to open.
type vectorV2 struct {
	Comment    string `json:"comment"`
	Version    int    `json:"v"`
	KEM        int    `json:"kem"`
	KDF        int    `json:"kdf"`
	AEAD       int    `json:"aead"`
	IKM        string `json:"ikm"`
	PrivateKey string `json:"privateKey"`
	PublicKey  string `json:"publicKey"`
	KeyID      string `json:"keyId"`
	Device     string `json:"device"`
	Info       string `json:"info"` // hex: the window's HPKE info
	Enc        string `json:"enc"`  // hex: the window's encapsulated key
	Payloads   []struct {
		BoundBody       string `json:"boundBody"`
		ExporterContext string `json:"exporterContext"` // hex
		Plaintext       string `json:"plaintext"`       // hex
		Ciphertext      string `json:"ciphertext"`      // hex: enc ‖ GCM ciphertext
		Digest          string `json:"digest"`
	} `json:"payloads"`
}

const vectorV2Path = "testdata/vector-v2.json"

func readVectorV2(t testing.TB) vectorV2 { return readJSON[vectorV2](t, vectorV2Path) }

// boundV2 is the bound body of the vector's n-th export (its record's
// export body without payloadCipher.digest, naming version 2).
func boundV2(keyID, exportID string, pt []byte) string {
	return `{"app":"crm","classification":"internal","destination":"s3://bucket","exportId":"` + exportID + `","payload":{"canonicalization":"none","digest":"` + payloadcipher.Digest(pt) + `","mediaType":"text/csv","size":` + itoa(len(pt)) + `},"payloadCipher":{"aead":2,"kdf":1,"kem":25722,"keyId":"` + keyID + `","v":2},"policy":"sha256:0000000000000000000000000000000000000000000000000000000000000000","purpose":"billing","retention":"P7Y","schema":"invoice@1","workflow":"invoices"}`
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func writeVectorV2(t *testing.T) {
	ikm := []byte("edgeseal payload test vector ikm, 32+ bytes")
	k := testKey(t, string(ikm))
	s := payloadcipher.NewSealer(0, 0, nil)
	v := vectorV2{
		Comment: "Payload cipher version 2: one HPKE base-mode context (RFC 9180; KEM 0x647a ML-KEM-768+X25519 X-Wing, KDF HKDF-SHA256, AEAD AES-256-GCM) per window, info = \"edgeseal payload v2 window\"; per payload key = Export(\"edgeseal payload v2\" || 0x00 || device || 0x00 || SHA-256(boundBody), 32), ciphertext = enc (1120 bytes, shared by the window) || AES-256-GCM(key, nonce 12 zero bytes, empty aad, plaintext). Two payloads of one window.",
		Version: 2, KEM: payloadcipher.KEMMLKEM768X25519, KDF: payloadcipher.KDFHKDFSHA256, AEAD: payloadcipher.AEADAES256GCM,
		IKM: hex.EncodeToString(ikm), PrivateKey: hex.EncodeToString(rawPrivate(t, k)), PublicKey: hex.EncodeToString(k.Public().Bytes()),
		KeyID: k.ID, Device: "site-a/dev-1", Info: hex.EncodeToString([]byte(payloadcipher.WindowInfo)),
	}
	for i, pt := range [][]byte{[]byte("name,amount\nada,12\n"), []byte("name,amount\nbob,7\ncy,30\n")} {
		bound := boundV2(k.ID, "e-000"+itoa(i+1), pt)
		ctx := payloadcipher.ExporterContext(v.Device, []byte(bound))
		file, c, err := s.Seal(k.Public(), ctx, pt)
		if err != nil {
			t.Fatal(err)
		}
		v.Enc = hex.EncodeToString(file[:payloadcipher.EncSize])
		v.Payloads = append(v.Payloads, struct {
			BoundBody       string `json:"boundBody"`
			ExporterContext string `json:"exporterContext"`
			Plaintext       string `json:"plaintext"`
			Ciphertext      string `json:"ciphertext"`
			Digest          string `json:"digest"`
		}{bound, hex.EncodeToString(ctx), hex.EncodeToString(pt), hex.EncodeToString(file), c.Digest})
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := fsutil.WriteFileAtomic(vectorV2Path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestVectorV2: the stored version 2 vector's key derives from its ikm,
// both payloads share the window's enc, each exporter context is
// ExporterContext of the device and bound body (which names version 2),
// and each ciphertext opens to its plaintext through one Opener (one
// decapsulation) and is refused under the other payload's record. With
// -update a fresh vector is written.
func TestVectorV2(t *testing.T) {
	if *update {
		writeVectorV2(t)
	}
	v := readVectorV2(t)
	k := testKey(t, string(unhex(t, v.IKM)))
	if k.ID != v.KeyID || hex.EncodeToString(k.Public().Bytes()) != v.PublicKey || hex.EncodeToString(rawPrivate(t, k)) != v.PrivateKey {
		t.Fatal("the vector's key is not the key its ikm derives")
	}
	if string(unhex(t, v.Info)) != payloadcipher.WindowInfo || v.Version != 2 || len(v.Payloads) != 2 {
		t.Fatal("the vector is not a version 2 window of two payloads")
	}
	o := payloadcipher.NewOpener(4)
	for i, p := range v.Payloads {
		if !strings.Contains(p.BoundBody, `"v":2}`) {
			t.Fatalf("payload %d: the bound body does not name version 2", i)
		}
		ctx := payloadcipher.ExporterContext(v.Device, []byte(p.BoundBody))
		if hex.EncodeToString(ctx) != p.ExporterContext {
			t.Fatalf("payload %d: the exporter context is not ExporterContext(device, boundBody)", i)
		}
		file := unhex(t, p.Ciphertext)
		if hex.EncodeToString(file[:payloadcipher.EncSize]) != v.Enc {
			t.Fatalf("payload %d: not the window's enc", i)
		}
		c := payloadcipher.Cipher{KEM: v.KEM, KDF: v.KDF, AEAD: v.AEAD, KeyID: v.KeyID, Digest: p.Digest, V: v.Version}
		pt, err := payloadcipher.OpenRecord(k, &c, v.Device, []byte(p.BoundBody), file, o)
		if err != nil || !bytes.Equal(pt, unhex(t, p.Plaintext)) {
			t.Fatalf("payload %d does not open: %v", i, err)
		}
		other := v.Payloads[1-i].BoundBody
		if _, err := payloadcipher.OpenRecord(k, &c, v.Device, []byte(other), file, o); err == nil {
			t.Fatalf("payload %d opened under the other record", i)
		}
	}
	if o.Len() != 1 {
		t.Fatalf("one window decapsulated into %d contexts", o.Len())
	}
}

// TestVectorV2Python opens the version 2 vector with
// testdata/check_vector.py (no code shared with crypto/hpke): X-Wing
// decapsulation of the window's enc once, the key schedule, the
// exporter secret and each payload's Export, and AES-256-GCM.
func TestVectorV2Python(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		testenv.Missing(t, "python3: %v", err)
		return
	}
	if out, err := exec.Command(py, "-c", "from cryptography.hazmat.primitives.asymmetric import mlkem").CombinedOutput(); err != nil {
		testenv.Missing(t, "python3 cryptography with ML-KEM: %v: %s", err, out)
		return
	}
	out, err := exec.Command(py, filepath.Join("testdata", "check_vector.py"), vectorV2Path).CombinedOutput()
	if err != nil {
		t.Fatalf("check_vector.py: %v\n%s", err, out)
	}
	if bytes.Count(out, []byte("ok: plaintext matches")) != 2 || !bytes.Contains(out, []byte("one decapsulation")) {
		t.Fatalf("check_vector.py said %s", out)
	}
}
