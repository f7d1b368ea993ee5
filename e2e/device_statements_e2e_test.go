package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/sync"
)

// sendBundle publishes raw as device site/dev to the running archive and
// returns "" when it was receipted, else the rejection's reason.
func sendBundle(t *testing.T, ar *archiveProc, site, dev, id string, raw []byte) string {
	t.Helper()
	ob := newOutbox(t)
	if err := ob.PutOutbox(t.Context(), id, raw); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	p, err := sync.NewPublisher(sync.PublisherOptions{Broker: ar.broker, Site: site, Device: dev, Outbox: ob, ArchiveKey: ar.pub,
		Tick: 100 * time.Millisecond,
		OnReceipt: func(context.Context, string, []byte) error {
			select {
			case done <- "":
			default:
			}
			return nil
		},
		OnRejection: func(_ context.Context, _ string, rej *sync.Rejection, _ []byte) {
			select {
			case done <- "refused: " + rej.Reason:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() { _ = p.Start(ctx); close(stopped) }()
	defer func() { stop(); <-stopped }()
	select {
	case r := <-done:
		return r
	case <-time.After(60 * time.Second):
		t.Fatalf("no answer to %s/%s %s within 60s\n%s", site, dev, id, ar.logs())
	}
	return ""
}

// TestDeviceStatementsDaemon: with operator_keys, `archive devices
// approve|revoke` sign statements the running daemon takes from its
// pending folder and logs; a device approved by an unsigned write of
// devices.json is refused, and a device revoked by statement stays
// refused when devices.json is edited back to approved.
func TestDeviceStatementsDaemon(t *testing.T) {
	cfg, opKey, ar := startSignedArchive(t)
	data := filepath.Join(filepath.Dir(cfg), "data")

	chain := func(dev string) *bundletest.Chain {
		c, err := bundletest.NewChain(t.Context(), nil, 2, bundletest.Options{Site: "site1", Device: dev})
		if err != nil {
			t.Fatal(err)
		}
		if out, code := runCmd(t, "archive", "enroll-file", writeTrust(t, c), "--config", cfg); code != 0 {
			t.Fatalf("enroll-file: exit %d\n%s", code, out)
		}
		return c
	}
	bytesOf := func(c *bundletest.Chain, i int) []byte {
		raw, err := c.Bundles[i].Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	hand, signed := chain("dev1"), chain("dev2")

	// Unsigned: refused by the command, and a write of devices.json that
	// bypasses it (no config: no operator keys) approves nothing.
	if out, code := runCmd(t, "archive", "devices", "approve", "site1/dev1", "--key", hand.Trust.KeyID, "--no-activation", "--by", "mallory", "--config", cfg); code == 0 || !strings.Contains(out, "--operator-key FILE is required") {
		t.Fatalf("approve without --operator-key: exit %d\n%s", code, out)
	}
	if out, code := runCmd(t, "archive", "devices", "approve", "site1/dev1", "--key", hand.Trust.KeyID, "--no-activation", "--by", "mallory", "--data-dir", data); code != 0 {
		t.Fatalf("unsigned approve: exit %d\n%s", code, out)
	}
	if r := sendBundle(t, ar, "site1", "dev1", "b-1", bytesOf(hand, 0)); !strings.Contains(r, "not approved") {
		t.Fatalf("bundle of a device approved by hand: %q", r)
	}

	// Signed while the daemon runs: queued, taken before the next bundle.
	out, code := runCmd(t, "archive", "devices", "approve", "site1/dev2", "--key", signed.Trust.KeyID, "--no-activation", "--by", "alice", "--operator-key", opKey, "--config", cfg)
	if code != 0 || !strings.Contains(out, "device.approve site1/dev2 signed by alice") || !strings.Contains(out, "queued") {
		t.Fatalf("signed approve: exit %d\n%s", code, out)
	}
	if r := sendBundle(t, ar, "site1", "dev2", "b-1", bytesOf(signed, 0)); r != "" {
		t.Fatalf("bundle of a device approved by statement: %q\n%s", r, ar.logs())
	}
	if out, code := runCmd(t, "archive", "devices", "revoke", "site1/dev2", "--reason", "stolen", "--by", "alice", "--operator-key", opKey, "--config", cfg); code != 0 {
		t.Fatalf("signed revoke: exit %d\n%s", code, out)
	}
	if r := sendBundle(t, ar, "site1", "dev2", "b-2", bytesOf(signed, 1)); !strings.Contains(r, "revoked") {
		t.Fatalf("bundle of a device revoked by statement: %q", r)
	}
	ar.stop(t)

	// devices.json edited back to approved: the log's revocation holds,
	// and the archive rewrites devices.json from it at start.
	p := filepath.Join(data, "devices.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), `"status": "revoked"`, `"status": "approved"`, 1)
	if edited == string(b) {
		t.Fatalf("devices.json without a revoked device:\n%s", b)
	}
	if err := os.WriteFile(p, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	// Stopped: the command logs the statement itself.
	if out, code := runCmd(t, "archive", "devices", "revoke-key", "site1/dev1", hand.Trust.KeyID, "--reason", "test", "--by", "alice", "--operator-key", opKey, "--config", cfg); code != 0 || !strings.Contains(out, "logged at archive log index") {
		t.Fatalf("signed revoke-key, daemon stopped: exit %d\n%s", code, out)
	}
	ar = startArchiveProc(t, cfg)
	if r := sendBundle(t, ar, "site1", "dev2", "b-3", bytesOf(signed, 1)); !strings.Contains(r, "revoked") {
		t.Fatalf("after an edit of devices.json and a restart: %q", r)
	}
	if b, _ := os.ReadFile(p); !strings.Contains(string(b), `"status": "revoked"`) {
		t.Fatalf("devices.json not rewritten from the log:\n%s", b)
	}
}
