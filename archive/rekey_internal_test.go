package archive

import (
	"bytes"
	"crypto/ed25519"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// A crash after a rekey statement was logged, before its index event
// and the registry were written: Open completes both from the log.
func TestRekeyRecoveredFromLog(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	open := func() *Archive {
		t.Helper()
		a, err := Open(ctx, Options{Dir: dir, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	enroll := func(a *Archive, c *bundletest.Chain) *EnrollRequest { return enrollChain(t, a, c) }
	old, err := bundletest.NewChain(ctx, nil, 1, bundletest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := bundletest.NewChain(ctx, nil, 1, bundletest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := open()
	enroll(a, old)
	if _, err := a.devices.Approve(ctx, old.DeviceName(), old.Trust.KeyID, "op"); err != nil {
		t.Fatal(err)
	}
	raw, err := old.Bundles[0].Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Receive(ctx, old.Opts.Site, old.Opts.Device, raw); err != nil {
		t.Fatal(err)
	}
	req := enroll(a, fresh)
	// What Rekey logs first, and then the crash.
	st := &EpochStatement{V: StatementVersion, Type: StatementRekey, Device: old.DeviceName(), Epoch: 2, KeyID: fresh.Trust.KeyID,
		Trust: req.Trust, Closed: ClosedEpoch{Epoch: 1, KeyID: old.Trust.KeyID}, By: "op", Time: wire.FormatTime(a.now())}
	rec, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.log.l.Append(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a = open()
	defer a.Close()
	if len(a.rekeys) != 1 {
		t.Fatalf("rekey index events %d, want 1", len(a.rekeys))
	}
	_, info, err := a.devices.Trusted(old.DeviceName())
	if err != nil || info.CurrentEpoch() != 2 || info.KeyID != fresh.Trust.KeyID || len(info.Epochs) != 1 || info.Epochs[0].StatementIndex != 1 {
		t.Fatalf("registry after recovery: %+v %v", info, err)
	}
	raw, err = fresh.Bundles[0].Bytes()
	if err != nil {
		t.Fatal(err)
	}
	reply, err := a.Receive(ctx, fresh.Opts.Site, fresh.Opts.Device, raw)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := archivesig.VerifyReceipt(reply, a.KeyID(), a.PublicKey()); err != nil || r.Epoch != 2 || r.LogIndex != 2 {
		t.Fatalf("receipt after recovery: %+v %v", r, err)
	}
}
