package archivesig_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/dsse"
)

var updateArchiveKey = flag.Bool("update-archivekey", false, "rewrite testdata/archivekey/vectors.json")

// vectorKey is a fixed Ed25519 key for the test vectors.
func vectorKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("edgeseal archive key vector " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func vectorAnnouncement(t testing.TB, mutate func(*archivesig.ArchiveKeyAnnouncement)) *archivesig.ArchiveKeyAnnouncement {
	t.Helper()
	a := &archivesig.ArchiveKeyAnnouncement{
		Origin: "edgeseal-archive", Seq: 1, LogSize: 42,
		Time: "2026-01-02T03:04:05.000000Z", OverlapUntil: "2026-01-09T03:04:05.000000Z",
	}
	if mutate != nil {
		mutate(a)
	}
	return a
}

func signVector(t testing.TB, a *archivesig.ArchiveKeyAnnouncement, old, next ed25519.PrivateKey) []byte {
	t.Helper()
	raw, err := archivesig.SignArchiveKey(a, archivesig.ArchiveKeyID(old.Public().(ed25519.PublicKey)), old, next)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// resign rebuilds an envelope over payload with the given signatures.
func resign(t testing.TB, payload []byte, keys ...struct {
	id  string
	key ed25519.PrivateKey
}) []byte {
	t.Helper()
	env := &dsse.Envelope{PayloadType: archivesig.ArchiveKeyPayloadType, Payload: payload}
	for _, k := range keys {
		env.Signatures = append(env.Signatures, dsse.Signature{KeyID: k.id, Sig: ed25519.Sign(k.key, dsse.PAE(archivesig.ArchiveKeyPayloadType, payload))})
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type archiveKeyVector struct {
	Name         string `json:"name"`
	Origin       string `json:"origin"`       // the verifier's archive origin
	Trusted      string `json:"trusted"`      // base64 Ed25519 public key the verifier trusts
	Announcement string `json:"announcement"` // the envelope bytes, as a string
	Want         string `json:"want"`         // "ok" or a substring of the error
}

// makeArchiveKeyVectors builds the vectors: one valid announcement and
// one forgery or malformation per way it can be wrong.
func makeArchiveKeyVectors(t testing.TB) []archiveKeyVector {
	old, next, other := vectorKey("old"), vectorKey("new"), vectorKey("other")
	oldPub := base64.StdEncoding.EncodeToString(old.Public().(ed25519.PublicKey))
	otherPub := base64.StdEncoding.EncodeToString(other.Public().(ed25519.PublicKey))
	oldID := archivesig.ArchiveKeyID(old.Public().(ed25519.PublicKey))
	valid := signVector(t, vectorAnnouncement(t, nil), old, next)
	env, err := dsse.ParseEnvelope(valid)
	if err != nil {
		t.Fatal(err)
	}
	payload := env.Payload
	_, a, err := archivesig.ParseArchiveKey(valid)
	if err != nil {
		t.Fatal(err)
	}
	type sig = struct {
		id  string
		key ed25519.PrivateKey
	}
	tampered := bytes.Replace(payload, []byte(`"logSize":42`), []byte(`"logSize":43`), 1)
	vs := []archiveKeyVector{
		{Name: "valid", Announcement: string(valid), Want: "ok"},
		{Name: "signed by an unknown key", Trusted: otherPub, Announcement: string(valid), Want: "a key not trusted"},
		{Name: "for another archive origin", Origin: "other-archive", Announcement: string(valid), Want: "announcement for archive edgeseal-archive, want other-archive"},
		{Name: "tampered payload", Announcement: string(resign(t, tampered, sig{oldID, other}, sig{a.NewKeyID, next})), Want: "signature by the old key"},
		{Name: "tampered payload, signatures kept", Announcement: strings.Replace(string(valid), base64.StdEncoding.EncodeToString(payload), base64.StdEncoding.EncodeToString(tampered), 1), Want: "not signed by the new key"},
		{Name: "old key signature by another key", Announcement: string(resign(t, payload, sig{oldID, other}, sig{a.NewKeyID, next})), Want: "does not verify"},
		{Name: "new key signature missing", Announcement: string(resign(t, payload, sig{oldID, old})), Want: "want two signatures"},
		{Name: "signatures in the wrong order", Announcement: string(resign(t, payload, sig{a.NewKeyID, next}, sig{oldID, old})), Want: "want two signatures"},
		{Name: "new key id not the new key's", Announcement: string(resign(t, bytes.Replace(payload, []byte(a.NewKeyID), []byte(oldID[:7]+strings.Repeat("0", 64)), 1), sig{oldID, old}, sig{a.NewKeyID, next})), Want: "not the new key's id"},
		{Name: "unknown field", Announcement: string(resign(t, append(bytes.TrimSuffix(payload, []byte("}")), []byte(`,"zzz":1}`)...), sig{oldID, old}, sig{a.NewKeyID, next})), Want: "unknown field"},
		{Name: "version 2", Announcement: string(resign(t, bytes.Replace(payload, []byte(`"v":1`), []byte(`"v":2`), 1), sig{oldID, old}, sig{a.NewKeyID, next})), Want: "version 2"},
		{Name: "not canonical", Announcement: " " + string(valid), Want: "not canonical"},
		{Name: "overlap before the switch", Announcement: string(resign(t, bytes.Replace(payload, []byte(`"overlapUntil":"2026-01-09`), []byte(`"overlapUntil":"2025-01-09`), 1), sig{oldID, old}, sig{a.NewKeyID, next})), Want: "overlap ends before the switch"},
	}
	for i := range vs {
		if vs[i].Origin == "" {
			vs[i].Origin = "edgeseal-archive"
		}
		if vs[i].Trusted == "" {
			vs[i].Trusted = oldPub
		}
	}
	return vs
}

// TestArchiveKeyVectors checks testdata/archivekey/vectors.json: each
// announcement is learned by a verifier of the origin trusting the key,
// or refused with an error naming what is wrong.
func TestArchiveKeyVectors(t *testing.T) {
	const path = "testdata/archivekey/vectors.json"
	if *updateArchiveKey {
		b, err := json.MarshalIndent(makeArchiveKeyVectors(t), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var vs []archiveKeyVector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 10 {
		t.Fatalf("%d vectors", len(vs))
	}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			pub, err := base64.StdEncoding.DecodeString(v.Trusted)
			if err != nil {
				t.Fatal(err)
			}
			k := archivesig.NewArchiveKeys(v.Origin, pub)
			ok, err := k.Learn([]byte(v.Announcement))
			if v.Want == "ok" {
				if err != nil || !ok {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), v.Want) {
				t.Fatalf("err = %v, want one containing %q", err, v.Want)
			}
			if _, kerr := k.Key(archivesig.ArchiveKeyID(vectorKey("new").Public().(ed25519.PublicKey)), 0, time.Now()); kerr == nil {
				t.Fatal("the refused announcement's key is trusted")
			}
		})
	}
}

// TestArchiveKeysChain follows two rotations, checks which key is
// accepted for which receipt when, and refuses a fork and a rotation
// back.
func TestArchiveKeysChain(t *testing.T) {
	k0, k1, k2 := vectorKey("old"), vectorKey("new"), vectorKey("third")
	id := func(k ed25519.PrivateKey) string { return archivesig.ArchiveKeyID(k.Public().(ed25519.PublicKey)) }
	a1 := signVector(t, vectorAnnouncement(t, nil), k0, k1)
	a2 := signVector(t, vectorAnnouncement(t, func(a *archivesig.ArchiveKeyAnnouncement) {
		a.Seq, a.LogSize, a.Time, a.OverlapUntil = 2, 100, "2026-02-01T00:00:00.000000Z", "2026-02-01T00:00:00.000000Z"
	}), k1, k2)
	ring := archivesig.NewArchiveKeys("edgeseal-archive", k0.Public().(ed25519.PublicKey))
	if _, err := ring.Learn(a2); err == nil {
		t.Fatal("an announcement by a key not learned yet was accepted")
	}
	learned, err := ring.LearnChain([][]byte{a1, a2, a1})
	if err != nil || len(learned) != 2 {
		t.Fatalf("learned %d: %v", len(learned), err)
	}
	if cur, _ := ring.Current(); cur != id(k2) {
		t.Fatalf("current %s, want %s", cur, id(k2))
	}
	during := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	after := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	later := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		key   ed25519.PrivateKey
		index uint64
		at    time.Time
		ok    bool
	}{
		{k0, 41, after, true},   // logged before the first switch: valid for ever
		{k0, 42, during, true},  // after the switch, during the overlap
		{k0, 42, after, false},  // after the overlap
		{k1, 99, later, true},   // before the second switch
		{k1, 100, later, false}, // no overlap on the second
		{k2, 1000, later, true},
	} {
		_, err := ring.Key(id(c.key), c.index, c.at)
		if (err == nil) != c.ok {
			t.Errorf("key %s index %d at %s: err %v, want ok=%v", id(c.key)[:15], c.index, c.at, err, c.ok)
		}
		var ke *archivesig.ArchiveKeyError
		if err != nil && (!errors.As(err, &ke) || !strings.Contains(err.Error(), "retired")) {
			t.Errorf("refusal %v is not an *ArchiveKeyError saying retired", err)
		}
	}
	fork := signVector(t, vectorAnnouncement(t, nil), k0, vectorKey("fork"))
	if _, err := ring.Learn(fork); err == nil || !strings.Contains(err.Error(), "already rotated") {
		t.Fatalf("fork: %v", err)
	}
	back := signVector(t, vectorAnnouncement(t, func(a *archivesig.ArchiveKeyAnnouncement) { a.Seq = 3 }), k2, k0)
	if _, err := ring.Learn(back); err == nil || !strings.Contains(err.Error(), "rotation back") {
		t.Fatalf("rotation back: %v", err)
	}
	if _, err := ring.Key(id(vectorKey("fork")), 0, during); err == nil || !strings.Contains(err.Error(), "not a trusted archive key") {
		t.Fatalf("fork key: %v", err)
	}
}

// TestReceiptKeyChain: a receipt signed by a rotated key verifies for a
// verifier that knows only the first key because it carries the chain;
// without the chain, or with a forged one, it is refused.
func TestReceiptKeyChain(t *testing.T) {
	k0, k1 := vectorKey("old"), vectorKey("new")
	a1 := signVector(t, vectorAnnouncement(t, nil), k0, k1)
	_, _, r := archiveReceipt(t, 5, 3)
	r.KeyChain = [][]byte{a1}
	raw, err := archivesig.SignReceipt(r, archivesig.ArchiveKeyID(k1.Public().(ed25519.PublicKey)), k1)
	if err != nil {
		t.Fatal(err)
	}
	ring := archivesig.NewArchiveKeys("edgeseal-archive", k0.Public().(ed25519.PublicKey))
	got, learned, err := ring.VerifyReceipt(raw, time.Now())
	if err != nil || len(learned) != 1 || got.BundleDigest != r.BundleDigest {
		t.Fatalf("receipt by the announced key: %v (learned %d)", err, len(learned))
	}
	r.KeyChain = nil
	bare, err := archivesig.SignReceipt(r, archivesig.ArchiveKeyID(k1.Public().(ed25519.PublicKey)), k1)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := archivesig.NewArchiveKeys("edgeseal-archive", k0.Public().(ed25519.PublicKey)).VerifyReceipt(bare, time.Now()); err == nil ||
		!strings.Contains(err.Error(), "not a trusted archive key") {
		t.Fatalf("receipt by an unannounced key: %v", err)
	}
	r.KeyChain = [][]byte{signVector(t, vectorAnnouncement(t, nil), vectorKey("other"), k1)}
	forged, err := archivesig.SignReceipt(r, archivesig.ArchiveKeyID(k1.Public().(ed25519.PublicKey)), k1)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := archivesig.NewArchiveKeys("edgeseal-archive", k0.Public().(ed25519.PublicKey)).VerifyReceipt(forged, time.Now()); err == nil ||
		!strings.Contains(err.Error(), "a key not trusted") {
		t.Fatalf("receipt with a forged chain: %v", err)
	}
}

func TestKeyChainFile(t *testing.T) {
	a1 := signVector(t, vectorAnnouncement(t, nil), vectorKey("old"), vectorKey("new"))
	b, err := (&archivesig.KeyChainFile{Origin: "edgeseal-archive", Announcements: [][]byte{a1}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	f, err := archivesig.ParseKeyChainFile(b)
	if err != nil || len(f.Announcements) != 1 || !bytes.Equal(f.Announcements[0], a1) {
		t.Fatalf("round trip: %v", err)
	}
	for name, bad := range map[string][]byte{
		"not canonical":    append([]byte(" "), b...),
		"unknown field":    bytes.Replace(b, []byte(`{"announcements"`), []byte(`{"x":1,"announcements"`), 1),
		"bad announcement": bytes.Replace(b, []byte(`"announcements":["`), []byte(`"announcements":["AAAA`), 1),
		"no origin":        bytes.Replace(b, []byte(`"origin":"edgeseal-archive"`), []byte(`"origin":""`), 1),
		"oversize":         make([]byte, archivesig.MaxKeyChainFileSize+1),
	} {
		if _, err := archivesig.ParseKeyChainFile(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// the announcement's signature is over the PAE, with the Ed25519 of any
// crypto.Signer: a signer refusing to sign fails SignArchiveKey.
type failSigner struct{ ed25519.PrivateKey }

func (failSigner) Sign(_ io.Reader, _ []byte, _ crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("token unplugged")
}

func TestSignArchiveKeyErrors(t *testing.T) {
	old := vectorKey("old")
	_, pk, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := archivesig.SignArchiveKey(vectorAnnouncement(t, nil), archivesig.ArchiveKeyID(old.Public().(ed25519.PublicKey)), old, old); err == nil {
		t.Fatal("rotation to the same key signed")
	}
	if _, err := archivesig.SignArchiveKey(vectorAnnouncement(t, func(a *archivesig.ArchiveKeyAnnouncement) { a.Origin = "a b" }), archivesig.ArchiveKeyID(old.Public().(ed25519.PublicKey)), old, pk); err == nil {
		t.Fatal("bad origin signed")
	}
	if _, err := archivesig.SignArchiveKey(vectorAnnouncement(t, nil), archivesig.ArchiveKeyID(old.Public().(ed25519.PublicKey)), failSigner{old}, pk); err == nil || !strings.Contains(err.Error(), "token unplugged") {
		t.Fatalf("failing signer: %v", err)
	}
}

// TestArchiveKeyRecord: an archive.key record's body is the announcement;
// a record whose body is not one is refused.
func TestArchiveKeyRecord(t *testing.T) {
	ann := signVector(t, vectorAnnouncement(t, nil), vectorKey("old"), vectorKey("new"))
	r := custody.Record{Seq: 1, Type: custody.TypeArchiveKey, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Device: "s/d",
		Actor: custody.Actor{Kind: "archive", ID: "sha256:x", Via: "sync"}, Body: ann}
	raw, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := custody.ParseRecord(raw)
	if err != nil || string(got.Body) != string(ann) {
		t.Fatalf("archive.key record: %v", err)
	}
	r.Body = []byte(`{"payloadType":"x"}`)
	if _, err := r.Marshal(); err == nil || !strings.Contains(err.Error(), "archive.key body") {
		t.Fatalf("archive.key record with another body: %v", err)
	}
}
