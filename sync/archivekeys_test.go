package sync

import (
	"crypto/ed25519"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

func ringKey(s string) ed25519.PrivateKey {
	h := sha256.Sum256([]byte(s))
	return ed25519.NewKeyFromSeed(h[:])
}

// TestVerifyRejectionRing: a rejection signed by a rotated key verifies
// for a ring that knows only the old key when it carries the
// announcement; without it, or with a forged one, it is refused naming
// the key; after the overlap a rejection by the retired key is refused.
func TestVerifyRejectionRing(t *testing.T) {
	old, next := ringKey("old"), ringKey("next")
	oldID, nextID := archivesig.ArchiveKeyID(old.Public().(ed25519.PublicKey)), archivesig.ArchiveKeyID(next.Public().(ed25519.PublicKey))
	switched := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	ann, err := archivesig.SignArchiveKey(&archivesig.ArchiveKeyAnnouncement{Origin: "edgeseal-archive", Seq: 1, LogSize: 5,
		Time: wire.FormatTime(switched), OverlapUntil: wire.FormatTime(switched.Add(time.Hour))}, oldID, old, next)
	if err != nil {
		t.Fatal(err)
	}
	rej := &Rejection{BundleDigest: wire.FormatHash(sha256.Sum256([]byte("b"))), Device: "s/d", Reason: "refused", Checks: []string{"archive.gap"}, Time: "2026-06-01T00:00:00Z"}
	now := switched.Add(time.Minute)
	ring := func() KeysRing {
		return KeysRing{Keys: archivesig.NewArchiveKeys("edgeseal-archive", old.Public().(ed25519.PublicKey)), Now: func() time.Time { return now }}
	}

	rej.KeyChain = [][]byte{ann}
	withChain, err := SignRejection(rej, nextID, next)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyRejectionRing(t.Context(), withChain, ring())
	if err != nil || len(got.KeyChain) != 1 {
		t.Fatalf("rejection by the announced key: %v", err)
	}
	rej.KeyChain = nil
	bare, _ := SignRejection(rej, nextID, next)
	if _, err := VerifyRejectionRing(t.Context(), bare, ring()); err == nil || !strings.Contains(err.Error(), nextID) || !strings.Contains(err.Error(), "not a trusted archive key") {
		t.Fatalf("rejection by an unannounced key: %v", err)
	}
	forged, _ := archivesig.SignArchiveKey(&archivesig.ArchiveKeyAnnouncement{Origin: "edgeseal-archive", Seq: 1, LogSize: 5,
		Time: wire.FormatTime(switched), OverlapUntil: wire.FormatTime(switched)}, archivesig.ArchiveKeyID(ringKey("evil").Public().(ed25519.PublicKey)), ringKey("evil"), next)
	rej.KeyChain = [][]byte{forged}
	withForged, _ := SignRejection(rej, nextID, next)
	if _, err := VerifyRejectionRing(t.Context(), withForged, ring()); err == nil || !strings.Contains(err.Error(), "a key not trusted") {
		t.Fatalf("rejection with a forged announcement: %v", err)
	}
	rej.KeyChain = nil
	byOld, _ := SignRejection(rej, oldID, old)
	if _, err := VerifyRejectionRing(t.Context(), byOld, ring()); err != nil {
		t.Fatalf("rejection by the old key, nothing learned: %v", err)
	}
	r := ring()
	if _, err := VerifyRejectionRing(t.Context(), withChain, r); err != nil {
		t.Fatal(err)
	}
	now = switched.Add(2 * time.Hour)
	if _, err := VerifyRejectionRing(t.Context(), byOld, r); err == nil || !strings.Contains(err.Error(), "overlap ended") {
		t.Fatalf("rejection by the retired key after the overlap: %v", err)
	}
	rej.KeyChain = make([][]byte, archivesig.MaxKeyChain+1)
	for i := range rej.KeyChain {
		rej.KeyChain[i] = ann
	}
	if _, err := SignRejection(rej, nextID, next); err == nil {
		t.Fatal("a rejection with too long a key chain was signed")
	}
}
