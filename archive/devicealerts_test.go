package archive_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/sync"
)

// TestDeviceAlerts: the archive keeps the last MaxDeviceAlerts alerts of
// each device, counts every one by kind (an unknown kind as "other") and
// logs one per device and kind per alert interval, counting the others
// as suppressed.
func TestDeviceAlerts(t *testing.T) {
	var logs bytes.Buffer
	a, err := archive.Open(t.Context(), archive.Options{
		Dir: t.TempDir(), Key: testKey, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Quarantine: archive.QuarantineLimits{AlertInterval: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	n := archive.MaxDeviceAlerts + 4
	for i := range n {
		al := sync.NewDeviceAlert("site1", "dev1", "schema.changed", time.Now(), int64(i), "doc@1")
		a.ReceiveDeviceAlert(t.Context(), &al)
	}
	other := sync.NewDeviceAlert("site1", "dev2", "made.up", time.Now(), -1, "?")
	a.ReceiveDeviceAlert(t.Context(), &other)

	got := a.DeviceAlerts("site1/dev1")["site1/dev1"]
	if len(got) != archive.MaxDeviceAlerts || *got[0].Seq != 4 || *got[len(got)-1].Seq != uint64(n-1) || got[0].Received == "" {
		t.Fatalf("kept %d alerts, first %+v", len(got), got[0])
	}
	if all := a.DeviceAlerts(""); len(all) != 2 || len(all["site1/dev2"]) != 1 {
		t.Fatalf("all devices: %v", all)
	}
	if c := a.DeviceAlertCounts(); c["schema.changed"] != uint64(n) || c[archive.KindDeviceAlertOther] != 1 || len(c) != 2 {
		t.Fatalf("counts %v", c)
	}
	if k := strings.Count(logs.String(), "DEVICE ALERT schema.changed"); k != 1 {
		t.Fatalf("logged %d times:\n%s", k, logs.String())
	}
	if s := a.Stats(); s.AlertsSuppressed != uint64(n-1) {
		t.Fatalf("suppressed %d", s.AlertsSuppressed)
	}
}
