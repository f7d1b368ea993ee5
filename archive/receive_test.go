package archive_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

func TestAcceptChain(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 3, bundletest.Options{})
	e.approve(c)
	for i, b := range c.Bundles {
		reply := e.accept(c, b)
		r, _ := archivesig.VerifyReceipt(reply, e.a.KeyID(), e.a.PublicKey())
		if r.LogIndex != uint64(i) {
			t.Fatalf("bundle %d at log index %d", i, r.LogIndex)
		}
		if want := c.States[i].Checkpoint; string(merkle.Checkpoint{Origin: merkle.Origin(c.DeviceName()), Size: r.CheckpointSize, Root: mustHash(t, r.CheckpointRoot)}.Marshal()) != want {
			t.Fatalf("receipt checkpoint %d %s, bundle sealed %q", r.CheckpointSize, r.CheckpointRoot, want)
		}
		if !r.RetentionTime().After(time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Fatalf("retention until %s", r.RetentionUntil)
		}
		ok, err := e.a.Objects().Has(t.Context(), sha256Sum(raw(t, b)))
		if err != nil || !ok {
			t.Fatalf("bundle %d not in the object store: %v", i, err)
		}
	}
	if n := e.a.LogSize(); n != 3 {
		t.Fatalf("log size %d, want 3", n)
	}
	signed, err := e.a.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifyNote(e.a, string(signed)); err != nil {
		t.Fatalf("checkpoint note: %v", err)
	}
}

func mustHash(t *testing.T, s string) [32]byte {
	t.Helper()
	h, err := wire.ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestDuplicateStoredOnce: a bundle delivered again after the next one
// is answered with a receipt of its log entry (repeated) and stored and
// logged once.
func TestDuplicateStoredOnce(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 2, bundletest.Options{})
	e.approve(c)
	first := e.accept(c, c.Bundles[0])
	e.accept(c, c.Bundles[1])
	again := e.accept(c, c.Bundles[0]) // a redelivery, after the next one
	e.repeated(first, again, raw(t, c.Bundles[0]), c.DeviceName())
	if n := e.a.LogSize(); n != 2 {
		t.Fatalf("log size %d after a duplicate, want 2", n)
	}
	obj := filepath.Join(e.dir, "objects", "sha256")
	var files int
	filepath.WalkDir(obj, func(_ string, d os.DirEntry, _ error) error {
		if d != nil && !d.IsDir() {
			files++
		}
		return nil
	})
	if files != 2 {
		t.Fatalf("%d objects stored for 2 bundles", files)
	}
}

// TestTamperTable sends every case of the verifier's tamper table: each is
// refused naming its check, quarantined and alerted, and the good chain is
// accepted afterwards.
func TestTamperTable(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 3, bundletest.Options{Records: 9})
	e.approve(c)
	first := e.accept(c, c.Bundles[0])
	for _, cs := range bundletest.Cases {
		t.Run(cs.Kind, func(t *testing.T) {
			e.t = t
			defer func() { e.t = nil }()
			if cs.Prev != 0 || cs.Target > 1 {
				t.Fatalf("case %s needs state %d, the archive holds state 0", cs.Kind, cs.Prev)
			}
			b, _, err := c.Tamper(t.Context(), cs)
			if errors.Is(err, bundletest.ErrUnsupported) {
				t.Fatalf("the software TPM must produce every tamper case: %v", err)
			}
			if err != nil {
				t.Fatal(err)
			}
			data := raw(t, b)
			if cs.Kind == "bundle.replayed" { // the same bytes again: a redelivery
				reply, err := e.a.Receive(t.Context(), c.Opts.Site, c.Opts.Device, data)
				if err != nil || !bytes.Equal(reply, first) {
					t.Fatalf("replayed bundle: %v, same receipt %v", err, bytes.Equal(reply, first))
				}
				return
			}
			rj := e.refused(c.Opts.Site, c.Opts.Device, data, cs.Want)
			if q, err := os.ReadFile(rj.Quarantine); err != nil || !bytes.Equal(q, data) {
				t.Fatalf("quarantined bundle: %v", err)
			}
			reason, err := os.ReadFile(strings.TrimSuffix(rj.Quarantine, ".tar") + ".json")
			if err != nil || !bytes.Contains(reason, []byte(cs.Want)) {
				t.Fatalf("quarantine reason: %v\n%s", err, reason)
			}
			t.Logf("checks: %v", rj.Rejection.Checks)
		})
	}
	e.t = t
	e.accept(c, c.Bundles[1])
	e.accept(c, c.Bundles[2])
	if n := e.a.LogSize(); n != 3 {
		t.Fatalf("log size %d", n)
	}
}

func TestFork(t *testing.T) {
	e := newEnv(t)
	dev, err := bundletest.NewSoft()
	if err != nil {
		t.Fatal(err)
	}
	a, err := bundletest.NewChain(t.Context(), dev, 2, bundletest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The same device seals another history of the same sizes.
	b, err := bundletest.NewChain(t.Context(), dev, 2, bundletest.Options{Start: time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	e.approve(a)
	e.accept(a, a.Bundles[0])
	e.accept(a, a.Bundles[1])
	for i := range 2 {
		rj := e.refused(a.Opts.Site, a.Opts.Device, raw(t, b.Bundles[i]), archive.CheckFork)
		if !rj.Rejection.Alarm {
			t.Fatal("fork without alarm")
		}
		al, _ := e.alertFor(rj.Rejection.BundleDigest)
		if al.Severity != archive.SeverityAlarm || al.Kind != archive.KindFork {
			t.Fatalf("fork alert %+v", al)
		}
	}
	next, err := a.Next(t.Context(), 4)
	if err != nil {
		t.Fatal(err)
	}
	e.accept(a, next) // the archive still serves the device's real history
}

func TestSequence(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 3, bundletest.Options{})
	e.approve(c)
	site, dev := c.Opts.Site, c.Opts.Device

	t.Run("gap", func(t *testing.T) {
		e.t = t
		e.refused(site, dev, raw(t, c.Bundles[1]), archive.CheckGap) // first bundle skipped
		e.accept(c, c.Bundles[0])
		e.refused(site, dev, raw(t, c.Bundles[2]), archive.CheckGap) // second skipped
	})
	e.t = t
	e.accept(c, c.Bundles[1])
	t.Run("replay", func(t *testing.T) {
		e.t = t
		// Bundle 0 again, re-signed by the device: new bytes, old checkpoint.
		old := bundletest.Clone(c.Bundles[0])
		_, st, err := old.Statement()
		if err != nil {
			t.Fatal(err)
		}
		if err := bundle.SignStatement(t.Context(), old, st, c.Dev); err != nil {
			t.Fatal(err)
		}
		e.refused(site, dev, raw(t, old), archive.CheckReplay)
	})
	t.Run("counter rolled back", func(t *testing.T) {
		e.t = t
		b, _, err := c.Tamper(t.Context(), bundletest.Case{Kind: "counter.lower", Target: 2, Prev: 1})
		if err != nil {
			t.Fatal(err)
		}
		rj := e.refused(site, dev, raw(t, b), archive.CheckCounter)
		if !rj.Has(verify.CheckCounterRising) {
			t.Fatalf("checks %v", rj.Rejection.Checks)
		}
	})
	e.t = t
	e.accept(c, c.Bundles[2])
}

func TestDevices(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 2, bundletest.Options{})
	other := newChain(t, 1, bundletest.Options{Site: "site1", Device: "dev2"})
	ctx := t.Context()
	data := raw(t, c.Bundles[0])

	e.refused(c.Opts.Site, c.Opts.Device, data, archive.CheckEnrolled)
	req, err := archive.ParseEnrollRequest(mustMarshal(t, c.Trust))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Devices().Enroll(ctx, req); err != nil {
		t.Fatal(err)
	}
	e.refused(c.Opts.Site, c.Opts.Device, data, archive.CheckApproved)
	if _, err := e.a.Devices().Approve(ctx, c.DeviceName(), "sha256:"+strings.Repeat("0", 64), "op"); err == nil {
		t.Fatal("approved another key than the pending one")
	}
	var de *archive.DeviceError
	if _, err := e.a.Devices().Approve(ctx, "site9/nope", "", "op"); !errors.As(err, &de) || !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("approve of an unknown device: %v", err)
	}
	if _, err := e.a.Devices().Approve(ctx, c.DeviceName(), c.Trust.KeyID, "op"); err != nil {
		t.Fatal(err)
	}
	e.accept(c, c.Bundles[0])

	// Device publishing as another: dev1's bundle on dev2's topic, with
	// dev2 approved too.
	e.approve(other)
	rj := e.refused("site1", "dev2", raw(t, c.Bundles[1]), archive.CheckTopic)
	if !rj.Has(verify.CheckKeysTrusted) {
		t.Fatalf("signer not refused by key: %v", rj.Rejection.Checks)
	}
	e.refused("site1", "dev2", data, archive.CheckTopic) // an accepted bundle re-sent as another
	e.accept(other, other.Bundles[0])

	if _, err := e.a.Devices().Revoke(ctx, c.DeviceName(), "stolen"); err != nil {
		t.Fatal(err)
	}
	e.refused(c.Opts.Site, c.Opts.Device, raw(t, c.Bundles[1]), archive.CheckRevoked)
	if _, err := e.a.Devices().Enroll(ctx, req); err == nil {
		t.Fatal("a revoked key enrolled again")
	}
	list, err := e.a.Devices().List()
	if err != nil || len(list) != 2 || list[0].Status != archive.StatusRevoked || list[1].Status != archive.StatusApproved {
		t.Fatalf("list of %d, %v", len(list), err)
	}
	// The registry is durable and shared through its file.
	d2, err := archive.OpenDevices(filepath.Join(e.dir, "devices.json"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d2.Trusted(c.DeviceName()); !errors.As(err, &de) || de.Status != archive.StatusRevoked {
		t.Fatalf("reloaded registry: %v", err)
	}
}

func mustMarshal(t *testing.T, tr *trustfile.Trust) []byte {
	t.Helper()
	b, err := tr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReopen(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 3, bundletest.Options{})
	e.approve(c)
	r0 := e.accept(c, c.Bundles[0])
	r1 := e.accept(c, c.Bundles[1])
	e.reopen()
	if n := e.a.LogSize(); n != 2 {
		t.Fatalf("log size %d after reopen", n)
	}
	if got := e.accept(c, c.Bundles[1]); !bytes.Equal(got, r1) {
		t.Fatal("receipt changed across a restart")
	}
	e.repeated(r0, e.accept(c, c.Bundles[0]), raw(t, c.Bundles[0]), c.DeviceName())
	e.refused(c.Opts.Site, c.Opts.Device, []byte("not a bundle"), archive.CheckRead)
	// The device's last state survived: a rolled-back counter is caught.
	b, _, err := c.Tamper(t.Context(), bundletest.Case{Kind: "counter.lower", Target: 2, Prev: 1})
	if err != nil {
		t.Fatal(err)
	}
	e.refused(c.Opts.Site, c.Opts.Device, raw(t, b), archive.CheckCounter)
	e.accept(c, c.Bundles[2])
	e.reopen()
	if n := e.a.LogSize(); n != 3 {
		t.Fatalf("log size %d", n)
	}
}
