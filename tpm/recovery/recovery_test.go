package recovery

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/internal/hpkekey"
)

var update = flag.Bool("update", false, "rewrite the test vectors in testdata")

// vectorKey is the recovery key of the test vectors: derived (RFC 9180
// DeriveKeyPair) from a fixed seed so testdata can be rebuilt.
func vectorKey(t testing.TB, seed string) *PrivateKey {
	t.Helper()
	ikm := sha256.Sum256([]byte(seed))
	k, err := hpkekey.Derive[recoveryKey](ikm[:])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// vectorDataKey is the data key the vector wrap carries: bytes 0..31.
func vectorDataKey() []byte {
	k := make([]byte, DataKeySize)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}

const vectorDevice = "site-a/dev-1"

func readVector(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVectors rebuilds testdata with -update, and checks the stored wrap
// opens to the known data key under the stored private key.
func TestVectors(t *testing.T) {
	if *update {
		k := vectorKey(t, "edgeseal recovery test vector")
		other := vectorKey(t, "edgeseal recovery other key")
		priv, err := k.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		otherPriv, err := other.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		w, err := Seal(k.Public(), vectorDevice, vectorDataKey())
		if err != nil {
			t.Fatal(err)
		}
		wb, err := w.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		files := map[string][]byte{
			"recovery.key": priv, "recovery.key.pub": k.Public().MarshalPEM(),
			"other.key": otherPriv, "wrap.json": wb,
		}
		// Tampered inputs: each still parses, and must not open.
		tamper := func(name string, f func(w *Wrap)) {
			c := *w
			c.Enc, c.Ciphertext = bytes.Clone(w.Enc), bytes.Clone(w.Ciphertext)
			f(&c)
			b, err := c.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			files[name] = b
		}
		tamper("tampered-ciphertext.json", func(w *Wrap) { w.Ciphertext[0] ^= 1 })
		tamper("tampered-enc.json", func(w *Wrap) { w.Enc[len(w.Enc)-1] ^= 1 })
		tamper("tampered-device.json", func(w *Wrap) { w.Device = "site-a/dev-2" })
		tamper("tampered-keyid.json", func(w *Wrap) { w.RecoveryKeyID = other.ID })
		for name, b := range files {
			if err := os.WriteFile(filepath.Join("testdata", name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	priv, err := ParsePrivateKey(readVector(t, "recovery.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(readVector(t, "recovery.key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if pub.ID != priv.ID || !bytes.Equal(pub.Bytes(), priv.Public().Bytes()) {
		t.Fatalf("public key file %s is not the private key's %s", pub.ID, priv.ID)
	}
	w, err := Parse(readVector(t, "wrap.json"))
	if err != nil {
		t.Fatal(err)
	}
	if w.Device != vectorDevice || w.RecoveryKeyID != priv.ID {
		t.Fatalf("wrap names %s and %s", w.Device, w.RecoveryKeyID)
	}
	got, err := w.Open(priv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, vectorDataKey()) {
		t.Fatalf("vector opened to %x", got)
	}
}

func TestRoundTrip(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	privPEM, err := k.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(k.Public().MarshalPEM())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte(strings.Repeat("k", DataKeySize))
	w, err := Seal(pub, "s/d", data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := w.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	w2, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := w2.Open(k2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("round trip gave %q", got)
	}
	// Two wraps of the same key differ (fresh encapsulation each time).
	w3, err := Seal(pub, "s/d", data)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(w3.Enc, w.Enc) || bytes.Equal(w3.Ciphertext, w.Ciphertext) {
		t.Fatal("two seals gave the same encapsulation")
	}
}

func TestWrongKeyRefused(t *testing.T) {
	w, err := Parse(readVector(t, "wrap.json"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := ParsePrivateKey(readVector(t, "other.key"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Open(other)
	var wk *WrongKeyError
	if !errors.As(err, &wk) || wk.Want != w.RecoveryKeyID || wk.Got != other.ID {
		t.Fatalf("open with another key: %v, want *WrongKeyError naming both ids", err)
	}
	// A private key file whose Key-Id header lies about the key.
	right := string(readVector(t, "recovery.key"))
	lying := strings.Replace(string(readVector(t, "other.key")), "Key-Id: "+other.ID, "Key-Id: "+w.RecoveryKeyID, 1)
	if lying == string(readVector(t, "other.key")) || right == lying {
		t.Fatal("test setup: Key-Id header not replaced")
	}
	var fe *FormatError
	if _, err := ParsePrivateKey([]byte(lying)); !errors.As(err, &fe) || !strings.Contains(err.Error(), "Key-Id") {
		t.Fatalf("private key with a lying Key-Id: %v, want *FormatError about Key-Id", err)
	}
}

// TestTamperedRefused opens the golden tampered wraps: each parses, and
// none decrypts.
func TestTamperedRefused(t *testing.T) {
	priv, err := ParsePrivateKey(readVector(t, "recovery.key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tampered-ciphertext.json", "tampered-enc.json", "tampered-device.json"} {
		t.Run(name, func(t *testing.T) {
			w, err := Parse(readVector(t, name))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Open(priv); !errors.Is(err, ErrOpen) {
				t.Fatalf("open: %v, want ErrOpen", err)
			}
		})
	}
	// The key id is bound too: a wrap relabelled to another key is
	// refused by that key (wrong key), and does not open under it.
	w, err := Parse(readVector(t, "tampered-keyid.json"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := ParsePrivateKey(readVector(t, "other.key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Open(other); !errors.Is(err, ErrOpen) {
		t.Fatalf("relabelled wrap under the key it names: %v, want ErrOpen", err)
	}
	var wk *WrongKeyError
	if _, err := w.Open(priv); !errors.As(err, &wk) {
		t.Fatalf("relabelled wrap under the original key: %v, want *WrongKeyError", err)
	}
}

func TestParseRefuses(t *testing.T) {
	good := readVector(t, "wrap.json")
	var m map[string]any
	if err := json.Unmarshal(good, &m); err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) []byte {
		c := map[string]any{}
		for k, v := range m {
			c[k] = v
		}
		f(c)
		b, _ := json.Marshal(c)
		return b
	}
	cases := map[string]struct {
		in   []byte
		want string
	}{
		"unknown field": {edit(func(m map[string]any) { m["extra"] = 1 }), "unknown field"},
		"version 2":     {edit(func(m map[string]any) { m["v"] = 2 }), "version 2"},
		"other suite":   {edit(func(m map[string]any) { m["suite"] = "X25519/HKDF-SHA256/AES-128-GCM" }), "suite"},
		"short enc":     {edit(func(m map[string]any) { m["enc"] = "AAAA" }), "enc of 3 bytes"},
		"bad device":    {edit(func(m map[string]any) { m["device"] = "nodevice" }), "device"},
		"bad key id":    {edit(func(m map[string]any) { m["recoveryKeyId"] = "sha1:00" }), "recoveryKeyId"},
		"trailing":      {append(bytes.Clone(good), []byte("{}")...), "data after"},
		"duplicate":     {bytes.Replace(good, []byte(`"v": 1,`), []byte(`"v": 1, "v": 1,`), 1), "canonical"},
		"oversize":      {append(bytes.Clone(good), bytes.Repeat([]byte(" "), maxWrapFile)...), "at most"},
		"empty":         {nil, "decode"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(c.in)
			var fe *FormatError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse: %v, want *FormatError mentioning %q", err, c.want)
			}
		})
	}
}

func TestParseKeyRefuses(t *testing.T) {
	pub := string(readVector(t, "recovery.key.pub"))
	priv := string(readVector(t, "recovery.key"))
	cases := map[string]struct {
		in   string
		priv bool
		want string
	}{
		"public as private": {pub, true, "PEM type"},
		"private as public": {priv, false, "PEM type"},
		"version 2":         {strings.Replace(pub, "Version: 1", "Version: 2", 1), false, "Version"},
		"extra header":      {strings.Replace(pub, "Version: 1", "Version: 1\nComment: x", 1), false, "PEM headers"},
		"trailing":          {pub + "x", false, "after the PEM block"},
		"not PEM":           {"hello", false, "no PEM block"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var err error
			if c.priv {
				_, err = ParsePrivateKey([]byte(c.in))
			} else {
				_, err = ParsePublicKey([]byte(c.in))
			}
			var fe *FormatError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("parse: %v, want *FormatError mentioning %q", err, c.want)
			}
		})
	}
}
