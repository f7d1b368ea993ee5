package archive_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/agent/policy/signed"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// signedEnv is an archive with operatorKey as its operator key.
func signedEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), key: testKey, op: operatorKey}
	e.open()
	t.Cleanup(func() {
		if e.a != nil {
			e.a.Close()
		}
	})
	return e
}

func (e *env) deviceStatement(typ, device, keyID, reason string, op ed25519.PrivateKey) (*archive.Logged, error) {
	e.t.Helper()
	s := &archive.OperatorStatement{Type: typ, By: "test", Time: "2026-11-26T02:00:00.000000Z", Device: device, KeyID: keyID, Reason: reason}
	rec, err := archive.SignOperatorStatement(s, op)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.a.DeviceStatement(e.t.Context(), rec)
}

// editDevices rewrites devices.json by hand: every old becomes new.
func editDevices(t *testing.T, dir, old, new string) {
	t.Helper()
	p := filepath.Join(dir, "devices.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("devices.json has no %s:\n%s", old, b)
	}
	if err := os.WriteFile(p, bytes.ReplaceAll(b, []byte(old), []byte(new)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDeviceStatementsDecide: with operator keys, the log's signed
// statements decide which devices are trusted, not devices.json.
func TestDeviceStatementsDecide(t *testing.T) {
	e := signedEnv(t)
	c := newChain(t, 0, bundletest.Options{Site: "site1", Device: "dev1"})
	e.enroll(c)
	trust, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b1, err := c.Next(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	// An unsigned approval (what a hand edit of devices.json does) is
	// not the log's: the bundle is refused.
	if _, err := e.a.Devices().Approve(t.Context(), "site1/dev1", c.Trust.KeyID, "mallory"); err != nil {
		t.Fatal(err)
	}
	e.refused("site1", "dev1", raw(t, b1), archive.CheckApproved)

	// A statement signed by a key that is not an operator's is refused.
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	if _, err := e.deviceStatement(archive.StatementDeviceRevoke, "site1/dev1", "", "test", other); !isOperatorErr(err) {
		t.Fatalf("statement of a stranger's key: %v", err)
	}
	// The approval names the DEVICE.json the operator checked.
	s := &archive.OperatorStatement{Type: archive.StatementDeviceApprove, By: "test", Time: "2026-11-26T02:00:00.000000Z",
		Device: "site1/dev1", KeyID: c.Trust.KeyID, TrustDigest: archive.TrustDigest([]byte("{}")), NoActivation: true}
	rec, err := archive.SignOperatorStatement(s, operatorKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.DeviceStatement(t.Context(), rec); err == nil {
		t.Fatal("an approval naming another DEVICE.json was taken")
	}

	// Signed, queued in the pending folder: taken at the next bundle.
	e.a.Close()
	e.a = nil
	os.Remove(filepath.Join(e.dir, "devices.json")) // back to pending
	e.open()
	e.enroll(c)
	s.TrustDigest = archive.TrustDigest(trust)
	rec, err = archive.SignOperatorStatement(s, operatorKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := archive.QueueStatement(e.dir, rec); err != nil {
		t.Fatal(err)
	}
	e.accept(c, b1)
	if ents, _ := os.ReadDir(archive.PendingDir(e.dir)); len(ents) != 0 {
		t.Fatalf("pending folder not emptied: %d files", len(ents))
	}

	// Revoked by statement: refused, even once devices.json says approved
	// again, and after a restart.
	if _, err := e.deviceStatement(archive.StatementDeviceRevoke, "site1/dev1", "", "stolen", operatorKey); err != nil {
		t.Fatal(err)
	}
	b2, err := c.Next(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	e.refused("site1", "dev1", raw(t, b2), archive.CheckRevoked)
	editDevices(t, e.dir, `"status": "revoked"`, `"status": "approved"`)
	e.refused("site1", "dev1", raw(t, b2), archive.CheckRevoked)
	e.reopen()
	e.refused("site1", "dev1", raw(t, b2), archive.CheckRevoked)
	list, err := e.a.Devices().List()
	if err != nil || len(list) != 1 || list[0].Status != archive.StatusRevoked {
		t.Fatalf("devices.json not brought back to the log's revocation: %+v %v", list, err)
	}
}

// TestDeviceRevokeKeyStatement: a key revoked by statement is refused.
func TestDeviceRevokeKeyStatement(t *testing.T) {
	e := signedEnv(t)
	c := newChain(t, 0, bundletest.Options{Site: "site1", Device: "dev2"})
	e.approve(c)
	b1, err := c.Next(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	e.accept(c, b1)
	if _, err := e.deviceStatement(archive.StatementDeviceRevokeKey, "site1/dev2", c.Trust.KeyID, "leaked", operatorKey); err != nil {
		t.Fatal(err)
	}
	b2, err := c.Next(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	data := raw(t, b2)
	if _, err := e.a.Receive(t.Context(), "site1", "dev2", data); err == nil {
		t.Fatal("bundle of a revoked key accepted")
	}
}

// TestOperatorKeyIsPolicyAdmin: an operator key seen in the admin set of
// an accepted bundle's policy.change raises an alarm, and its statements
// are refused.
func TestOperatorKeyIsPolicyAdmin(t *testing.T) {
	e := signedEnv(t)
	body, digest := adminPolicyChange(t, operatorKey)
	c := newChain(t, 0, bundletest.Options{Site: "site1", Device: "dev3", Records: 4, KeyCreate: true, Policy: digest})
	c.Journal(custody.TypePolicyChange, custody.Actor{Kind: "agent", ID: "policy", Via: "start"}, body)
	e.approve(c) // signed before the archive saw the policy
	b, err := c.Next(t.Context(), 4)
	if err != nil {
		t.Fatal(err)
	}
	e.accept(c, b)
	e.mu.Lock()
	alarm := false
	for _, al := range e.alerts {
		alarm = alarm || al.Severity == archive.SeverityAlarm && strings.Contains(strings.Join(al.Reasons, " "), "policy administrator")
	}
	e.mu.Unlock()
	if !alarm {
		t.Fatal("no alarm for an operator key in a policy admin set")
	}
	if _, err := e.deviceStatement(archive.StatementDeviceRevoke, "site1/dev3", "", "test", operatorKey); !isOperatorErr(err) {
		t.Fatalf("statement of a policy admin's key: %v", err)
	}
	if _, err := e.a.Hold(t.Context(), archive.HoldTarget{Device: "site1/dev3"}, "C-1", "test", "", operatorKey, false); !isOperatorErr(err) {
		t.Fatalf("legal hold signed by a policy admin's key: %v", err)
	}
	// Learnt again from the stored bundles at the next start.
	e.reopen()
	if _, err := e.deviceStatement(archive.StatementDeviceRevoke, "site1/dev3", "", "test", operatorKey); !isOperatorErr(err) {
		t.Fatalf("after a restart, statement of a policy admin's key: %v", err)
	}
}

// adminPolicyChange returns a policy.change body whose admin set is the
// single key k, and the policy's digest.
func adminPolicyChange(t *testing.T, k ed25519.PrivateKey) ([]byte, string) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	key, err := signed.ParseKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(signed.Admins{Version: signed.AdminsVersion, Threshold: 1, Admins: []signed.Admin{{Name: "alice", PublicKey: pub}}})
	if err != nil {
		t.Fatal(err)
	}
	admins, err := signed.ParseAdmins(set)
	if err != nil {
		t.Fatal(err)
	}
	policy := "version: 1\nworkflows:\n  - name: monthly-report\n    classifications: [internal]\n    retention: 7y\n    destinations: [archive]\n    principals: [n8n-reports]\n    max_size: 1048576\n"
	doc := signed.Document{Version: signed.DocumentVersion, Policy: policy, Files: map[string]string{}}
	payload, err := doc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	_, p, err := signed.ParseDocument(payload)
	if err != nil {
		t.Fatal(err)
	}
	env, err := signed.Sign(context.Background(), nil, payload, key)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(&signed.ChangeBody{Policy: p.Digest(), Reason: signed.ReasonStart, Signers: []string{"alice"}, Admins: admins, Envelope: env})
	if err != nil {
		t.Fatal(err)
	}
	return body, p.Digest()
}

// FuzzDeviceStatement builds device statements from fuzzed fields:
// whatever SignOperatorStatement signs, ParseOperatorStatement reads
// back to the same statement, and ParseOperatorStatement reads the signed
// bytes of any of them, mutated by flip, without panic.
func FuzzDeviceStatement(f *testing.F) {
	f.Add(0, "site1/dev1", "sha256:"+strings.Repeat("d", 64), testDigestC, "", false, -1, []byte(nil))
	f.Add(1, "site1/dev1", "", "", "stolen", false, 10, []byte(nil))
	f.Add(2, "site1/dev1", "k1", "", "leaked", true, 3, []byte(nil))
	f.Add(0, "bad", "", "sha256:00", "", true, 0, []byte(nil))
	f.Add(0, "site1/dev1", "k1", "", "", false, 5, []byte(`{"version":1}`))
	if trust, err := os.ReadFile("testdata/device-statement-trust.json"); err == nil {
		var t struct{ KeyID string }
		_ = json.Unmarshal(trust, &t)
		f.Add(0, "plant-7/line3-gw", t.KeyID, "", "", false, 40, trust)
		f.Add(0, "plant-7/line3-gw", t.KeyID, "", "", false, 900, trust)
	}
	f.Fuzz(func(t *testing.T, typ int, device, keyID, trust, reason string, noAct bool, flip int, trustFile []byte) {
		types := []string{archive.StatementDeviceApprove, archive.StatementDeviceRevoke, archive.StatementDeviceRevokeKey}
		if trust == "" && trustFile != nil {
			trust = wire.FormatHash(sha256.Sum256(trustFile)) // bound to the file, as the command signs it
		}
		s := &archive.OperatorStatement{Type: types[((typ%3)+3)%3], By: "alice", Time: "2026-12-07T03:00:00.000000Z",
			Device: device, KeyID: keyID, TrustDigest: trust, TrustFile: trustFile, Reason: reason, NoActivation: noAct}
		rec, err := archive.SignOperatorStatement(s, operatorKey)
		if err != nil {
			return
		}
		got, err := archive.ParseOperatorStatement(rec)
		if err != nil {
			t.Fatalf("a signed statement does not parse: %v\n%s", err, rec)
		}
		if got.Type != s.Type || got.Device != device || got.KeyID != keyID || got.TrustDigest != trust || !bytes.Equal(got.TrustFile, trustFile) || got.Reason != reason || got.NoActivation != noAct {
			t.Fatalf("parsed %+v from %+v", got, s)
		}
		if flip >= 0 && flip < len(rec) {
			mut := bytes.Clone(rec)
			mut[flip] ^= 0x01
			if _, err := archive.ParseOperatorStatement(mut); err == nil && !bytes.Equal(mut, rec) {
				t.Fatalf("a statement changed at byte %d parsed: %s", flip, mut)
			}
		}
	})
}

// TestDeviceApprovalSurvivesRestart: the approval is the log's, read
// again at Open.
func TestDeviceApprovalSurvivesRestart(t *testing.T) {
	e := signedEnv(t)
	c := newChain(t, 0, bundletest.Options{Site: "site1", Device: "dev4"})
	e.approve(c)
	e.reopen()
	b, err := c.Next(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	e.accept(c, b)
}
