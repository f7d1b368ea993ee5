package main

import (
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/config"
)

// quarantineLimits are the config's quarantine bounds (alert_interval 0:
// every alert is raised).
func quarantineLimits(q config.Quarantine) archive.QuarantineLimits {
	l := archive.QuarantineLimits{MaxEntries: q.MaxEntries, MaxBytes: q.MaxBytes, DeviceEntries: q.DeviceEntries,
		DeviceBytes: q.DeviceBytes, AlertInterval: q.AlertInterval}
	if l.AlertInterval == 0 {
		l.AlertInterval = -1
	}
	return l
}
