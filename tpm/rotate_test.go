package tpm_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/attest"
)

// TestRotationTwoStep prepares a candidate signing key, checks that the
// key in force is untouched (across a reopen too), commits it, and
// checks the new key signs, is certified by the same AK and survives a
// reopen; a second candidate is discarded.
func TestRotationTwoStep(t *testing.T) {
	each(t, func(t *testing.T, r *rig) {
		ctx := context.Background()
		tp := r.open(t)
		old := tp.Identity()
		d := sha256.Sum256([]byte("rotation statement"))

		cand, err := tp.PrepareRotation(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cand.KeyID == old.KeyID || tp.Identity().KeyID != old.KeyID {
			t.Fatalf("prepare: candidate %s, in force %s (was %s)", cand.KeyID, tp.Identity().KeyID, old.KeyID)
		}
		// The old key still signs (the rotation statement).
		sig, err := tp.Sign(ctx, d[:])
		if err != nil {
			t.Fatal(err)
		}
		_, oldKey := parsePublic(t, old.SigningPublic)
		if !ecdsaVerify(oldKey, d[:], sig) {
			t.Fatal("old key's signature does not verify after prepare")
		}
		// A restart keeps the old key in force and the candidate pending.
		mustClose(t, tp)
		r.restart(t)
		tp = r.open(t)
		if got := tp.Identity().KeyID; got != old.KeyID {
			t.Fatalf("after restart the key in force is %s, want the old %s", got, old.KeyID)
		}
		p, ok, err := tp.PendingRotation(ctx)
		if err != nil || !ok || p.KeyID != cand.KeyID {
			t.Fatalf("pending %s %v %v, want %s", p.KeyID, ok, err, cand.KeyID)
		}
		if _, err := tp.CommitRotation(ctx, "sha256:"+string(make([]byte, 0))+"00"); !errors.Is(err, tpm.ErrNoRotation) {
			t.Fatalf("commit of an unknown key: %v", err)
		}
		nid, err := tp.CommitRotation(ctx, cand.KeyID)
		if err != nil {
			t.Fatal(err)
		}
		if nid.KeyID != cand.KeyID || tp.Identity().KeyID != cand.KeyID {
			t.Fatalf("commit: in force %s, want %s", nid.KeyID, cand.KeyID)
		}
		ak, _ := attest.ParsePublic(nid.AKPublic)
		npub, _ := attest.ParsePublic(nid.SigningPublic)
		if err := attest.VerifyCertify(ak, nid.Certify.Attest, nid.Certify.Signature, npub); err != nil {
			t.Fatalf("new key not certified by the same AK: %v", err)
		}
		if string(nid.AKPublic) != string(old.AKPublic) || string(npub.AuthPolicy) != string(old.PolicyDigest) {
			t.Fatal("new key under another AK or policy")
		}
		if sig, err = tp.Sign(ctx, d[:]); err != nil || !ecdsaVerify(npub.Key, d[:], sig) {
			t.Fatalf("new key does not sign: %v", err)
		}
		if _, ok, _ := tp.PendingRotation(ctx); ok {
			t.Fatal("candidate left after commit")
		}
		if _, err := os.Stat(filepath.Join(r.opts.StateDir, "signing-key.json.old")); err != nil {
			t.Fatalf("old key file not kept: %v", err)
		}
		mustClose(t, tp)
		tp = r.open(t)
		if got := tp.Identity().KeyID; got != cand.KeyID {
			t.Fatalf("reopen after commit loads %s, want %s", got, cand.KeyID)
		}
		// A second candidate, discarded: the key in force stays.
		c2, err := tp.PrepareRotation(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tp.DiscardRotation(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := tp.CommitRotation(ctx, c2.KeyID); !errors.Is(err, tpm.ErrNoRotation) {
			t.Fatalf("commit after discard: %v", err)
		}
		if tp.Identity().KeyID != cand.KeyID {
			t.Fatal("discard changed the key in force")
		}
	})
}

// TestRotationCommitLeftover is a crash after the commit's rename: the
// candidate file names the key in force; committing it again cleans up.
func TestRotationCommitLeftover(t *testing.T) {
	each(t, func(t *testing.T, r *rig) {
		ctx := context.Background()
		tp := r.open(t)
		id := tp.Identity()
		b, err := os.ReadFile(filepath.Join(r.opts.StateDir, "signing-key.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(r.opts.StateDir, "signing-key.next.json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		p, ok, err := tp.PendingRotation(ctx)
		if err != nil || !ok || p.KeyID != id.KeyID {
			t.Fatalf("pending %v %v %s", ok, err, p.KeyID)
		}
		if got, err := tp.CommitRotation(ctx, id.KeyID); err != nil || got.KeyID != id.KeyID {
			t.Fatalf("commit of the key in force: %s %v", got.KeyID, err)
		}
		if _, ok, _ := tp.PendingRotation(ctx); ok {
			t.Fatal("leftover candidate kept")
		}
	})
}
