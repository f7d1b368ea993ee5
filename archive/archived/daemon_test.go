package archived_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/internal/e2etest"
	"github.com/edgeseal/edgeseal/sync"
)

// TestArchiveDaemon runs the daemon with its embedded broker: a bundle
// published on the device's topic comes back as a receipt, a tampered one
// as a signed rejection and an alert on edgeseal/v1/alerts.
func TestArchiveDaemon(t *testing.T) {
	c, err := bundletest.NewChain(t.Context(), nil, 2, bundletest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	r := e2etest.StartEmbeddedArchive(t)
	e2etest.EnrollChain(t, r.A, c)
	var mu gosync.Mutex
	got := map[string][][]byte{}
	for i, topic := range []string{sync.ReceiptsTopic("site1", "dev1"), sync.AlertsTopic} {
		if err := r.B.Subscribe(topic, i+1, func(topic string, p []byte) {
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
				if err := r.B.Publish(sync.BundlesTopic("site1", "dev1"), f); err != nil {
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
	if rc, err := archivesig.VerifyReceipt(receipt, r.A.KeyID(), r.A.PublicKey()); err != nil || rc.Device != "site1/dev1" {
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
	if rj, err := sync.VerifyRejection(rej, r.A.KeyID(), r.A.PublicKey()); err != nil || !strings.Contains(strings.Join(rj.Checks, ","), verify.CheckPayloadsDigest) {
		t.Fatalf("rejection over MQTT: %+v, %v", rj, err)
	}
	r.Stop(t)
}
