package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// listFromLog runs `archive devices list --json` and returns the device
// name's entry.
func listFromLog(t *testing.T, cfg, name string) archive.DeviceInfo {
	t.Helper()
	out, code := runCmd(t, "archive", "devices", "list", "--json", "--config", cfg)
	if code != 0 {
		t.Fatalf("devices list: exit %d\n%s", code, out)
	}
	var list []archive.DeviceInfo
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("devices list: %v\n%s", err, out)
	}
	for _, d := range list {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("devices list has no %s:\n%s", name, out)
	return archive.DeviceInfo{}
}

// TestDevicesFromLogDaemon: with operator_keys the device registry is the
// archive log's. The running daemon writes a hand-edited devices.json
// back; with the daemon stopped `archive devices list` derives the
// devices from the log and a deleted devices.json comes back, with which
// the restarted daemon accepts the device's bundles.
func TestDevicesFromLogDaemon(t *testing.T) {
	cfg, opKey, ar := startSignedArchive(t)
	data := filepath.Join(filepath.Dir(cfg), "data")
	registry := filepath.Join(data, "devices.json")

	c, err := bundletest.NewChain(t.Context(), nil, 2, bundletest.Options{Site: "site1", Device: "dev1"})
	if err != nil {
		t.Fatal(err)
	}
	if out, code := runCmd(t, "archive", "enroll-file", writeTrust(t, c), "--config", cfg); code != 0 {
		t.Fatalf("enroll-file: exit %d\n%s", code, out)
	}
	if out, code := runCmd(t, "archive", "devices", "approve", "site1/dev1", "--key", c.Trust.KeyID, "--no-activation", "--by", "alice", "--operator-key", opKey, "--config", cfg); code != 0 {
		t.Fatalf("signed approve: exit %d\n%s", code, out)
	}
	rawOf := func(i int) []byte {
		b, err := c.Bundles[i].Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if r := sendBundle(t, ar, "site1", "dev1", "b-1", rawOf(0)); r != "" {
		t.Fatalf("bundle of a device approved by statement: %q\n%s", r, ar.logs())
	}

	// A hand edit while the daemon runs is written back from the log.
	b, err := os.ReadFile(registry)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), `"status": "approved"`, `"status": "revoked"`, 1)
	edited = strings.Replace(edited, `"approvedBy": "alice"`, `"approvedBy": "mallory"`, 1)
	if edited == string(b) {
		t.Fatalf("devices.json without the approved device:\n%s", b)
	}
	if err := os.WriteFile(registry, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ = os.ReadFile(registry)
		if strings.Contains(string(b), `"status": "approved"`) && !strings.Contains(string(b), "mallory") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the running archive did not write devices.json back:\n%s\n%s", b, ar.logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if d := listFromLog(t, cfg, "site1/dev1"); d.Status != archive.StatusApproved || d.ApprovedBy != "alice" {
		t.Fatalf("devices list while the daemon runs: %+v", d)
	}
	ar.stop(t)

	// Deleted with the daemon stopped: list derives it from the log and
	// writes it anew.
	if err := os.Remove(registry); err != nil {
		t.Fatal(err)
	}
	d := listFromLog(t, cfg, "site1/dev1")
	if d.Status != archive.StatusApproved || d.KeyID != c.Trust.KeyID || archive.TrustDigest(d.Trust) != archive.TrustDigest(mustMarshalTrust(t, c)) {
		t.Fatalf("devices list from the log: %+v", d)
	}
	if b, err := os.ReadFile(registry); err != nil || !strings.Contains(string(b), c.Trust.KeyID) {
		t.Fatalf("devices.json not written anew: %v\n%s", err, b)
	}
	ar = startArchiveProc(t, cfg)
	if r := sendBundle(t, ar, "site1", "dev1", "b-2", rawOf(1)); r != "" {
		t.Fatalf("bundle after devices.json was rebuilt from the log: %q\n%s", r, ar.logs())
	}
}

func mustMarshalTrust(t *testing.T, c *bundletest.Chain) []byte {
	t.Helper()
	b, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startSignedArchive starts an archive daemon (embedded broker) whose
// config lists one operator key, alice.key.pub beside the config; it
// returns the config, the operator's private key file and the daemon.
func startSignedArchive(t *testing.T) (cfg, opKey string, ar *archiveProc) {
	t.Helper()
	dir := t.TempDir()
	cfg = writeArchiveConfig(t, dir, "", "")
	opKey = newOperatorKey(t, dir, "alice.key")
	appendFile(t, cfg, "operator_keys: [alice.key.pub]\n")
	return cfg, opKey, startArchiveProc(t, cfg)
}
