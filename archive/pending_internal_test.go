package archive

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// TestPendingTotalBound: beyond the bound of pending requests of all
// devices, the oldest request (of any device) is evicted, logged and
// passed to the eviction hook.
func TestPendingTotalBound(t *testing.T) {
	old := pendingTotal
	pendingTotal = 2
	t.Cleanup(func() { pendingTotal = old })
	var logs bytes.Buffer
	clock := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	d, err := OpenDevices(filepath.Join(t.TempDir(), "devices.json"), slog.New(slog.NewTextHandler(&logs, nil)), func() time.Time {
		clock = clock.Add(time.Second)
		return clock
	})
	if err != nil {
		t.Fatal(err)
	}
	var evicted []Evicted
	d.OnEvict(func(_ context.Context, e Evicted) { evicted = append(evicted, e) })
	var keys []string
	for _, dev := range []string{"dev1", "dev2", "dev3"} {
		c, err := bundletest.NewChain(t.Context(), nil, 0, bundletest.Options{Site: "site1", Device: dev})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := c.Trust.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		req, err := ParseEnrollRequest(raw)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Enroll(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, c.Trust.KeyID)
	}
	if len(evicted) != 1 || evicted[0].Device != "site1/dev1" || evicted[0].KeyID != keys[0] || evicted[0].Reason != "in total" {
		t.Fatalf("evicted: %+v", evicted)
	}
	list, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, info := range list {
		n += len(info.Requests)
		if info.Name == "site1/dev1" && len(info.Requests) != 0 {
			t.Fatalf("dev1 kept its evicted request: %v", info.PendingKeys())
		}
	}
	if n != 2 || !strings.Contains(logs.String(), "pending enrollment evicted") || !strings.Contains(logs.String(), keys[0]) {
		t.Fatalf("%d pending in total; log:\n%s", n, logs.String())
	}
}
