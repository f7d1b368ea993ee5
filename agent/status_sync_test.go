package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStatusKeyPCRAuthorization: /v1/status names the key in force (id,
// since) and says a PCR authorization is needed exactly while the PCRs do
// not hold the authorized values, with the in-process simulator and an
// operator's PCR-policy key.
func TestStatusKeyPCRAuthorization(t *testing.T) {
	op, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	r, state := openAuthRig(t, op, nil)
	ctx := context.Background()
	st, err := r.core.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Key.KeyID != r.tpm.Identity().KeyID || st.Key.Since.IsZero() || !st.Key.PCRPolicy || st.Key.PCRAuthorizationNeeded {
		t.Fatalf("key at start: %+v (TPM key %s)", st.Key, r.tpm.Identity().KeyID)
	}
	if err := r.tpm.ExtendPCR(ctx, 0, []byte("bios 2.1")); err != nil {
		t.Fatal(err)
	}
	if st, err = r.core.Status(ctx); err != nil || !st.Key.PCRAuthorizationNeeded {
		t.Fatalf("key after a firmware update: %+v %v, want pcrAuthorizationNeeded", st.Key, err)
	}
	storeAuth(t, r.tpm, op, state, "site-a/dev-1")
	r.export(1, "after")
	r.seal() // installs the new authorization
	if st, err = r.core.Status(ctx); err != nil || st.Key.PCRAuthorizationNeeded {
		t.Fatalf("key once authorized: %+v %v", st.Key, err)
	}
}

// TestNoteRefusalLoggedOnce: the archive's refusal of a bundle is logged
// once however often its retries are refused (Status counts them), a
// refusal for another reason or bundle is logged once too, also when
// several held bundles are refused in turn, and the same refusal is logged
// again after a delivery.
func TestNoteRefusalLoggedOnce(t *testing.T) {
	op, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var logs logBuf
	r, _ := openAuthRig(t, op, logs.logger())
	ctx := context.Background()
	count := func() int { return strings.Count(logs.String(), "the archive REFUSED a bundle") }
	for range 5 {
		r.core.NoteRefusal("00000000000000000004", "sha256:aa", []string{"archive.approved"}, "device is not approved")
	}
	if n := count(); n != 1 {
		t.Fatalf("5 refusals logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "device is not approved (failed checks: archive.approved)") {
		t.Errorf("the log line does not say why:\n%s", logs.String())
	}
	st, err := r.core.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rf := st.LastRefusal; rf == nil || rf.Count != 5 || rf.Bundle != "00000000000000000004" || rf.Message != "device is not approved" ||
		len(rf.Checks) != 1 || rf.Checks[0] != "archive.approved" || rf.Digest != "sha256:aa" || rf.Time.IsZero() {
		t.Fatalf("last refusal: %+v", st.LastRefusal)
	}
	if st.Broker != nil || st.LastDelivery != nil {
		t.Errorf("broker %+v, delivery %+v without sync", st.Broker, st.LastDelivery)
	}
	r.core.NoteRefusal("00000000000000000004", "sha256:aa", []string{"archive.clock"}, "clock went back")
	r.core.NoteRefusal("00000000000000000009", "sha256:bb", []string{"archive.clock"}, "clock went back")
	if n := count(); n != 3 {
		t.Fatalf("refusals for another reason and another bundle logged %d times in all, want 3", n)
	}
	// Two held bundles refused in turn at each retry: each logged once.
	for range 3 {
		r.core.NoteRefusal("00000000000000000004", "sha256:aa", []string{"archive.clock"}, "clock went back")
		r.core.NoteRefusal("00000000000000000009", "sha256:bb", []string{"archive.clock"}, "clock went back")
	}
	if n := count(); n != 3 {
		t.Fatalf("two bundles refused in turn logged %d times in all, want 3", n)
	}
	r.core.noteDelivery(DeliveryStatus{Bundle: "00000000000000000002", Digest: "sha256:cc", LogIndex: 7})
	r.core.NoteRefusal("00000000000000000009", "sha256:bb", []string{"archive.clock"}, "clock went back")
	if n := count(); n != 4 {
		t.Fatalf("the same refusal after a delivery logged %d times in all, want 4", n)
	}
	r.core.SetBrokerLink(func() BrokerLink { return BrokerLink{Broker: "tcp://b:1883", Connected: true} })
	if st, err = r.core.Status(ctx); err != nil || st.Broker == nil || !st.Broker.Connected || st.LastDelivery == nil || st.LastDelivery.LogIndex != 7 || st.LastRefusal.Count != 1 {
		t.Fatalf("status: %+v %+v %+v %v", st.Broker, st.LastDelivery, st.LastRefusal, err)
	}
}

// TestLastRefusalSurvivesRestart: the archive's last refusal is kept in
// LastRefusalFile and shown by Status after a restart; its message is
// bounded; a file that is a symlink is refused at start.
func TestLastRefusalSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	spec := "simulator:" + filepath.Join(dir, "sim")
	stateDir := func(o *Options) { o.StateDir = dir }
	r := openRig(t, dir, spec, stateDir)
	long := strings.Repeat("m", 3*maxRefusalMessage)
	r.core.NoteRefusal("00000000000000000004", "sha256:aa", []string{"archive.approved"}, "device is not approved")
	r.core.NoteRefusal("00000000000000000004", "sha256:aa", []string{"archive.approved"}, long)
	r.close()

	r = openRig(t, dir, spec, stateDir)
	st, err := r.core.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rf := st.LastRefusal; rf == nil || rf.Bundle != "00000000000000000004" || rf.Digest != "sha256:aa" || len(rf.Message) != maxRefusalMessage ||
		len(rf.Checks) != 1 || rf.Time.IsZero() || rf.Count != 1 {
		t.Fatalf("last refusal after a restart: %+v", st.LastRefusal)
	}
	r.close()

	p := filepath.Join(dir, LastRefusalFile)
	os.Rename(p, p+".real")
	if err := os.Symlink(p+".real", p); err != nil {
		t.Fatal(err)
	}
	if _, err := tryOpenRig(t, dir, spec, stateDir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("a symlinked %s: %v", LastRefusalFile, err)
	}
}
