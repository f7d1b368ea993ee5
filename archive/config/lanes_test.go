package config

import (
	"strings"
	"testing"
	"time"
)

// TestLaneKeys: the lane bounds and replica waits default to the
// subscriber's and the archive's defaults, are read, and out-of-range
// values are refused naming the key.
func TestLaneKeys(t *testing.T) {
	c, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	m, s := c.MQTT, c.ArchiveState
	if m.MaxLanes != DefaultMaxLanes || m.MaxPending != DefaultMaxPending || m.MaxPendingBytes != DefaultMaxPendingBytes ||
		s.HoldWait != DefaultHoldWait || s.GapWait != DefaultGapWait {
		t.Fatalf("defaults %+v %+v", m, s)
	}
	if m.LeaseConns() != DefaultMaxPending {
		t.Fatalf("lease connections %d, want %d", m.LeaseConns(), DefaultMaxPending)
	}
	c, err = Parse([]byte("mqtt:\n  max_lanes: 8\n  max_pending: 32\n  max_pending_bytes: 16777216\narchive_state:\n  hold_wait: 30s\n  gap_wait: 500ms\n"))
	if err != nil {
		t.Fatal(err)
	}
	m, s = c.MQTT, c.ArchiveState
	if m.MaxLanes != 8 || m.MaxPending != 32 || m.MaxPendingBytes != 16<<20 || s.HoldWait != 30*time.Second || s.GapWait != 500*time.Millisecond {
		t.Fatalf("read %+v %+v", m, s)
	}
	if m.LeaseConns() != 8 {
		t.Fatalf("lease connections %d, want 8 (max_lanes)", m.LeaseConns())
	}
	for _, bad := range []struct{ yaml, key string }{
		{"mqtt:\n  max_lanes: 0\n", "mqtt.max_lanes"},
		{"mqtt:\n  max_lanes: -3\n", "mqtt.max_lanes"},
		{"mqtt:\n  max_lanes: 70000\n", "mqtt.max_lanes"},
		{"mqtt:\n  max_pending: 0\n", "mqtt.max_pending"},
		{"mqtt:\n  max_pending: 100000\n", "mqtt.max_pending"},
		{"mqtt:\n  max_pending_bytes: 1000\n", "mqtt.max_pending_bytes"},
		{"mqtt:\n  max_pending_bytes: 1099511627776\n", "mqtt.max_pending_bytes"},
		{"mqtt:\n  max_lanes: many\n", "mqtt.max_lanes"},
		{"archive_state:\n  hold_wait: 0s\n", "archive_state.hold_wait"},
		{"archive_state:\n  hold_wait: 1h\n", "archive_state.hold_wait"},
		{"archive_state:\n  hold_wait: 10\n", "archive_state.hold_wait"},
		{"archive_state:\n  gap_wait: 0s\n", "archive_state.gap_wait"},
		{"archive_state:\n  hold_wait: 1s\n  gap_wait: 2s\n", "archive_state.gap_wait"},
	} {
		_, err := Parse([]byte(bad.yaml))
		if err == nil || !strings.Contains(err.Error(), bad.key) {
			t.Errorf("%q: %v, want an error naming %s", bad.yaml, err, bad.key)
		}
	}
}
