package tpm_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/swtpmtest"
)

// withoutCreate is r's options without Options.Create.
func withoutCreate(r *rig) tpm.Options {
	o := r.opts
	o.Create = false
	return o
}

// otherTPM returns the spec of a TPM other than r's: a fresh swtpm (its
// seeds new, as after a TPM clear or a board swap), or a simulator with a
// fresh state dir. r's TPM must be closed first (one simulator a process).
func otherTPM(t *testing.T, r *rig) string {
	if r.sw != nil {
		r.sw.Stop()
		return swtpmtest.Start(t).Spec
	}
	return "simulator:" + filepath.Join(t.TempDir(), "sim")
}

func TestOpenNotEnrolled(t *testing.T) {
	each(t, func(t *testing.T, r *rig) {
		o := withoutCreate(r)
		_, err := tpm.Open(context.Background(), r.spec, o)
		var ne *tpm.NotEnrolledError
		if !errors.As(err, &ne) || ne.Dir != o.StateDir || len(ne.Missing) != 2 {
			t.Fatalf("open of an empty state dir: %v, want *NotEnrolledError for %s", err, o.StateDir)
		}
		want := "no TPM keys in " + o.StateDir + ": this device is not enrolled, or the path is wrong"
		if err.Error() != want {
			t.Fatalf("message %q, want %q", err.Error(), want)
		}
		if has, _ := tpm.HasKeys(o.StateDir); has {
			t.Fatal("Open without Create made keys")
		}
		// A state dir that does not exist (a typo) is not created.
		missing := filepath.Join(t.TempDir(), "typo")
		o.StateDir = missing
		if _, err := tpm.Open(context.Background(), r.spec, o); !errors.As(err, &ne) || ne.Dir != missing {
			t.Fatalf("open of a missing state dir: %v, want *NotEnrolledError", err)
		}
		if _, err := os.Stat(missing); err == nil {
			t.Fatal("Open without Create made the state dir")
		}
	})
}

// TestOpenRefusesNewDataKey: a state dir that lost only its data key does
// not get a new one, not even with Create (the journal would be lost).
func TestOpenRefusesNewDataKey(t *testing.T) {
	each(t, func(t *testing.T, r *rig) {
		mustClose(t, r.open(t))
		if err := os.Remove(filepath.Join(r.opts.StateDir, "data-key.json")); err != nil {
			t.Fatal(err)
		}
		_, err := tpm.Open(context.Background(), r.spec, r.opts)
		var ne *tpm.NotEnrolledError
		if !errors.As(err, &ne) || !slices.Equal(ne.Missing, []string{"data-key.json"}) {
			t.Fatalf("open with the data key deleted: %v, want *NotEnrolledError missing data-key.json", err)
		}
	})
}

// TestOpenClearedTPM: the state of one TPM opened on another (a cleared
// TPM, a swapped board) is *ClearedError; once retired, Create makes new
// keys there that seal the recovered data key.
func TestOpenClearedTPM(t *testing.T) {
	each(t, func(t *testing.T, r *rig) {
		ctx := context.Background()
		tp := r.open(t)
		old := tp.Identity()
		key, err := tp.DataKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mustClose(t, tp)
		spec := otherTPM(t, r)
		_, err = tpm.Open(ctx, spec, withoutCreate(r))
		var ce *tpm.ClearedError
		if !errors.As(err, &ce) || ce.Dir != r.opts.StateDir || !strings.Contains(err.Error(), "cleared or replaced") {
			t.Fatalf("open on another TPM: %v, want *ClearedError", err)
		}
		// Create does not paper over it either.
		if _, err := tpm.Open(ctx, spec, r.opts); !errors.As(err, &ce) {
			t.Fatalf("open with Create on another TPM: %v, want *ClearedError", err)
		}
		retired, err := tpm.RetireState(r.opts.StateDir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"signing-key.json", "data-key.json"} {
			if _, err := os.Stat(filepath.Join(retired, f)); err != nil {
				t.Fatalf("retired %s: %v", f, err)
			}
		}
		o := r.opts
		o.DataKey = key
		tp2, err := tpm.Open(ctx, spec, o)
		if err != nil {
			t.Fatal(err)
		}
		defer tp2.Close()
		got, err := tp2.DataKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, key) {
			t.Fatal("the new data key blob does not seal the recovered key")
		}
		if tp2.Identity().KeyID == old.KeyID || bytes.Equal(tp2.Identity().AKPublic, old.AKPublic) {
			t.Fatal("the new TPM's keys are the old ones")
		}
	})
}

// TestOpenOtherEndorsementKey: a state dir recorded with another EK is a
// replaced TPM even before any blob is loaded.
func TestOpenOtherEndorsementKey(t *testing.T) {
	each(t, func(t *testing.T, r *rig) {
		mustClose(t, r.open(t))
		p := filepath.Join(r.opts.StateDir, "tpm-identity.json")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(b, []byte(`"ek_sha256": "`))
		if i < 0 {
			t.Fatalf("no ek_sha256 in %s", b)
		}
		i += len(`"ek_sha256": "`)
		if b[i] == '0' { // another hex digit
			b[i] = '1'
		} else {
			b[i] = '0'
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err = tpm.Open(context.Background(), r.spec, withoutCreate(r))
		var ce *tpm.ClearedError
		if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "endorsement key") {
			t.Fatalf("open with another recorded EK: %v, want *ClearedError about the endorsement key", err)
		}
	})
}

// TestCreatedDataKey: the data key an Open created is known to its caller
// (`tpm enroll` wraps it to the recovery key) even when it does not unseal
// yet, being bound to a PCR-policy key with no authorization installed;
// it is the key that unseals once one is. An Open that loads the key
// knows nothing of it.
func TestCreatedDataKey(t *testing.T) {
	each(t, func(t *testing.T, r *rig) {
		ctx := context.Background()
		op := newPolicyKey(t)
		ref := sha256.Sum256([]byte("edgeseal pcr policy v1\nsite-a/dev-1"))
		r.opts.PCRPolicy = &tpm.PCRPolicy{Key: &op.PublicKey, Ref: ref[:]}
		tp := r.open(t)
		created := tp.CreatedDataKey()
		if len(created) != 32 {
			t.Fatalf("created data key of %d bytes", len(created))
		}
		if _, err := tp.DataKey(ctx); !errors.As(err, new(*tpm.AuthorizationNeededError)) {
			t.Fatalf("data key without authorization: %v", err)
		}
		id := tp.Identity()
		cur, err := tp.ReadPCRs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tp.Authorize(ctx, signAuthorization(t, op, ref[:], id.PCRs, cur)); err != nil {
			t.Fatal(err)
		}
		if dk, err := tp.DataKey(ctx); err != nil || !bytes.Equal(dk, created) {
			t.Fatalf("data key under authorization: %v (the created one: %v)", err, bytes.Equal(dk, created))
		}
		mustClose(t, tp)
		if tp.CreatedDataKey() != nil {
			t.Fatal("the created data key outlives Close")
		}
		tp = r.open(t)
		if k := tp.CreatedDataKey(); k != nil {
			t.Fatal("an Open that loaded the data key reports it as created")
		}
	})
}
