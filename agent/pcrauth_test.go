package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/simulator"
)

// logBuf collects log lines for assertions.
type logBuf struct{ bytes.Buffer }

func (l *logBuf) logger() *slog.Logger { return slog.New(slog.NewTextHandler(&l.Buffer, nil)) }

// openAuthRig opens a core over a simulator TPM whose keys are bound to
// op's PCR policy, with the initial authorization of the values at
// enrollment stored and installed the way the daemon does at start.
func openAuthRig(t *testing.T, op *ecdsa.PrivateKey, log *slog.Logger) (*rig, string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	state := filepath.Join(dir, "tpm")
	r := &rig{t: t, dir: dir, spec: "simulator:" + filepath.Join(dir, "sim")}
	var err error
	r.tpm, err = tpm.Open(ctx, r.spec, tpm.Options{StateDir: state, Simulator: simulator.Open, Create: true,
		PCRPolicy: &tpm.PCRPolicy{Key: &op.PublicKey, Ref: trustfile.PCRPolicyRef("site-a/dev-1")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.close)
	storeAuth(t, r.tpm, op, state, "site-a/dev-1")
	if _, err := LoadPCRAuthorization(ctx, state, "site-a/dev-1", r.tpm); err != nil {
		t.Fatal(err)
	}
	key, err := r.tpm.DataKey(ctx)
	if err != nil {
		t.Fatalf("data key under the initial authorization: %v", err)
	}
	if r.j, err = store.Open(ctx, store.Options{Dir: filepath.Join(dir, "journal"), EncryptionKey: key}); err != nil {
		t.Fatal(err)
	}
	if r.core, err = Open(ctx, Options{Site: "site-a", Device: "dev-1", PCRAuthDir: state, Logger: log}, r.j, r.tpm); err != nil {
		t.Fatal(err)
	}
	return r, state
}

// signCurrent signs the TPM's current PCR values for device.
func signCurrent(t *testing.T, tp *tpm.TPM, op *ecdsa.PrivateKey, device string) []byte {
	t.Helper()
	cur, err := tp.ReadPCRs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a, err := trustfile.SignPCRAuthorization(op, device, tp.Identity().PCRs, cur, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := a.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func storeAuth(t *testing.T, tp *tpm.TPM, op *ecdsa.PrivateKey, state, device string) {
	t.Helper()
	if _, err := StorePCRAuthorization(state, device, signCurrent(t, tp, op, device)); err != nil {
		t.Fatalf("store authorization: %v", err)
	}
}

func countType(t *testing.T, b *bundle.Bundle, typ string) (n int, firstSeq uint64) {
	t.Helper()
	raw, err := b.Records()
	if err != nil {
		t.Fatal(err)
	}
	for _, rb := range raw {
		r, err := custody.ParseRecord(rb)
		if err != nil {
			t.Fatal(err)
		}
		if r.Type == typ {
			if n == 0 {
				firstSeq = r.Seq
			}
			n++
		}
	}
	return n, firstSeq
}

// TestPCRAuthorizationResumesSealing: the PCRs move while the core runs;
// seals fail but exports go on; the operator's authorization of the new
// values, stored in the state directory, is journaled before the seal that
// uses it, and the chain verifies from the trust through the new values.
func TestPCRAuthorizationResumesSealing(t *testing.T) {
	op, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var logs logBuf
	r, state := openAuthRig(t, op, logs.logger())
	ctx := context.Background()
	tr := r.trust()
	if tr.Version != trustfile.TrustVersionPCRPolicy {
		t.Fatalf("trust version %d", tr.Version)
	}
	r.export(3, "before")
	_, b1 := r.seal()
	if n, _ := countType(t, b1, custody.TypePCRsAuthorized); n != 1 {
		t.Fatalf("first bundle has %d authorization records, want the initial one", n)
	}
	s1 := mustVerify(t, b1, tr, nil)

	// A firmware update extends PCR 0.
	if err := r.tpm.ExtendPCR(ctx, 0, []byte("bios 2.1")); err != nil {
		t.Fatal(err)
	}
	r.export(2, "during")
	_, err := r.core.Seal(ctx)
	var mm *tpm.PCRMismatchError
	if !errors.As(err, &mm) || !mm.Authorized {
		t.Fatalf("seal after the update: %v, want *tpm.PCRMismatchError", err)
	}
	r.export(2, "still-journaling")
	if st, err := r.core.Status(ctx); err != nil || st.TPM.State != TPMPCRMismatch || len(st.TPM.Changed) != 1 {
		t.Fatalf("status after the update: %+v %v", st, err)
	}

	// A statement for another device in the state dir is refused loudly
	// and not journaled.
	other := signCurrent(t, r.tpm, op, "site-a/dev-2")
	if _, err := StorePCRAuthorization(state, "site-a/dev-1", other); err == nil {
		t.Fatal("stored an authorization for another device")
	}
	if err := os.WriteFile(filepath.Join(state, PCRAuthFile), other, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.core.Seal(ctx); err == nil {
		t.Fatal("sealed under an authorization for another device")
	}
	if !strings.Contains(logs.String(), "PCR AUTHORIZATION NOT APPLIED") {
		t.Fatalf("refusal not logged:\n%s", logs.String())
	}
	var alarms []Alarm
	r.core.SetAlarmSink(func(a Alarm) { alarms = append(alarms, a) })
	if len(alarms) != 1 || alarms[0].Kind != AlarmPCRAuthorization || !strings.Contains(alarms[0].Detail, "dev-2") {
		t.Fatalf("alarms %+v", alarms)
	}

	storeAuth(t, r.tpm, op, state, "site-a/dev-1")
	r.export(1, "after")
	_, b2 := r.seal()
	n, seq := countType(t, b2, custody.TypePCRsAuthorized)
	if n != 1 {
		t.Fatalf("%d authorization records in the bundle after the update, want 1", n)
	}
	raws, _ := b2.Records()
	first, _ := custody.ParseRecord(raws[0])
	if seq < first.Seq {
		t.Fatal("authorization record outside the bundle")
	}
	s2 := mustVerify(t, b2, tr, s1)
	if st, err := r.core.Status(ctx); err != nil || st.TPM.State != TPMOK {
		t.Fatalf("status after the authorization: %+v %v", st.TPM, err)
	}
	if s2.PCRs == nil || s2.PCRs.Record == "" {
		t.Fatalf("state after the authorization: %+v", s2.PCRs)
	}
	// Every export is in the chain: 3 + 2 + 2 + 1.
	exports := 0
	for _, b := range []*bundle.Bundle{b1, b2} {
		k, _ := countType(t, b, custody.TypeExport)
		exports += k
	}
	if exports != 8 {
		t.Fatalf("%d exports sealed, want 8", exports)
	}
	// Journaled once: the next seal does not repeat it.
	r.export(1, "later")
	_, b3 := r.seal()
	if k, _ := countType(t, b3, custody.TypePCRsAuthorized); k != 0 {
		t.Fatal("authorization journaled again")
	}
	s3 := mustVerify(t, b3, tr, s2)

	// An authorization signed before the one in force (an old statement
	// replayed) is refused by the command and, dropped in, by the core.
	cur, _ := r.tpm.ReadPCRs(ctx)
	a, err := trustfile.SignPCRAuthorization(op, "site-a/dev-1", r.tpm.Identity().PCRs, cur, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	older, _ := a.Marshal()
	if _, err := StorePCRAuthorization(state, "site-a/dev-1", older); err == nil || !strings.Contains(err.Error(), "before the authorization in force") {
		t.Fatalf("stored an older authorization: %v", err)
	}
	if err := os.WriteFile(filepath.Join(state, PCRAuthFile), older, 0o600); err != nil {
		t.Fatal(err)
	}
	r.export(1, "after-replay")
	_, b4 := r.seal()
	if k, _ := countType(t, b4, custody.TypePCRsAuthorized); k != 0 {
		t.Fatal("an older authorization was journaled")
	}
	mustVerify(t, b4, tr, s3)
	// At a start the older file is refused too, and the statement last
	// journaled is installed instead.
	got, err := LoadPCRAuthorization(ctx, state, "site-a/dev-1", r.tpm)
	var pe *PCRAuthError
	if !errors.As(err, &pe) || got == nil || got.Time == a.Time || got.Time != s3.PCRs.Time {
		t.Fatalf("start with an older stored authorization: %v, installed %+v", err, got)
	}
	if _, err := r.tpm.DataKey(ctx); err != nil {
		t.Fatalf("data key under the journaled authorization: %v", err)
	}
}

// TestPCRAuthorizationFileRefused: symlinks, oversize files and
// statements by another key are refused by name.
func TestPCRAuthorizationFileRefused(t *testing.T) {
	op, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	r, state := openAuthRig(t, op, nil)
	good, err := os.ReadFile(filepath.Join(state, PCRAuthFile))
	if err != nil {
		t.Fatal(err)
	}
	var pe *PCRAuthError
	elsewhere := filepath.Join(t.TempDir(), "auth.json")
	_ = os.WriteFile(elsewhere, good, 0o600)
	_ = os.Remove(filepath.Join(state, PCRAuthFile))
	if err := os.Symlink(elsewhere, filepath.Join(state, PCRAuthFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPCRAuthorization(context.Background(), state, "site-a/dev-1", r.tpm); !errors.As(err, &pe) || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("symlinked authorization: %v", err)
	}
	_ = os.Remove(filepath.Join(state, PCRAuthFile))
	_ = os.WriteFile(filepath.Join(state, PCRAuthFile), make([]byte, trustfile.MaxPCRAuthSize+1), 0o600)
	if _, err := LoadPCRAuthorization(context.Background(), state, "site-a/dev-1", r.tpm); !errors.As(err, &pe) || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("oversize authorization: %v", err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := StorePCRAuthorization(state, "site-a/dev-1", signCurrent(t, r.tpm, other, "site-a/dev-1")); err == nil || !strings.Contains(err.Error(), "policyKeyId") {
		t.Fatalf("authorization by another key: %v", err)
	}
	if _, err := StorePCRAuthorization(state, "site-a/dev-1", make([]byte, trustfile.MaxPCRAuthSize+1)); !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("oversize statement: %v", err)
	}
}

// TestPCRAuthorizationShippedAhead: an authorization of the values a
// firmware update will produce, shipped before it, changes nothing until
// the PCRs hold them (seals go on, a restart still unseals the data key
// under the authorization in force), then it is journaled and applied
// with no operator step after the update.
func TestPCRAuthorizationShippedAhead(t *testing.T) {
	op, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	r, state := openAuthRig(t, op, nil)
	ctx := context.Background()
	tr := r.trust()
	r.export(2, "before")
	_, b1 := r.seal()
	s1 := mustVerify(t, b1, tr, nil)

	// The values after the update: PCR 0 extended with SHA-256(image).
	cur, _ := r.tpm.ReadPCRs(ctx)
	img := sha256.Sum256([]byte("bios 2.2"))
	next := sha256.Sum256(append(append([]byte{}, cur[0]...), img[:]...))
	future := map[int][]byte{}
	for p, v := range cur {
		future[p] = v
	}
	future[0] = next[:]
	a, err := trustfile.SignPCRAuthorization(op, "site-a/dev-1", r.tpm.Identity().PCRs, future, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := a.Marshal()
	if _, err := StorePCRAuthorization(state, "site-a/dev-1", raw); err != nil {
		t.Fatalf("store ahead of the update: %v", err)
	}
	r.export(2, "shipped")
	_, b2 := r.seal()
	if k, _ := countType(t, b2, custody.TypePCRsAuthorized); k != 0 {
		t.Fatal("authorization journaled before the PCRs hold its values")
	}
	s2 := mustVerify(t, b2, tr, s1)
	// A restart before the update installs the one in force.
	got, err := LoadPCRAuthorization(ctx, state, "site-a/dev-1", r.tpm)
	if err != nil || got == nil || got.ApprovedPolicy == a.ApprovedPolicy {
		t.Fatalf("start before the update: %v, installed %+v", err, got)
	}
	if _, err := r.tpm.DataKey(ctx); err != nil {
		t.Fatalf("data key before the update: %v", err)
	}

	if err := r.tpm.ExtendPCR(ctx, 0, []byte("bios 2.2")); err != nil {
		t.Fatal(err)
	}
	r.export(1, "after")
	_, b3 := r.seal()
	if k, _ := countType(t, b3, custody.TypePCRsAuthorized); k != 1 {
		t.Fatalf("%d authorization records after the update, want 1", k)
	}
	mustVerify(t, b3, tr, s2)
	// And a restart after the update installs the new one.
	if got, err := LoadPCRAuthorization(ctx, state, "site-a/dev-1", r.tpm); err != nil || got.ApprovedPolicy != a.ApprovedPolicy {
		t.Fatalf("start after the update: %v", err)
	}
	if _, err := r.tpm.DataKey(ctx); err != nil {
		t.Fatalf("data key after the update: %v", err)
	}
}
