package archivesig_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
)

func contentKeyAnnouncement(t testing.TB) ([]byte, ed25519.PublicKey, *payloadcipher.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := payloadcipher.DeriveKey([]byte("archivesig content key test"))
	if err != nil {
		t.Fatal(err)
	}
	a := &archivesig.ContentKeyAnnouncement{Origin: "archive-a", Seq: 1, Time: "2026-12-07T10:00:00.000000Z"}
	raw, err := archivesig.SignContentKey(a, ck.Public(), archivesig.ArchiveKeyID(pub), priv)
	if err != nil {
		t.Fatal(err)
	}
	return raw, pub, ck
}

// TestContentKey: an announcement signed by the trusted archive key
// verifies and names the key; one for another archive, one signed by an
// untrusted key and a changed one are refused.
func TestContentKey(t *testing.T) {
	raw, pub, ck := contentKeyAnnouncement(t)
	now := time.Date(2026, 12, 7, 11, 0, 0, 0, time.UTC)
	a, err := archivesig.NewArchiveKeys("archive-a", pub).VerifyContentKey(raw, now)
	if err != nil {
		t.Fatal(err)
	}
	k, err := a.PublicKey()
	if err != nil || k.ID != ck.ID || a.Seq != 1 {
		t.Fatalf("announced %+v, %v", a, err)
	}
	var ake *archivesig.ArchiveKeyError
	if _, err := archivesig.NewArchiveKeys("archive-b", pub).VerifyContentKey(raw, now); !errors.As(err, &ake) {
		t.Fatalf("another archive: %v", err)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := archivesig.NewArchiveKeys("archive-a", other).VerifyContentKey(raw, now); err == nil {
		t.Fatal("an announcement signed by an untrusted key verified")
	}
	bad := bytes.Replace(raw, []byte(`"payload":"`), []byte(`"payload":"e`), 1)
	if _, err := archivesig.NewArchiveKeys("archive-a", pub).VerifyContentKey(bad, now); err == nil {
		t.Fatal("a changed announcement verified")
	}
}

func FuzzParseContentKey(f *testing.F) {
	raw, _, _ := contentKeyAnnouncement(f)
	f.Add(raw)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		_, a, err := archivesig.ParseContentKey(in)
		if err != nil {
			return
		}
		if _, err := a.PublicKey(); err != nil {
			t.Fatalf("accepted an announcement whose key does not parse: %v", err)
		}
	})
}
