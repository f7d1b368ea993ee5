package archive_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// next makes the chain's next bundle.
func next(t *testing.T, c *bundletest.Chain) []byte {
	t.Helper()
	b, err := c.Next(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	return raw(t, b)
}

// trustOf is the chain's DEVICE.json.
func trustOf(t *testing.T, c *bundletest.Chain) []byte {
	t.Helper()
	b, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// acceptRaw sends data as c's device and requires a receipt.
func (e *env) acceptRaw(c *bundletest.Chain, data []byte) {
	e.t.Helper()
	reply, err := e.a.Receive(e.t.Context(), c.Opts.Site, c.Opts.Device, data)
	if err != nil {
		e.t.Fatalf("bundle refused: %v", err)
	}
	e.checkReceipt(reply, data, c.DeviceName())
}

func readDevicesFile(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "devices.json"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRegistryFromLog: with operator keys the registry is the log's. A
// deleted devices.json is written anew from the log at Open (approved
// key, DEVICE.json, key revocations), a hand-edited one is written back,
// at Open and while the archive runs, and a device added by hand is not
// trusted.
func TestRegistryFromLog(t *testing.T) {
	e := signedEnv(t)
	c := newChain(t, 0, bundletest.Options{Site: "site1", Device: "dev1"})
	e.approve(c)
	e.acceptRaw(c, next(t, c))
	leaked := "sha256:" + strings.Repeat("ab", 32)
	if _, err := e.deviceStatement(archive.StatementDeviceRevokeKey, "site1/dev1", leaked, "leaked", operatorKey); err != nil {
		t.Fatal(err)
	}
	want := e.device("site1/dev1")
	if want.Status != archive.StatusApproved || want.KeyID != c.Trust.KeyID || len(want.KeyRevocations) != 1 {
		t.Fatalf("after the statements: %+v", want)
	}

	// Deleted: rebuilt from the log.
	if err := e.a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(e.dir, "devices.json")); err != nil {
		t.Fatal(err)
	}
	e.open()
	got := e.device("site1/dev1")
	if got.Status != archive.StatusApproved || got.KeyID != c.Trust.KeyID || archive.TrustDigest(got.Trust) != archive.TrustDigest(want.Trust) ||
		len(got.KeyRevocations) != 1 || got.KeyRevocations[0].KeyID != leaked || got.ApprovedBy != "test" {
		t.Fatalf("rebuilt from the log: %+v", got)
	}
	if !strings.Contains(readDevicesFile(t, e.dir), c.Trust.KeyID) {
		t.Fatal("devices.json not written anew")
	}
	e.acceptRaw(c, next(t, c))

	// Edited by hand, archive stopped: written back at Open.
	e.a.Close()
	editDevices(t, e.dir, `"status": "approved"`, `"status": "revoked"`)
	editDevices(t, e.dir, `"approvedBy": "test"`, `"approvedBy": "mallory"`)
	e.open()
	if f := readDevicesFile(t, e.dir); !strings.Contains(f, `"status": "approved"`) || strings.Contains(f, "mallory") {
		t.Fatalf("devices.json not written back from the log:\n%s", f)
	}
	e.acceptRaw(c, next(t, c))

	// Edited by hand while it runs: the edit shows nowhere, and the
	// file is written back before the next bundle.
	editDevices(t, e.dir, `"status": "approved"`, `"status": "revoked"`)
	if d := e.device("site1/dev1"); d.Status != archive.StatusApproved {
		t.Fatalf("a hand edit shows in the registry: %s", d.Status)
	}
	e.acceptRaw(c, next(t, c))
	if f := readDevicesFile(t, e.dir); !strings.Contains(f, `"status": "approved"`) {
		t.Fatalf("devices.json not written back while running:\n%s", f)
	}

	// Made unreadable while it runs: kept aside, written anew.
	if err := os.WriteFile(filepath.Join(e.dir, "devices.json"), []byte(`{"version":1,"devices":[{`), 0o644); err != nil {
		t.Fatal(err)
	}
	e.acceptRaw(c, next(t, c))
	if f := readDevicesFile(t, e.dir); !strings.Contains(f, `"status": "approved"`) {
		t.Fatalf("an unreadable devices.json not written anew:\n%s", f)
	}
	if aside, _ := filepath.Glob(filepath.Join(e.dir, "devices.json.unreadable-*")); len(aside) != 1 {
		t.Fatalf("unreadable devices.json kept aside as %v", aside)
	}

	// A device added by hand (approved, with trust): pending, refused.
	other := newChain(t, 0, bundletest.Options{Site: "site1", Device: "dev9"})
	e.enroll(other)
	if _, err := e.a.Devices().Approve(t.Context(), "site1/dev9", other.Trust.KeyID, "mallory"); err != nil {
		t.Fatal(err)
	}
	if d := e.device("site1/dev9"); d.Status != archive.StatusPending {
		t.Fatalf("a device approved without statement: %s", d.Status)
	}
	e.refused("site1", "dev9", next(t, other), archive.CheckApproved)
}

// TestRegistryWatcher: a running archive writes a deleted devices.json
// anew without a bundle asking.
func TestRegistryWatcher(t *testing.T) {
	e := signedEnv(t)
	c := newChain(t, 0, bundletest.Options{Site: "site1", Device: "dev1"})
	e.approve(c)
	p := filepath.Join(e.dir, "devices.json")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), `"status": "approved"`) {
			break
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) || time.Now().After(deadline) {
			t.Fatalf("devices.json not written anew: %v %s", err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRegistryLegacyApproval: an approval that names only the digest of
// the DEVICE.json (statements of an earlier version) takes the trust
// from devices.json while its digest matches; without it, the device is
// not trusted.
func TestRegistryLegacyApproval(t *testing.T) {
	e := signedEnv(t)
	c := newChain(t, 0, bundletest.Options{Site: "site1", Device: "dev1"})
	e.enroll(c)
	e.approveStatement("site1/dev1", c.Trust.KeyID, trustOf(t, c), nil, operatorKey)
	e.acceptRaw(c, next(t, c))
	e.reopen()
	if d := e.device("site1/dev1"); d.Status != archive.StatusApproved {
		t.Fatalf("legacy approval with its cached DEVICE.json: %s", d.Status)
	}
	e.acceptRaw(c, next(t, c))
	e.a.Close()
	if err := os.Remove(filepath.Join(e.dir, "devices.json")); err != nil {
		t.Fatal(err)
	}
	e.open()
	if d := e.device("site1/dev1"); d.Status != archive.StatusPending || d.KeyID != c.Trust.KeyID {
		t.Fatalf("legacy approval without its DEVICE.json: %+v", d)
	}
	e.refused("site1", "dev1", next(t, c), archive.CheckApproved)
}
