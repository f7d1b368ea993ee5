package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/tpm/swtpmtest"
)

// On a real swtpm process: a reset (swtpm_ioctl -i, then Startup) between
// two seals makes resetCount rise, and the verifier sees it: the chain
// verifies forward, and the bundle from before the reset does not verify
// after the one from after it.
func TestSwtpmResetCountRises(t *testing.T) {
	sw := swtpmtest.Start(t)
	dir := t.TempDir()
	r := openRig(t, dir, sw.Spec)
	tr := r.trust()
	r.export(3, "before-reset")
	_, b1 := r.seal()
	s1 := mustVerify(t, b1, tr, nil)
	r.close()

	if err := sw.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	r2 := openRig(t, dir, sw.Spec)
	r2.export(3, "after-reset")
	_, b2 := r2.seal()
	s2 := mustVerify(t, b2, tr, s1)
	if s2.Clock.ResetCount <= s1.Clock.ResetCount {
		t.Fatalf("resetCount %d after reset, %d before", s2.Clock.ResetCount, s1.Clock.ResetCount)
	}
	c, ok := verify.Verify(b2, tr, s1).Get(verify.CheckQuoteResetCount)
	if !ok || !c.OK {
		t.Fatalf("check %s = %+v, want it run and passed", verify.CheckQuoteResetCount, c)
	}
	rep := verify.Verify(b1, tr, s2)
	if rep.OK() {
		t.Fatal("pre-reset bundle verified after the post-reset state")
	}
}

// The quote files inside a bundle pass the real tpm2_checkquote, with the
// nonce recomputed from the checkpoint in the seal.
func TestBundleQuotePassesTpm2Checkquote(t *testing.T) {
	tool := swtpmtest.Need(t, "tpm2_checkquote")
	for _, kind := range []string{"simulator", "swtpm"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			var r *rig
			if kind == "swtpm" {
				r = openRig(t, dir, swtpmtest.Start(t).Spec)
			} else {
				r = openSimRig(t, dir)
			}
			r.export(2, "q")
			_, b := r.seal()
			_, st, err := b.Statement()
			if err != nil {
				t.Fatal(err)
			}
			nonce := sha256.Sum256([]byte(st.Predicate.Checkpoint))
			out := t.TempDir()
			files := map[string]string{
				"keys/ak.pem": "ak.pem", "attestation/quote.msg": "msg",
				"attestation/quote.sig": "sig", "attestation/quote.pcrs": "pcrs",
			}
			for in, name := range files {
				data, ok := b.Files[in]
				if !ok {
					t.Fatalf("bundle lacks %s", in)
				}
				if err := os.WriteFile(filepath.Join(out, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			check := func(q string) ([]byte, error) {
				cmd := exec.Command(tool, "-u", "ak.pem", "-m", "msg", "-s", "sig", "-f", "pcrs", "-g", "sha256", "-q", q)
				cmd.Dir = out
				return cmd.CombinedOutput()
			}
			if msg, err := check(hex.EncodeToString(nonce[:])); err != nil {
				t.Fatalf("tpm2_checkquote: %v\n%s", err, msg)
			}
			// And it can fail: another nonce is refused.
			other := sha256.Sum256([]byte("another checkpoint"))
			if msg, err := check(hex.EncodeToString(other[:])); err == nil {
				t.Fatalf("tpm2_checkquote accepted a wrong nonce:\n%s", msg)
			}
		})
	}
}
