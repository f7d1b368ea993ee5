package archived

import (
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/sync"
)

// withLanes sets the subscriber's lane bounds of mqtt.max_lanes,
// mqtt.max_pending and mqtt.max_pending_bytes on o.
func withLanes(cfg *config.Config, o sync.SubscriberOptions) sync.SubscriberOptions {
	o.MaxLanes, o.MaxPending, o.MaxPendingBytes = cfg.MQTT.MaxLanes, cfg.MQTT.MaxPending, cfg.MQTT.MaxPendingBytes
	return o
}

// withWaits sets the replica waits of archive_state.hold_wait and
// archive_state.gap_wait on o.
func withWaits(cfg *config.Config, o archive.Options) archive.Options {
	o.HoldWait, o.GapWait = cfg.ArchiveState.HoldWait, cfg.ArchiveState.GapWait
	return o
}
