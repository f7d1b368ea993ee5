package agent

import (
	"crypto/ed25519"
	"crypto/sha256"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
)

func archiveTestKey(s string) ed25519.PrivateKey {
	h := sha256.Sum256([]byte(s))
	return ed25519.NewKeyFromSeed(h[:])
}

func announce(t *testing.T, origin string, old, next ed25519.PrivateKey, logSize uint64, at time.Time, overlap time.Duration) []byte {
	t.Helper()
	raw, err := archivesig.SignArchiveKey(&archivesig.ArchiveKeyAnnouncement{
		Origin: origin, Seq: 1, LogSize: logSize, Time: wire.FormatTime(at), OverlapUntil: wire.FormatTime(at.Add(overlap)),
	}, archivesig.ArchiveKeyID(old.Public().(ed25519.PublicKey)), old, next)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// archiveKeyRecords returns the bodies of the archive.key records of j.
func archiveKeyRecords(t *testing.T, j *store.Journal) [][]byte {
	t.Helper()
	var out [][]byte
	err := j.Records(t.Context(), 0, j.Size(), func(_ uint64, rec []byte) error {
		r, err := custody.ParseRecord(rec)
		if err == nil && r.Type == custody.TypeArchiveKey {
			out = append(out, r.Body)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestArchiveKeyring: the agent learns a rotation from a reply's chain,
// journals it as an archive.key record whose body is the announcement,
// keeps it across a restart, accepts the old key only as the announcement
// allows, and refuses forged announcements (unknown signer, another
// archive) without journaling anything.
func TestArchiveKeyring(t *testing.T) {
	j, err := store.Open(t.Context(), store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	c := &Core{opts: Options{Site: "s", Device: "d", Now: clock}, log: slog.New(slog.DiscardHandler), j: j, device: "s/d", wake: make(chan struct{}, 1)}
	path := filepath.Join(t.TempDir(), ArchiveKeysFile)
	old, next := archiveTestKey("old"), archiveTestKey("next")
	oldID, nextID := archivesig.ArchiveKeyID(old.Public().(ed25519.PublicKey)), archivesig.ArchiveKeyID(next.Public().(ed25519.PublicKey))
	a1 := announce(t, "edgeseal-archive", old, next, 10, now, time.Hour)

	ring, err := c.ArchiveKeyring(path, "edgeseal-archive", old.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.ReplyKey(t.Context(), nextID, 10, nil); err == nil || !strings.Contains(err.Error(), "not a trusted archive key") {
		t.Fatalf("unannounced key: %v", err)
	}
	pub, err := ring.ReplyKey(t.Context(), nextID, 10, [][]byte{a1})
	if err != nil || !pub.Equal(next.Public()) {
		t.Fatalf("announced key: %v", err)
	}
	recs := archiveKeyRecords(t, j)
	env, _ := dsse.ParseEnvelope(a1)
	want, _ := env.Marshal()
	if len(recs) != 1 || string(recs[0]) != string(want) {
		t.Fatalf("archive.key records %d, want 1 whose body is the announcement", len(recs))
	}
	size := j.Size()
	if _, err := ring.ReplyKey(t.Context(), nextID, 11, [][]byte{a1}); err != nil || j.Size() != size {
		t.Fatalf("the same chain again: %v, journal %d -> %d", err, size, j.Size())
	}

	// Forgeries: no key learned, nothing journaled.
	evil, evil2 := archiveTestKey("evil"), archiveTestKey("evil2")
	forged := announce(t, "edgeseal-archive", evil, evil2, 10, now, time.Hour)
	_, err = ring.ReplyKey(t.Context(), archivesig.ArchiveKeyID(evil2.Public().(ed25519.PublicKey)), 12, [][]byte{forged})
	if err == nil || !strings.Contains(err.Error(), "a key not trusted") {
		t.Fatalf("announcement by an unknown key: %v", err)
	}
	other := announce(t, "other-archive", next, evil2, 10, now, time.Hour)
	_, err = ring.ReplyKey(t.Context(), archivesig.ArchiveKeyID(evil2.Public().(ed25519.PublicKey)), 12, [][]byte{other})
	if err == nil || !strings.Contains(err.Error(), "for archive other-archive") {
		t.Fatalf("announcement replayed from another archive: %v", err)
	}
	if n := len(archiveKeyRecords(t, j)); n != 1 {
		t.Fatalf("%d archive.key records after forgeries, want 1", n)
	}

	// The old key: during the overlap, after it (old entries only).
	if _, err := ring.ReplyKey(t.Context(), oldID, 20, nil); err != nil {
		t.Fatalf("old key during the overlap: %v", err)
	}
	now = now.Add(2 * time.Hour)
	if _, err := ring.ReplyKey(t.Context(), oldID, 20, nil); err == nil || !strings.Contains(err.Error(), "overlap ended") {
		t.Fatalf("old key after the overlap: %v", err)
	}
	if _, err := ring.ReplyKey(t.Context(), oldID, 9, nil); err != nil {
		t.Fatalf("old key, entry logged before the switch: %v", err)
	}

	// A restart: the learned key is kept.
	ring2, err := c.ArchiveKeyring(path, "edgeseal-archive", old.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring2.ReplyKey(t.Context(), nextID, 30, nil); err != nil || len(ring2.Chain()) != 1 {
		t.Fatalf("after a restart: %v", err)
	}
	// Configured with another key, the kept chain does not link: dropped.
	ring3, err := c.ArchiveKeyring(path, "edgeseal-archive", evil.Public().(ed25519.PublicKey))
	if err != nil || len(ring3.Chain()) != 0 {
		t.Fatalf("chain kept for another configured key: %v", err)
	}
	if _, err := c.ArchiveKeyring(path, "other-archive", old.Public().(ed25519.PublicKey)); err == nil {
		t.Fatal("a chain file of another archive was read")
	}
	b, _ := os.ReadFile(path)
	os.WriteFile(path, append(b, ' '), 0o644)
	if _, err := c.ArchiveKeyring(path, "edgeseal-archive", old.Public().(ed25519.PublicKey)); err == nil || !strings.Contains(err.Error(), "archive keys") {
		t.Fatalf("altered chain file: %v", err)
	}
}
