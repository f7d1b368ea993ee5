package tpm_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/edgeseal/edgeseal/tpm/attest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/swtpmtest"
)

func TestDataKeyStableAcrossReopen(t *testing.T) {
	each(t, func(t *testing.T, r *rig) {
		tp := r.open(t)
		k1, err := tp.DataKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(k1) != 32 || bytes.Equal(k1, make([]byte, 32)) {
			t.Fatalf("data key %x", k1)
		}
		// The AK was flushed to make room; quoting must still work.
		if _, err := tp.Quote(ctx, []byte("n")); err != nil {
			t.Fatalf("quote after DataKey: %v", err)
		}
		mustClose(t, tp)
		r.restart(t)
		k2, err := r.open(t).DataKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(k1, k2) {
			t.Fatal("data key changed across reopen")
		}
	})
}

func TestCounterMonotonicAcrossReopen(t *testing.T) {
	each(t, func(t *testing.T, r *rig) {
		tp := r.open(t)
		v0, err := tp.ReadCounter(ctx)
		if err != nil {
			t.Fatal(err)
		}
		v1, err := tp.IncrementCounter(ctx)
		if err != nil {
			t.Fatal(err)
		}
		v2, err := tp.IncrementCounter(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v1 <= v0 || v2 != v1+1 {
			t.Fatalf("counter %d, %d, %d", v0, v1, v2)
		}
		if got, _ := tp.ReadCounter(ctx); got != v2 {
			t.Fatalf("ReadCounter %d after increment to %d", got, v2)
		}
		mustClose(t, tp)
		r.restart(t) // the simulator forgets NV here; tpm.Open restores it
		tp = r.open(t)
		v3, err := tp.ReadCounter(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v3 < v2 {
			t.Fatalf("counter went back from %d to %d across restart", v2, v3)
		}
		v4, err := tp.IncrementCounter(ctx)
		if err != nil || v4 <= v3 {
			t.Fatalf("increment after restart: %d, %v", v4, err)
		}
	})
}

func TestPCRChangeStopsSigning(t *testing.T) {
	each(t, func(t *testing.T, r *rig) {
		tp := r.open(t)
		id := tp.Identity()
		d := sha256.Sum256([]byte("x"))
		if _, err := tp.Sign(ctx, d[:]); err != nil {
			t.Fatal(err)
		}
		dk, err := tp.DataKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tp.ExtendPCR(ctx, 7, []byte("new secure boot db")); err != nil {
			t.Fatal(err)
		}
		sig, err := tp.Sign(ctx, d[:])
		var mm *tpm.PCRMismatchError
		if !errors.As(err, &mm) {
			t.Fatalf("Sign after extend: sig=%x err=%v, want *PCRMismatchError", sig, err)
		}
		if ch := mm.Changed(); len(ch) != 1 || ch[0] != 7 {
			t.Fatalf("changed pcrs %v, want [7]", ch)
		}
		if !bytes.Equal(mm.Expected[7], id.PCRValues[7]) || bytes.Equal(mm.Current[7], mm.Expected[7]) {
			t.Fatalf("mismatch values: %v", mm)
		}
		if _, err := tp.DataKey(ctx); !errors.As(err, &mm) || mm.Key != "data" {
			t.Fatalf("DataKey after extend: %v, want *PCRMismatchError", err)
		}
		// The agent recovers the data key elsewhere and reseals it.
		if err := tp.ResealDataKey(ctx, dk); err != nil {
			t.Fatal(err)
		}
		if got, err := tp.DataKey(ctx); err != nil || !bytes.Equal(got, dk) {
			t.Fatalf("DataKey after reseal: %x, %v", got, err)
		}
		// Quoting still works and shows the new value.
		q, err := tp.Quote(ctx, []byte("n"))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(q.Values[7], id.PCRValues[7]) {
			t.Fatal("quote does not show the extended PCR")
		}
		// Re-bind: a new key under the new values, certified by the AK.
		nid, err := tp.RotateSigningKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if nid.KeyID == id.KeyID || !bytes.Equal(nid.PCRValues[7], q.Values[7]) {
			t.Fatalf("rotation: key %s (was %s)", nid.KeyID, id.KeyID)
		}
		_, key := parsePublic(t, nid.SigningPublic)
		sig, err = tp.Sign(ctx, d[:])
		if err != nil {
			t.Fatalf("sign after rotation: %v", err)
		}
		if !ecdsaVerify(key, d[:], sig) {
			t.Fatal("signature by the rotated key does not verify")
		}
		_, akKey := parsePublic(t, nid.AKPublic)
		verifyTPMSig(t, akKey, nid.Certify.Attest, nid.Certify.Signature)
		mustClose(t, tp)
		if got := r.open(t).Identity().KeyID; got != nid.KeyID {
			t.Fatalf("reopen after rotation loads %s, want %s", got, nid.KeyID)
		}
	})
}

// TestSealLoop runs the commands of a seal many times: a leaked handle or
// session would exhaust the TPM's 3 object slots or its session slots.
func TestSealLoop(t *testing.T) {
	each(t, func(t *testing.T, r *rig) {
		n := 10000
		if r.sw != nil {
			n = 2000 // swtpm: a TCP round trip per command
		}
		if testing.Short() {
			n = 200
		}
		// The simulator rig fsyncs its counter file at every increment;
		// this test is about handles, not the disk, so keep state in RAM.
		r.opts.StateDir = ramDir(t)
		tp := r.open(t)
		_, key := parsePublic(t, tp.Identity().SigningPublic)
		start := time.Now()
		var last uint64
		for i := range n {
			v, err := tp.IncrementCounter(ctx)
			if err != nil {
				t.Fatalf("seal %d: increment: %v", i, err)
			}
			if v <= last {
				t.Fatalf("seal %d: counter %d after %d", i, v, last)
			}
			last = v
			nonce := sha256.Sum256(fmt.Appendf(nil, "checkpoint %d", i))
			if _, err := tp.Quote(ctx, nonce[:]); err != nil {
				if errors.Is(err, tpm2.TPMRCObjectMemory) || errors.Is(err, tpm2.TPMRCSessionMemory) {
					t.Fatalf("seal %d: handle leak: %v", i, err)
				}
				t.Fatalf("seal %d: quote: %v", i, err)
			}
			sig, err := tp.Sign(ctx, nonce[:])
			if err != nil {
				t.Fatalf("seal %d: sign: %v", i, err)
			}
			if i%1000 == 0 && !ecdsaVerify(key, nonce[:], sig) {
				t.Fatalf("seal %d: signature does not verify", i)
			}
		}
		t.Logf("%s: %d seals in %v (%.2f ms/seal)", r.name, n, time.Since(start), float64(time.Since(start).Microseconds())/1000/float64(n))
	})
}

func TestResetCountRises(t *testing.T) {
	each(t, func(t *testing.T, r *rig) {
		if r.reset == nil {
			t.Fatalf("%s: the rig has no host reset", r.name)
		}
		tp := r.open(t)
		q1, err := tp.Quote(ctx, []byte("before"))
		if err != nil {
			t.Fatal(err)
		}
		mustClose(t, tp)
		r.reset(t)
		q2, err := r.open(t).Quote(ctx, []byte("after"))
		if err != nil {
			t.Fatal(err)
		}
		c1, c2 := clockOf(t, q1.Attest), clockOf(t, q2.Attest)
		if c2.ResetCount <= c1.ResetCount {
			t.Fatalf("resetCount %d after reset, %d before", c2.ResetCount, c1.ResetCount)
		}
	})
}

func clockOf(t *testing.T, attest []byte) tpm2.TPMSClockInfo {
	t.Helper()
	a, err := tpm2.Unmarshal[tpm2.TPMSAttest](attest)
	if err != nil {
		t.Fatal(err)
	}
	return a.ClockInfo
}

// TestCheckquote runs the real tpm2_checkquote over the quote files.
func TestCheckquote(t *testing.T) {
	tool := swtpmtest.Need(t, "tpm2_checkquote")
	each(t, func(t *testing.T, r *rig) {
		tp := r.open(t)
		nonce := sha256.Sum256([]byte("checkpoint body"))
		// A non-zero PCR makes the digest comparison meaningful.
		if err := tp.ExtendPCR(ctx, 4, []byte("boot loader")); err != nil {
			t.Fatal(err)
		}
		q, err := tp.Quote(ctx, nonce[:])
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		akPEM, err := tpm.AKPublicPEM(tp.Identity().AKPublic)
		if err != nil {
			t.Fatal(err)
		}
		files := map[string][]byte{"ak.pem": akPEM, "msg": q.Files.Msg, "sig": q.Files.Sig, "pcrs": q.Files.PCRs}
		for n, b := range files {
			if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		run := func(nonceHex, pcrFile string) ([]byte, error) {
			return exec.Command(tool, "-u", filepath.Join(dir, "ak.pem"), "-m", filepath.Join(dir, "msg"),
				"-s", filepath.Join(dir, "sig"), "-f", filepath.Join(dir, pcrFile), "-g", "sha256",
				"-q", nonceHex).CombinedOutput()
		}
		if out, err := run(hexs(nonce[:]), "pcrs"); err != nil {
			t.Fatalf("tpm2_checkquote: %v\n%s", err, out)
		}
		// It must also be able to fail: wrong nonce, wrong PCR value.
		if out, err := run(hexs(make([]byte, 32)), "pcrs"); err == nil {
			t.Fatalf("tpm2_checkquote accepted a wrong nonce:\n%s", out)
		}
		pcrs, vals, err := attest.ParsePCRsFile(q.Files.PCRs)
		if err != nil {
			t.Fatal(err)
		}
		vals[pcrs[0]][0] ^= 1
		bad, err := attest.MarshalPCRsFile(pcrs, vals)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "badpcrs"), bad, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := run(hexs(nonce[:]), "badpcrs"); err == nil {
			t.Fatalf("tpm2_checkquote accepted a wrong PCR value:\n%s", out)
		}
	})
}

func TestStateFiles(t *testing.T) {
	each(t, func(t *testing.T, r *rig) {
		tp := r.open(t)
		id := tp.Identity()
		mustClose(t, tp)
		path := filepath.Join(r.opts.StateDir, "signing-key.json")
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}

		// A certification that no longer verifies is redone at Open.
		var f map[string]any
		if err := json.Unmarshal(orig, &f); err != nil {
			t.Fatal(err)
		}
		f["certify_attest"] = base64.StdEncoding.EncodeToString([]byte("not an attestation"))
		b, _ := json.Marshal(f)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		r.restart(t)
		tp = r.open(t)
		nid := tp.Identity()
		if nid.KeyID != id.KeyID {
			t.Fatal("key changed when only the certification was bad")
		}
		_, akKey := parsePublic(t, nid.AKPublic)
		verifyTPMSig(t, akKey, nid.Certify.Attest, nid.Certify.Signature)
		mustClose(t, tp)

		// A corrupt key file stops Open; nothing is silently recreated.
		if err := os.WriteFile(path, orig[:len(orig)/2], 0o600); err != nil {
			t.Fatal(err)
		}
		_, err = tpm.Open(ctx, r.spec, r.opts)
		var se *tpm.StateError
		if !errors.As(err, &se) {
			t.Fatalf("Open with a truncated key file: %v, want *StateError", err)
		}
		if b, _ := os.ReadFile(path); !bytes.Equal(b, orig[:len(orig)/2]) {
			t.Fatal("Open rewrote a corrupt key file")
		}
	})
}
