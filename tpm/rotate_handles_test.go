package tpm

import (
	"context"
	"crypto/sha256"
	"testing"

	"github.com/edgeseal/edgeseal/tpm/swtpmtest"
)

// TestRotationNoHandleLeft runs the rotation steps on swtpm (3 object
// slots, no resource manager) and checks that after each at most the AK
// and the signing key are loaded and no session is left, so a rotation
// between seals never exhausts the TPM.
func TestRotationNoHandleLeft(t *testing.T) {
	in := swtpmtest.Start(t)
	ctx := context.Background()
	tp, err := Open(ctx, in.Spec, Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	d := sha256.Sum256([]byte("d"))
	var cand Identity
	for round := range 3 {
		steps := []struct {
			name string
			f    func() error
		}{
			{"prepare", func() error { var err error; cand, err = tp.PrepareRotation(ctx); return err }},
			{"sign with the old key", func() error { _, err := tp.Sign(ctx, d[:]); return err }},
			{"pending", func() error { _, _, err := tp.PendingRotation(ctx); return err }},
			{"quote", func() error { _, err := tp.Quote(ctx, d[:]); return err }},
			{"commit", func() error { _, err := tp.CommitRotation(ctx, cand.KeyID); return err }},
			{"sign with the new key", func() error { _, err := tp.Sign(ctx, d[:]); return err }},
			{"prepare again", func() error { _, err := tp.PrepareRotation(ctx); return err }},
			{"discard", func() error { return tp.DiscardRotation(ctx) }},
			{"sign after discard", func() error { _, err := tp.Sign(ctx, d[:]); return err }},
		}
		for _, s := range steps {
			if err := s.f(); err != nil {
				t.Fatalf("round %d, %s: %v", round, s.name, err)
			}
			if o, n := loaded(t, tp.tr); o > 2 || n != 0 {
				t.Fatalf("round %d, after %s: %d objects, %d sessions loaded", round, s.name, o, n)
			}
		}
		if tp.Identity().KeyID != cand.KeyID {
			t.Fatalf("round %d: key in force %s, want %s", round, tp.Identity().KeyID, cand.KeyID)
		}
	}
}
