package archive

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// TestRecoverLostIndexEvent simulates a crash after a bundle's log entry
// was written and before its index event: Open completes it, and the
// device's state moves on.
func TestRecoverLostIndexEvent(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	c, err := bundletest.NewChain(ctx, nil, 2, bundletest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := Open(ctx, Options{Dir: dir, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	trust, _ := c.Trust.Marshal()
	req, err := ParseEnrollRequest(trust)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Devices().Enroll(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Devices().Approve(ctx, c.DeviceName(), "", "test"); err != nil {
		t.Fatal(err)
	}
	raw0, _ := c.Bundles[0].Bytes()
	d := sha256.Sum256(raw0)
	// The first half of accept (the log entry, not its key record), then
	// the "crash".
	if err := a.objects.Put(ctx, d, raw0); err != nil {
		t.Fatal(err)
	}
	cp, _ := merkle.ParseCheckpoint([]byte(c.States[0].Checkpoint))
	entry, _ := archivesig.ReceiptEntry{BundleDigest: wire.FormatHash(d), Device: c.DeviceName(), CheckpointSize: cp.Size, CheckpointRoot: wire.FormatHash(cp.Root)}.Marshal()
	if _, err := a.log.l.Append(ctx, entry); err != nil {
		t.Fatal(err)
	}
	a.Close()

	if a, err = Open(ctx, Options{Dir: dir, Key: key}); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, ok, err := a.acceptedOf(d); err != nil || !ok || a.index.Size() != 1 || a.LogSize() != 1 {
		t.Fatalf("not recovered: index %d log %d", a.index.Size(), a.LogSize())
	}
	raw1, _ := c.Bundles[1].Bytes()
	reply, err := a.Receive(ctx, c.Opts.Site, c.Opts.Device, raw1)
	if err != nil {
		t.Fatalf("next bundle after recovery: %v", err)
	}
	if r, err := archivesig.VerifyReceipt(reply, a.KeyID(), a.PublicKey()); err != nil || r.LogIndex != 1 {
		t.Fatalf("receipt %+v, %v", r, err)
	}
}

// TestNoteKeys signs and verifies checkpoints with many keys (their
// verifier keys hold '+' in base64 now and then).
func TestNoteKeys(t *testing.T) {
	for i := range 64 {
		key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{byte(i)}, 32))
		s, vkey, err := noteKeys(DefaultName, key)
		if err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
		if s.Name() != DefaultName || !bytes.Contains([]byte(vkey), []byte(DefaultName+"+")) {
			t.Fatalf("seed %d: name %s vkey %s", i, s.Name(), vkey)
		}
		sig, err := s.Sign([]byte("x\n"))
		if err != nil || !ed25519.Verify(key.Public().(ed25519.PublicKey), []byte("x\n"), sig) {
			t.Fatalf("seed %d: signature %v", i, err)
		}
	}
}
