package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/archived"
	"github.com/edgeseal/edgeseal/archive/broker"
	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/sync"
)

// writeTrust writes the chain's DEVICE.json.
func writeTrust(t *testing.T, c *bundletest.Chain) string {
	t.Helper()
	b, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "DEVICE.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestArchiveCommands: enroll-file, devices approve/list/revoke and
// import DIR with receipts written to DIR/receipts.
func TestArchiveCommands(t *testing.T) {
	data := t.TempDir()
	c, err := bundletest.NewChain(t.Context(), nil, 2, bundletest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	media := t.TempDir()
	for _, b := range c.Bundles {
		name, _ := b.FileName()
		raw, _ := b.Bytes()
		if err := os.WriteFile(filepath.Join(media, name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, code := runCmd(t, "archive", "import", media, "--data-dir", data); code != 1 || !strings.Contains(out, "archive.enrolled") {
		t.Fatalf("import from an unenrolled device: exit %d\n%s", code, out)
	}
	out, code := runCmd(t, "archive", "enroll-file", writeTrust(t, c), "--data-dir", data)
	if code != 0 || !strings.Contains(out, "status pending") {
		t.Fatalf("enroll-file exit %d\n%s", code, out)
	}
	if out, code := runCmd(t, "archive", "devices", "approve", "site1/dev1", "--key", c.Trust.KeyID, "--no-activation", "--by", "alice", "--data-dir", data); code != 0 || !strings.Contains(out, "approved") {
		t.Fatalf("approve exit %d\n%s", code, out)
	}
	out, code = runCmd(t, "archive", "import", media, "--data-dir", data)
	if code != 0 || !strings.Contains(out, "2 accepted, 0 refused") {
		t.Fatalf("import exit %d\n%s", code, out)
	}
	receipts, _ := filepath.Glob(filepath.Join(media, "receipts", "*.receipt.json"))
	if len(receipts) != 2 {
		t.Fatalf("%d receipts", len(receipts))
	}
	key, _, err := archived.LoadOrCreateKey(filepath.Join(data, "archive.key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range receipts {
		b, _ := os.ReadFile(p)
		if _, err := archivesig.VerifyReceipt(b, archive.KeyID(key.Public().(ed25519.PublicKey)), key.Public().(ed25519.PublicKey)); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(data, "archive.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode(), err)
	}
	out, code = runCmd(t, "archive", "devices", "list", "--data-dir", data)
	if code != 0 || !strings.Contains(out, "site1/dev1") || !strings.Contains(out, "approved") {
		t.Fatalf("list exit %d\n%s", code, out)
	}
	if out, code := runCmd(t, "archive", "devices", "revoke", "site1/dev1", "--data-dir", data); code != 2 {
		t.Fatalf("revoke without a reason: exit %d\n%s", code, out)
	}
	if out, code := runCmd(t, "archive", "devices", "revoke", "site1/dev1", "--reason", "stolen", "--data-dir", data); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke exit %d\n%s", code, out)
	}
}

// TestArchiveDaemon runs the daemon with its embedded broker: a bundle
// published on the device's topic comes back as a receipt, a tampered one
// as a signed rejection and an alert on edgeseal/v1/alerts.
func TestArchiveDaemon(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "archive.yaml")
	if err := os.WriteFile(cfgFile, []byte("data_dir: data\nmqtt:\n  embedded:\n    listen: 127.0.0.1:0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := bundletest.NewChain(t.Context(), nil, 2, bundletest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if out, code := runCmd(t, "archive", "enroll-file", writeTrust(t, c), "--config", cfgFile); code != 0 {
		t.Fatal(out)
	}
	if out, code := runCmd(t, "archive", "devices", "approve", "site1/dev1", "--key", c.Trust.KeyID, "--no-activation", "--config", cfgFile); code != 0 {
		t.Fatal(out)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	r, done := startArchiveInProcess(t, ctx, cfg)
	var mu gosync.Mutex
	got := map[string][][]byte{}
	for i, topic := range []string{sync.ReceiptsTopic("site1", "dev1"), sync.AlertsTopic} {
		if err := r.b.Subscribe(topic, i+1, func(topic string, p []byte) {
			mu.Lock()
			got[topic] = append(got[topic], bytes.Clone(p))
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
	}
	// send publishes the bundle until n replies came back (the subscriber
	// connects in the background; repeats get the same answer).
	send := func(b *bundle.Bundle, topic string, n int) {
		t.Helper()
		raw, _ := b.Bytes()
		frames := sync.EncodeChunks("out-1", sha256.Sum256(raw), raw, 16<<10)
		for {
			for _, f := range frames {
				if err := r.b.Publish(sync.BundlesTopic("site1", "dev1"), f); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(500 * time.Millisecond)
			for time.Now().Before(deadline) {
				mu.Lock()
				k := len(got[topic])
				mu.Unlock()
				if k >= n {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			if ctx.Err() != nil {
				t.Fatal("no reply before the deadline")
			}
		}
	}
	send(c.Bundles[0], sync.ReceiptsTopic("site1", "dev1"), 1)
	mu.Lock()
	receipt := got[sync.ReceiptsTopic("site1", "dev1")][0]
	mu.Unlock()
	if rc, err := archivesig.VerifyReceipt(receipt, r.a.KeyID(), r.a.PublicKey()); err != nil || rc.Device != "site1/dev1" {
		t.Fatalf("receipt over MQTT: %v", err)
	}
	bad, _, err := c.Tamper(t.Context(), bundletest.Case{Kind: "payload.changed", Target: 1, Prev: 0})
	if err != nil {
		t.Fatal(err)
	}
	send(bad, sync.AlertsTopic, 1)
	mu.Lock()
	var al archive.Alert
	if err := json.Unmarshal(got[sync.AlertsTopic][0], &al); err != nil || al.Kind != archive.KindRejected {
		t.Fatalf("alert %s: %v", got[sync.AlertsTopic][0], err)
	}
	mu.Unlock()
	send(bad, sync.ReceiptsTopic("site1", "dev1"), 2)
	mu.Lock()
	rej := got[sync.ReceiptsTopic("site1", "dev1")][1]
	mu.Unlock()
	if rj, err := sync.VerifyRejection(rej, r.a.KeyID(), r.a.PublicKey()); err != nil || !strings.Contains(strings.Join(rj.Checks, ","), verify.CheckPayloadsDigest) {
		t.Fatalf("rejection over MQTT: %+v, %v", rj, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("daemon: %v", err)
	}
}

// inProcessArchive is an archive daemon run by runArchive in the test's
// process, once it is ready.
type inProcessArchive struct {
	a *archive.Archive
	b *broker.Broker
}

// startArchiveInProcess runs the archive daemon of cfg until ctx is done
// and waits (at most 60 s) until it is ready; done gets runArchive's
// result.
func startArchiveInProcess(t *testing.T, ctx context.Context, cfg *config.Config) (inProcessArchive, <-chan error) {
	t.Helper()
	readyc := make(chan inProcessArchive, 1)
	done := make(chan error, 1)
	go func() {
		done <- archived.Run(ctx, cfg, archived.Options{Logger: slog.New(slog.DiscardHandler), Ready: func(a *archive.Archive, b *broker.Broker) {
			readyc <- inProcessArchive{a, b}
		}})
	}()
	select {
	case r := <-readyc:
		return r, done
	case err := <-done:
		t.Fatalf("archive daemon stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("archive daemon not ready after 60s")
	}
	return inProcessArchive{}, done
}
