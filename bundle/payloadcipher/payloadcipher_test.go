package payloadcipher_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
)

func testKey(t testing.TB, seed string) *payloadcipher.PrivateKey {
	t.Helper()
	k, err := payloadcipher.DeriveKey([]byte(seed))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := testKey(t, "edgeseal content key test")
	info := payloadcipher.Info("site-a/dev-1", []byte(`{"exportId":"e1"}`))
	pt := []byte("name,amount\nada,12\n")
	file, c, err := payloadcipher.Seal(k.Public(), info, pt)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(file, pt) {
		t.Fatal("ciphertext holds the plaintext")
	}
	if c.KeyID != k.ID || c.Digest != payloadcipher.Digest(file) || c.Suite() != payloadcipher.Default {
		t.Fatalf("cipher member %+v", c)
	}
	if len(file) != payloadcipher.EncSize+len(pt)+payloadcipher.TagSize {
		t.Fatalf("file of %d bytes", len(file))
	}
	got, err := payloadcipher.Open(k, &c, info, file)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("open: %q, %v", got, err)
	}
}

// TestOpenRefusals: a ciphertext bound to another record, a swapped suite,
// a truncated or changed ciphertext and another key are each refused with
// their own error.
func TestOpenRefusals(t *testing.T) {
	k := testKey(t, "edgeseal content key test")
	info := payloadcipher.Info("site-a/dev-1", []byte(`{"exportId":"e1"}`))
	file, c, err := payloadcipher.Seal(k.Public(), info, []byte("secret payload"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("moved", func(t *testing.T) {
		other := payloadcipher.Info("site-a/dev-1", []byte(`{"exportId":"e2"}`))
		if _, err := payloadcipher.Open(k, &c, other, file); !errors.Is(err, payloadcipher.ErrOpen) {
			t.Fatalf("want ErrOpen, got %v", err)
		}
		otherDev := payloadcipher.Info("site-a/dev-2", []byte(`{"exportId":"e1"}`))
		if _, err := payloadcipher.Open(k, &c, otherDev, file); !errors.Is(err, payloadcipher.ErrOpen) {
			t.Fatalf("want ErrOpen, got %v", err)
		}
	})
	t.Run("suite", func(t *testing.T) {
		for _, s := range []payloadcipher.Cipher{{KEM: 0x0020, KDF: 1, AEAD: 2}, {KEM: 0x647a, KDF: 1, AEAD: 3}, {KEM: 0x647a, KDF: 2, AEAD: 2}, {KEM: 0x647a + 0x10000, KDF: 1, AEAD: 2}} {
			sw := c
			sw.KEM, sw.KDF, sw.AEAD = s.KEM, s.KDF, s.AEAD
			var se *payloadcipher.SuiteError
			if _, err := payloadcipher.Open(k, &sw, info, file); !errors.As(err, &se) {
				t.Fatalf("suite %d/%d/%d: want *SuiteError, got %v", s.KEM, s.KDF, s.AEAD, err)
			}
		}
	})
	t.Run("truncated", func(t *testing.T) {
		short := file[:len(file)-1]
		var de *payloadcipher.DigestError
		if err := payloadcipher.CheckFile(&c, short); !errors.As(err, &de) {
			t.Fatalf("want *DigestError, got %v", err)
		}
		// Even with the digest made to match (a forged record), the AEAD refuses it.
		c2 := c
		c2.Digest = payloadcipher.Digest(short)
		if _, err := payloadcipher.Open(k, &c2, info, short); !errors.Is(err, payloadcipher.ErrOpen) {
			t.Fatalf("want ErrOpen, got %v", err)
		}
		tiny := file[:payloadcipher.EncSize]
		c2.Digest = payloadcipher.Digest(tiny)
		var fe *payloadcipher.FormatError
		if err := payloadcipher.CheckFile(&c2, tiny); !errors.As(err, &fe) {
			t.Fatalf("want *FormatError, got %v", err)
		}
	})
	t.Run("other key", func(t *testing.T) {
		o := testKey(t, "another content key")
		var we *payloadcipher.WrongKeyError
		if _, err := payloadcipher.Open(o, &c, info, file); !errors.As(err, &we) {
			t.Fatalf("want *WrongKeyError, got %v", err)
		}
		c2 := c
		c2.KeyID = o.ID
		if _, err := payloadcipher.Open(o, &c2, info, file); !errors.Is(err, payloadcipher.ErrOpen) {
			t.Fatalf("want ErrOpen, got %v", err)
		}
	})
}

func TestKeyFiles(t *testing.T) {
	k := testKey(t, "edgeseal content key test")
	b, err := k.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := payloadcipher.ParsePrivateKey(b)
	if err != nil || k2.ID != k.ID {
		t.Fatalf("private key round trip: %v", err)
	}
	p, err := payloadcipher.ParsePublicKey(k.Public().MarshalPEM())
	if err != nil || p.ID != k.ID {
		t.Fatalf("public key round trip: %v", err)
	}
	if _, err := payloadcipher.ParsePublicKey(b); err == nil {
		t.Fatal("a private key file read as a public key")
	}
	if _, err := payloadcipher.NewPublicKey(p.Bytes()[:100]); err == nil {
		t.Fatal("a short public key accepted")
	}
}

func TestCipherCanonical(t *testing.T) {
	c := payloadcipher.Cipher{AEAD: 2, Digest: "sha256:" + string(bytes.Repeat([]byte("a"), 64)), KDF: 1, KEM: 25722, KeyID: "sha256:" + string(bytes.Repeat([]byte("b"), 64))}
	want := `{"aead":2,"digest":"` + c.Digest + `","kdf":1,"kem":25722,"keyId":"` + c.KeyID + `"}`
	if got := string(c.AppendCanonical(nil, true)); got != want {
		t.Fatalf("got %s", got)
	}
	if got := string(c.AppendCanonical(nil, false)); got != `{"aead":2,"kdf":1,"kem":25722,"keyId":"`+c.KeyID+`"}` {
		t.Fatalf("bound form %s", got)
	}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
}
