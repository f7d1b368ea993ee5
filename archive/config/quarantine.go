package config

import "time"

// Quarantine bounds the quarantine (<data_dir>/quarantine: refused
// bundles and their reasons) and rate-limits alerts. Past a bound the
// oldest entries are dropped, the device's own first for a per-device
// bound. Bundles of devices that are not approved and bytes that do not
// read as a bundle are kept as their digest and reason only.
type Quarantine struct {
	// MaxEntries is the most refused bundles kept in all.
	MaxEntries int `yaml:"max_entries"`
	// MaxBytes bounds the bytes kept in all (bundles and reasons).
	MaxBytes int64 `yaml:"max_bytes"`
	// DeviceEntries is the most refused bundles kept per device.
	DeviceEntries int `yaml:"device_entries"`
	// DeviceBytes bounds the bytes kept per device; a larger bundle is
	// kept as its reason only.
	DeviceBytes int64 `yaml:"device_bytes"`
	// AlertInterval is the shortest time between two alerts of one
	// device for one reason (kind and checks); the ones in between are
	// counted and the next alert carries their number. 0: every alert is
	// raised.
	AlertInterval time.Duration `yaml:"alert_interval"`
}

// Defaults of Quarantine.
const (
	DefaultQuarantineEntries       = 10000
	DefaultQuarantineBytes         = 4 << 30
	DefaultQuarantineDeviceEntries = 100
	DefaultQuarantineDeviceBytes   = 512 << 20
	DefaultAlertInterval           = time.Minute
)

func defaultQuarantine() Quarantine {
	return Quarantine{MaxEntries: DefaultQuarantineEntries, MaxBytes: DefaultQuarantineBytes,
		DeviceEntries: DefaultQuarantineDeviceEntries, DeviceBytes: DefaultQuarantineDeviceBytes, AlertInterval: DefaultAlertInterval}
}

func (q Quarantine) validate(bad func(key, format string, a ...any)) {
	if q.MaxEntries <= 0 {
		bad("quarantine.max_entries", "%d: want at least 1", q.MaxEntries)
	}
	if q.MaxBytes < 1<<20 {
		bad("quarantine.max_bytes", "%d: want at least 1048576 (1 MiB)", q.MaxBytes)
	}
	if q.DeviceEntries <= 0 || q.DeviceEntries > q.MaxEntries {
		bad("quarantine.device_entries", "%d: want 1 to max_entries (%d)", q.DeviceEntries, q.MaxEntries)
	}
	if q.DeviceBytes < 64<<10 || q.DeviceBytes > q.MaxBytes {
		bad("quarantine.device_bytes", "%d: want 65536 (64 KiB) to max_bytes (%d)", q.DeviceBytes, q.MaxBytes)
	}
	if q.AlertInterval < 0 {
		bad("quarantine.alert_interval", "%s is negative", q.AlertInterval)
	}
}
