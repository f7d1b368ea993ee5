package archive_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// enroll records the chain's trust as a pending enrollment.
func (e *env) enroll(c *bundletest.Chain) archive.DeviceInfo {
	e.t.Helper()
	tb, err := c.Trust.Marshal()
	if err != nil {
		e.t.Fatal(err)
	}
	req, err := archive.ParseEnrollRequest(tb)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := e.a.Devices().Enroll(e.t.Context(), req)
	if err != nil {
		e.t.Fatal(err)
	}
	return info
}

func (e *env) device(name string) archive.DeviceInfo {
	e.t.Helper()
	list, err := e.a.Devices().List()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, d := range list {
		if d.Name == name {
			return d
		}
	}
	e.t.Fatalf("device %s not in the registry", name)
	return archive.DeviceInfo{}
}

func receiptOf(t *testing.T, e *env, reply []byte) *archivesig.Receipt {
	t.Helper()
	r, err := archivesig.VerifyReceipt(reply, e.a.KeyID(), e.a.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// rekeyed is an archive whose device site1/dev1 sealed two bundles under
// its first TPM (old), then had its board replaced: a new TPM, a new
// journal (fresh) enrolled and waiting.
type rekeyed struct {
	e          *env
	old, fresh *bundletest.Chain
	receipts   [][]byte // of old's bundles
}

func newRekeyed(t *testing.T) *rekeyed {
	t.Helper()
	r := &rekeyed{e: newEnv(t), old: newChain(t, 2, bundletest.Options{}), fresh: newChain(t, 3, bundletest.Options{})}
	r.e.approve(r.old)
	for _, b := range r.old.Bundles {
		r.receipts = append(r.receipts, r.e.accept(r.old, b))
	}
	return r
}

// TestRekey: a device whose TPM and journal were replaced continues its
// history as epoch 2. Its new bundles are refused with the rekey command
// until an operator runs it; then they are accepted from size 0 with
// receipts naming epoch 2; the old epoch's bundles keep their receipts and
// still verify under its kept trust, and an old-key bundle sealed after
// the rekey is refused naming the checkpoint the epoch was closed at.
// Everything holds across a restart.
func TestRekey(t *testing.T) {
	r := newRekeyed(t)
	e, old, fresh := r.e, r.old, r.fresh
	ctx := t.Context()
	name := old.DeviceName()
	newKey := fresh.Trust.KeyID

	// Before its enrollment the new key is just not the approved one.
	rj := e.refused(fresh.Opts.Site, fresh.Opts.Device, raw(t, fresh.Bundles[0]), verify.CheckKeysTrusted)
	if !rj.Has(archive.CheckKey) || rj.Has(archive.CheckRekey) || rj.Has(archive.CheckFork) || rj.Rejection.Alarm ||
		!strings.Contains(rj.Error(), "edgeseal archive devices rekey "+name+" --key KEY") {
		t.Fatalf("unknown key: %v", rj)
	}
	// Enrolled: it waits beside the approved key, which stays.
	info := e.enroll(fresh)
	if info.Status != archive.StatusApproved || info.KeyID != old.Trust.KeyID || info.Pending == nil || info.CurrentEpoch() != 1 {
		t.Fatalf("after the new key's enrollment: %+v", info)
	}
	steps := strings.Join(archive.EnrollNextSteps(info, newKey), "\n")
	if !strings.Contains(steps, "edgeseal archive devices rekey "+name+" --key "+newKey) {
		t.Fatalf("next steps: %s", steps)
	}
	for _, b := range fresh.Bundles[:2] {
		rj = e.refused(fresh.Opts.Site, fresh.Opts.Device, raw(t, b), archive.CheckRekey)
		if rj.Has(archive.CheckFork) || rj.Has(archive.CheckGap) || rj.Rejection.Alarm ||
			!strings.Contains(rj.Error(), "edgeseal archive devices rekey "+name+" --key "+newKey) {
			t.Fatalf("the new key's bundle before the rekey: %v", rj)
		}
	}

	res, err := e.a.Rekey(ctx, name, newKey, "alice", "board replaced")
	if err != nil {
		t.Fatal(err)
	}
	st, last := res.Statement, old.States[1]
	lastCP, err := merkle.ParseCheckpoint([]byte(last.Checkpoint))
	if err != nil {
		t.Fatal(err)
	}
	want := archive.ClosedEpoch{Epoch: 1, KeyID: old.Trust.KeyID, Bundles: 2, CheckpointSize: lastCP.Size, CheckpointRoot: wire.FormatHash(lastCP.Root),
		Counter: last.Counter, Bundle: digestOf(raw(t, old.Bundles[1])), LogIndex: 1}
	if st.Closed != want || st.Epoch != 2 || st.KeyID != newKey || st.By != "alice" || st.Reason != "board replaced" || res.LogIndex != 2 {
		t.Fatalf("statement %+v at %d, want closed %+v", st, res.LogIndex, want)
	}
	// The statement is a leaf of the signed archive log.
	n, err := verifyNote(e.a, string(res.Checkpoint))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(n.Text, "\n")
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if len(lines) != 4 || lines[1] != "3" || err != nil || len(root) != 32 {
		t.Fatalf("archive checkpoint %q: %v", n.Text, err)
	}
	leaf, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	proof, err := e.a.InclusionProof(2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := merkle.VerifyInclusion(proof, 2, 3, [32]byte(root), merkle.LeafHash(leaf)); err != nil {
		t.Fatalf("statement not in the log: %v", err)
	}
	if again, err := archive.ParseEpochStatement(leaf); err != nil || again.Closed != want {
		t.Fatalf("statement does not parse back: %v", err)
	}

	check := func(when string) {
		t.Helper()
		info := e.device(name)
		if info.CurrentEpoch() != 2 || info.KeyID != newKey || info.Pending != nil || len(info.Epochs) != 1 || info.Status != archive.StatusApproved {
			t.Fatalf("%s: registry %+v", when, info)
		}
		ep := info.Epochs[0]
		if ep.Epoch != 1 || ep.KeyID != old.Trust.KeyID || ep.CheckpointSize != lastCP.Size || ep.Bundle != want.Bundle || ep.ClosedBy != "alice" ||
			ep.Reason != "board replaced" || ep.StatementIndex != 2 || ep.Counter != last.Counter || ep.Bundles != 2 {
			t.Fatalf("%s: closed epoch %+v", when, ep)
		}
		// The old epoch's bundles still verify under its kept trust, and
		// their receipts are answered again as they were.
		tr, err := trustfile.ParseTrust(ep.Trust)
		if err != nil {
			t.Fatal(err)
		}
		if rep := verify.Verify(old.Bundles[1], tr, old.States[0]); !rep.OK() {
			t.Fatalf("%s: old epoch bundle no longer verifies:\n%s", when, rep)
		}
		for i, b := range old.Bundles {
			e.repeated(r.receipts[i], e.accept(old, b), raw(t, b), old.DeviceName())
		}
	}
	check("after the rekey")

	// The new journal, from size 0, is epoch 2.
	for i, b := range fresh.Bundles[:2] {
		rc := receiptOf(t, e, e.accept(fresh, b))
		if rc.Epoch != 2 || rc.LogIndex != uint64(3+i) {
			t.Fatalf("new epoch bundle %d: receipt epoch %d log index %d", i, rc.Epoch, rc.LogIndex)
		}
	}
	// An old-key bundle sealed after the rekey (the old board came back).
	late, err := old.Next(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	rj = e.refused(old.Opts.Site, old.Opts.Device, raw(t, late), archive.CheckEpoch)
	if rj.Rejection.Alarm || !strings.Contains(rj.Error(), "epoch 1") || !strings.Contains(rj.Error(), "closed at checkpoint "+strconv.FormatUint(lastCP.Size, 10)) {
		t.Fatalf("old key after the rekey: %v", rj)
	}

	e.reopen()
	check("after a restart")
	rc := receiptOf(t, e, e.accept(fresh, fresh.Bundles[2]))
	if rc.Epoch != 2 || rc.LogIndex != 5 {
		t.Fatalf("after a restart: receipt epoch %d log index %d", rc.Epoch, rc.LogIndex)
	}
	e.refused(old.Opts.Site, old.Opts.Device, raw(t, late), archive.CheckEpoch)
	if _, err := e.a.Scrub(ctx); err != nil {
		t.Fatalf("scrub of a log with a statement: %v", err)
	}
	// A rekey is not repeated: the old key is closed, the new one current.
	for _, k := range []string{old.Trust.KeyID, newKey} {
		if _, err := e.a.Rekey(ctx, name, k, "alice", ""); !isDeviceError(err) {
			t.Fatalf("rekey to %s again: %v", k, err)
		}
	}
	if _, err := e.a.Devices().Enroll(ctx, mustEnrollReq(t, old)); !isDeviceError(err) || !strings.Contains(err.Error(), "closed by a rekey") {
		t.Fatalf("re-enrolling a closed epoch's key: %v", err)
	}
}

func isDeviceError(err error) bool {
	_, ok := errors.AsType[*archive.DeviceError](err)
	return ok
}

func mustEnrollReq(t *testing.T, c *bundletest.Chain) *archive.EnrollRequest {
	t.Helper()
	tb, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, err := archive.ParseEnrollRequest(tb)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestRekeyRefused: a rekey needs an approved device, its pending new
// key named exactly, an operator; each refusal says what was wrong and
// changes nothing.
func TestRekeyRefused(t *testing.T) {
	r := newRekeyed(t)
	e, ctx, name := r.e, t.Context(), r.old.DeviceName()
	newKey := r.fresh.Trust.KeyID
	try := func(dev, key, by, want string) {
		t.Helper()
		_, err := e.a.Rekey(ctx, dev, key, by, "")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("rekey %s --key %s by %q: %v, want %q", dev, key, by, err, want)
		}
	}
	try("site1/nobody", newKey, "alice", "not enrolled")
	try(name, newKey, "alice", "no pending enrollment")
	e.enroll(r.fresh)
	try(name, r.old.Trust.KeyID, "alice", "is the current epoch's key")
	try(name, "sha256:"+strings.Repeat("ab", 32), "alice", "(pending: "+newKey+")")
	try(name, newKey, "", "by is empty")
	try(name, newKey, strings.Repeat("x", 2000), "longer than 1024")
	if info := e.device(name); info.CurrentEpoch() != 1 || info.KeyID != r.old.Trust.KeyID || info.Pending == nil {
		t.Fatalf("a refused rekey changed the registry: %+v", info)
	}
	if n := e.a.LogSize(); n != 2 {
		t.Fatalf("a refused rekey wrote the log: size %d", n)
	}
	if _, err := e.a.Devices().Revoke(ctx, name, "stolen"); err != nil {
		t.Fatal(err)
	}
	try(name, newKey, "alice", "only an approved device")
	// A pending device has no history to continue.
	p := newChain(t, 0, bundletest.Options{Site: "site2", Device: "dev9"})
	e.enroll(p)
	try(p.DeviceName(), p.Trust.KeyID, "alice", "only an approved device")
}

// TestRekeyRegistryFromLog: the registry follows the archive log. A crash
// after the statement was logged and indexed but before devices.json was
// written (here: the old devices.json put back) is completed at Open.
func TestRekeyRegistryFromLog(t *testing.T) {
	r := newRekeyed(t)
	e := r.e
	e.enroll(r.fresh)
	path := filepath.Join(e.dir, "devices.json")
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Rekey(t.Context(), r.old.DeviceName(), r.fresh.Trust.KeyID, "alice", "disk lost"); err != nil {
		t.Fatal(err)
	}
	if err := e.a.Close(); err != nil {
		t.Fatal(err)
	}
	e.a = nil
	if err := os.WriteFile(path, before, 0o644); err != nil {
		t.Fatal(err)
	}
	e.open()
	info := e.device(r.old.DeviceName())
	if info.CurrentEpoch() != 2 || info.KeyID != r.fresh.Trust.KeyID || len(info.Epochs) != 1 || info.Epochs[0].Reason != "disk lost" {
		t.Fatalf("registry not brought up to date from the log: %+v", info)
	}
	rc := receiptOf(t, e, e.accept(r.fresh, r.fresh.Bundles[0]))
	if rc.Epoch != 2 {
		t.Fatalf("receipt epoch %d", rc.Epoch)
	}
}

// TestRegistryEpochsStrict: devices.json with inconsistent epochs is
// refused naming the device.
func TestRegistryEpochsStrict(t *testing.T) {
	r := newRekeyed(t)
	e := r.e
	e.enroll(r.fresh)
	if _, err := e.a.Rekey(t.Context(), r.old.DeviceName(), r.fresh.Trust.KeyID, "alice", ""); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(e.dir, "devices.json")
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, from, to, want string }{
		{"epoch behind", `"epoch": 2,`, `"epoch": 3,`, "at epoch 3 after 1 closed epochs"},
		{"closed epoch renumbered", `"epoch": 1,`, `"epoch": 4,`, "closed epoch 4 listed as number 1"},
		{"closed key is current", `"keyId": "` + r.old.Trust.KeyID + `",` + "\n" + `          "trust"`, `"keyId": "` + r.fresh.Trust.KeyID + `",` + "\n" + `          "trust"`, "trust does not match"},
	} {
		bad := bytes.Replace(good, []byte(c.from), []byte(c.to), 1)
		if bytes.Equal(bad, good) {
			t.Fatalf("%s: %q not in devices.json:\n%s", c.name, c.from, good)
		}
		if err := os.WriteFile(path, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := archive.OpenDevices(path, nil, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), r.old.DeviceName()) {
			t.Fatalf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// TestRekeyWaitsForBundlesInFlight: bundles of the old key admitted
// before the rekey are made durable first and the epoch is closed after
// the last of them; none is lost or refused.
func TestRekeyWaitsForBundlesInFlight(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	old := newChain(t, 6, bundletest.Options{})
	fresh := newChain(t, 1, bundletest.Options{})
	e.approve(old)
	e.enroll(fresh)
	var tickets []*archive.Ticket
	for _, b := range old.Bundles {
		tickets = append(tickets, e.a.AdmitHashed(ctx, old.Opts.Site, old.Opts.Device, wire.HashBytes(raw(t, b))))
	}
	res, err := e.a.Rekey(ctx, old.DeviceName(), fresh.Trust.KeyID, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	for i, tk := range tickets {
		reply, err := tk.Wait(ctx)
		if err != nil {
			t.Fatalf("bundle %d admitted before the rekey: %v", i, err)
		}
		if r := receiptOf(t, e, reply); r.Epoch != 0 || r.LogIndex != uint64(i) {
			t.Fatalf("bundle %d: epoch %d log index %d", i, r.Epoch, r.LogIndex)
		}
	}
	last, err := merkle.ParseCheckpoint([]byte(old.States[5].Checkpoint))
	if err != nil {
		t.Fatal(err)
	}
	if c := res.Statement.Closed; c.Bundles != 6 || c.CheckpointSize != last.Size || c.Bundle != digestOf(raw(t, old.Bundles[5])) || c.LogIndex != 5 || res.LogIndex != 6 {
		t.Fatalf("closed %+v at log index %d", c, res.LogIndex)
	}
}
