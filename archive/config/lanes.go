package config

import "time"

// Lanes and replica waits. The archive's MQTT subscriber admits each
// device's bundles in a lane of its own (sync.SubscriberOptions): at
// most mqtt.max_lanes devices at once, and at most mqtt.max_pending
// bundles (mqtt.max_pending_bytes bytes) received and not yet answered
// in all lanes; past a bound the broker holds the next messages. With a
// shared chain-state store (archive_state.engine mysql) each device with
// bundles in flight holds a lease connection on the database, so these
// bounds also bound the lease connections: at most min(max_lanes,
// max_pending) per archive. A bundle waits for its device's lease at
// most archive_state.hold_wait, and one that comes after a gap waits at
// most archive_state.gap_wait for another replica to commit its
// predecessor, before it is answered held (archive.Options).

// Defaults of the lane bounds and replica waits; the same as
// sync.DefaultMaxLanes, sync.DefaultMaxPending,
// sync.DefaultMaxPendingBytes, archive.DefaultHoldWait and
// archive.DefaultGapWait (a test in archive/archived holds them equal).
const (
	DefaultMaxLanes        = 256
	DefaultMaxPending      = 64
	DefaultMaxPendingBytes = 256 << 20
	DefaultHoldWait        = 10 * time.Second
	DefaultGapWait         = 2 * time.Second
)

// Bounds of the lane bounds and replica waits.
const (
	MaxMaxLanes        = 65536
	MaxMaxPending      = 65536
	MinMaxPendingBytes = 1 << 20
	MaxMaxPendingBytes = 64 << 30
	MinHoldWait        = 100 * time.Millisecond
	MaxHoldWait        = 10 * time.Minute
	MinGapWait         = 10 * time.Millisecond
)

// LeaseConns is the most lease connections one archive holds on the
// chain-state database: one per device with bundles in flight, so
// min(max_lanes, max_pending).
func (m MQTT) LeaseConns() int { return min(m.MaxLanes, m.MaxPending) }

func (m MQTT) validateLanes(bad func(key, format string, a ...any)) {
	if m.MaxLanes < 1 || m.MaxLanes > MaxMaxLanes {
		bad("mqtt.max_lanes", "%d: want 1 to %d", m.MaxLanes, MaxMaxLanes)
	}
	if m.MaxPending < 1 || m.MaxPending > MaxMaxPending {
		bad("mqtt.max_pending", "%d: want 1 to %d", m.MaxPending, MaxMaxPending)
	}
	if m.MaxPendingBytes < MinMaxPendingBytes || m.MaxPendingBytes > MaxMaxPendingBytes {
		bad("mqtt.max_pending_bytes", "%d: want %d (1 MiB) to %d (64 GiB)", m.MaxPendingBytes, MinMaxPendingBytes, int64(MaxMaxPendingBytes))
	}
}

func (s *ArchiveState) validateWaits(bad func(key, format string, a ...any)) {
	if s.HoldWait < MinHoldWait || s.HoldWait > MaxHoldWait {
		bad("archive_state.hold_wait", "%s: want %s to %s", s.HoldWait, MinHoldWait, MaxHoldWait)
	}
	if s.GapWait < MinGapWait || s.GapWait > s.HoldWait {
		bad("archive_state.gap_wait", "%s: want %s to hold_wait (%s)", s.GapWait, MinGapWait, s.HoldWait)
	}
}
