package archive_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/sync"
)

func seedKey(s string) ed25519.PrivateKey {
	h := sha256.Sum256([]byte(s))
	return ed25519.NewKeyFromSeed(h[:])
}

// TestRotateKey rotates the archive's key between bundles: receipts after
// it are signed by the new key and carry the announcement, which a
// verifier knowing only the old key follows; a repeat of a bundle
// receipted before keeps its old receipt, valid for ever; rejections
// carry the chain too; the key entry in the log is skipped by scrub and
// recovery; the archive reopens only with the new key.
func TestRotateKey(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 4, bundletest.Options{})
	e.approve(c)
	oldID, oldPub := e.a.KeyID(), e.a.PublicKey()
	first := e.accept(c, c.Bundles[0])
	e.accept(c, c.Bundles[1])

	next := seedKey("next archive key")
	nextID := archive.KeyID(next.Public().(ed25519.PublicKey))
	ann, err := e.a.RotateKey(t.Context(), next, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	logged, err := e.a.LogRecord(2)
	if err != nil || !strings.HasPrefix(string(logged), `{"announcement":"`) || !strings.HasSuffix(string(logged), `","type":"archive.key","v":1}`) {
		t.Fatalf("log key entry %s: %v", logged, err)
	}
	if e.a.KeyID() != nextID || e.a.LogSize() != 3 {
		t.Fatalf("after rotation: key %s, log size %d; want %s and 3 (two bundles and the key entry)", e.a.KeyID(), e.a.LogSize(), nextID)
	}
	_, an, err := archivesig.ParseArchiveKey(ann)
	if err != nil || an.OldKeyID != oldID || an.NewKeyID != nextID || an.LogSize != 2 || an.Seq != 1 || an.Origin != archive.DefaultName {
		t.Fatalf("announcement %+v: %v", an, err)
	}

	// A receipt under the new key, carrying the announcement.
	reply := e.accept(c, c.Bundles[2])
	env, r, err := archivesig.ParseReceipt(reply)
	if err != nil {
		t.Fatal(err)
	}
	if env.Signatures[0].KeyID != nextID || len(r.KeyChain) != 1 || string(r.KeyChain[0]) != string(ann) || r.LogIndex != 3 {
		t.Fatalf("receipt after rotation: keyid %s, chain %d, index %d", env.Signatures[0].KeyID, len(r.KeyChain), r.LogIndex)
	}
	agent := archivesig.NewArchiveKeys(archive.DefaultName, oldPub)
	if _, learned, err := agent.VerifyReceipt(reply, time.Now()); err != nil || len(learned) != 1 {
		t.Fatalf("a verifier knowing the old key: %v (learned %d)", err, len(learned))
	}
	if _, err := archivesig.VerifyReceipt(reply, oldID, oldPub); err == nil {
		t.Fatal("receipt after the rotation verifies under the old key")
	}

	// The repeat of a bundle receipted before: the stored receipt, by the
	// old key, for an entry logged before the switch.
	again, err := e.a.Receive(t.Context(), c.Opts.Site, c.Opts.Device, raw(t, c.Bundles[0]))
	if err != nil {
		t.Fatalf("repeat: %v", err)
	}
	if string(again) != string(first) { // a fresh receipt of the same entry, by the new key
		_, fr, ferr := archivesig.ParseReceipt(again)
		_, was, werr := archivesig.ParseReceipt(first)
		if ferr != nil || werr != nil || fr.LogIndex != was.LogIndex || fr.WitnessFrom == 0 {
			t.Fatalf("repeat after the rotation: another entry or no witness proof (%v, %v)", ferr, werr)
		}
	}
	if _, _, err := agent.VerifyReceipt(again, time.Now().Add(10*365*24*time.Hour)); err != nil {
		t.Fatalf("old receipt after the overlap: %v", err)
	}

	// A rejection: by the new key, with the chain.
	rej, err := e.a.Receive(t.Context(), c.Opts.Site, "other", raw(t, c.Bundles[3]))
	if _, ok := errors.AsType[*archive.RejectedError](err); !ok {
		t.Fatalf("want a rejection, got %v", err)
	}
	got, err := sync.VerifyRejection(rej, nextID, next.Public().(ed25519.PublicKey))
	if err != nil || len(got.KeyChain) != 1 || string(got.KeyChain[0]) != string(ann) {
		t.Fatalf("rejection after rotation: %v", err)
	}

	sr, err := e.a.Scrub(t.Context())
	if err != nil || sr.Checked != 3 || len(sr.Corrupt)+len(sr.Missing) != 0 {
		t.Fatalf("scrub over a log with a key entry: %+v %v", sr, err)
	}
	cp, err := e.a.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifyNote(e.a, string(cp)); err != nil {
		t.Fatalf("checkpoint under the new note key: %v", err)
	}
	if _, err := e.a.RotateKey(t.Context(), next, time.Hour); err == nil || !strings.Contains(err.Error(), "current key") {
		t.Fatalf("rotation to the current key: %v", err)
	}

	// Reopen: with the old key refused, with the new one accepted.
	if err := e.a.Close(); err != nil {
		t.Fatal(err)
	}
	e.a = nil
	_, err = archive.Open(t.Context(), archive.Options{Dir: e.dir, Key: testKey})
	var mm *archive.KeyMismatchError
	if !errors.As(err, &mm) || mm.Want != nextID || !strings.Contains(err.Error(), "not the archive's current key") {
		t.Fatalf("open with the retired key: %v", err)
	}
	e.key = next
	e.open()
	if len(e.a.KeyChain()) != 1 || e.a.KeyID() != nextID {
		t.Fatalf("reopened: chain %d, key %s", len(e.a.KeyChain()), e.a.KeyID())
	}
	e.accept(c, c.Bundles[3])
}

// TestRotateKeyResume: a rotation whose chain file was lost after the log
// entry is completed by rotating to the same key again: the announcement
// logged is the one kept. A tampered chain file stops Open.
func TestRotateKeyResume(t *testing.T) {
	e := newEnv(t)
	next := seedKey("resumed key")
	ann, err := e.a.RotateKey(t.Context(), next, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.a.Close(); err != nil {
		t.Fatal(err)
	}
	e.a = nil
	chainFile := filepath.Join(e.dir, archive.KeyChainFile)
	kept, err := os.ReadFile(chainFile)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(chainFile)
	eng, err := archive.ResolveLogEngine(e.dir, e.engineName(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if eng != archive.LogEngineJournal {
		// A Tessera log published a checkpoint signed by the new key
		// once the chain file was written: without the file that key is
		// unknown, and the log does not open (restore the file).
		if _, err := archive.Open(t.Context(), archive.Options{Dir: e.dir, Key: testKey, LogEngine: eng}); err == nil || !strings.Contains(err.Error(), "checkpoint") {
			t.Fatalf("a Tessera log signed by a key no chain file names: %v", err)
		}
	} else {
		e.open() // the old key, no chain file: as if it crashed before writing it
		again, err := e.a.RotateKey(t.Context(), next, 48*time.Hour)
		if err != nil || string(again) != string(ann) {
			t.Fatalf("resumed rotation: %v (same announcement: %v)", err, string(again) == string(ann))
		}
		if e.a.LogSize() != 1 {
			t.Fatalf("log size %d after a resumed rotation, want 1", e.a.LogSize())
		}
		e.a.Close()
		e.a = nil
	}

	tampered := strings.Replace(string(kept), `"origin":"edgeseal-archive"`, `"origin":"edgeseal-other"`, 1)
	os.WriteFile(chainFile, []byte(tampered), 0o644)
	if _, err := archive.Open(t.Context(), archive.Options{Dir: e.dir, Key: next}); err == nil || !strings.Contains(err.Error(), "edgeseal-other") {
		t.Fatalf("chain file of another archive: %v", err)
	}
	os.WriteFile(chainFile, append([]byte(" "), kept...), 0o644)
	if _, err := archive.Open(t.Context(), archive.Options{Dir: e.dir, Key: next}); err == nil || !strings.Contains(err.Error(), "not canonical") {
		t.Fatalf("altered chain file: %v", err)
	}
}

// TestRotateKeyConcurrent rotates while bundles are being received: each
// receipt verifies for a verifier knowing only the first key.
func TestRotateKeyConcurrent(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 12, bundletest.Options{})
	e.approve(c)
	agent := archivesig.NewArchiveKeys(archive.DefaultName, e.a.PublicKey())
	ctx := t.Context()
	done := make(chan error, 1)
	go func() {
		time.Sleep(5 * time.Millisecond)
		_, err := e.a.RotateKey(ctx, seedKey("concurrent"), 0)
		done <- err
	}()
	var replies [][]byte
	for _, b := range c.Bundles {
		r, err := e.a.Receive(ctx, c.Opts.Site, c.Opts.Device, raw(t, b))
		if err != nil {
			t.Fatal(err)
		}
		replies = append(replies, r)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// After the overlap (0): only receipts logged before the switch may be
	// by the old key.
	late := time.Now().Add(time.Hour)
	for i, r := range replies {
		if _, _, err := agent.VerifyReceipt(r, late); err != nil {
			t.Fatalf("receipt %d: %v", i, err)
		}
	}
}

// TestRotateKeyMany: after more rotations than a reply carries, receipts
// carry the newest MaxKeyChain announcements and stay within
// MaxReceiptSize; a verifier that knew a key still in that window
// follows, one that knew only the first key cannot.
func TestRotateKeyMany(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 1, bundletest.Options{})
	e.approve(c)
	keys := []ed25519.PublicKey{e.a.PublicKey()}
	for i := range archivesig.MaxKeyChain + 2 {
		k := seedKey("many " + string(rune('a'+i)))
		if _, err := e.a.RotateKey(t.Context(), k, 0); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.Public().(ed25519.PublicKey))
	}
	reply := e.accept(c, c.Bundles[0])
	if len(reply) > archivesig.MaxReceiptSize {
		t.Fatalf("receipt of %d bytes", len(reply))
	}
	_, r, err := archivesig.ParseReceipt(reply)
	if err != nil || len(r.KeyChain) != archivesig.MaxKeyChain {
		t.Fatalf("key chain of %d announcements: %v", len(r.KeyChain), err)
	}
	recent := archivesig.NewArchiveKeys(archive.DefaultName, keys[len(keys)-1-archivesig.MaxKeyChain])
	if _, _, err := recent.VerifyReceipt(reply, time.Now()); err != nil {
		t.Fatalf("a verifier knowing a key in the window: %v", err)
	}
	first := archivesig.NewArchiveKeys(archive.DefaultName, keys[0])
	if _, _, err := first.VerifyReceipt(reply, time.Now()); err == nil {
		t.Fatal("a verifier knowing only a key older than the window followed")
	}
}
