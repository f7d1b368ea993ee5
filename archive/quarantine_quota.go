package archive

import (
	"container/list"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// QuarantineLimits bound what the quarantine keeps (quarantine/): past a
// bound, the oldest entries are dropped (first the device's own, for a
// device bound) and counted (Stats.QuarantineDropped). Zero fields take
// the defaults.
type QuarantineLimits struct {
	// MaxEntries is the most refused bundles kept in all (default
	// DefaultQuarantineEntries).
	MaxEntries int
	// MaxBytes bounds the bytes kept in all, bundles and reasons (default
	// DefaultQuarantineBytes).
	MaxBytes int64
	// DeviceEntries is the most refused bundles kept per device (default
	// DefaultQuarantineDeviceEntries).
	DeviceEntries int
	// DeviceBytes bounds the bytes kept per device (default
	// DefaultQuarantineDeviceBytes). A bundle larger than what a device
	// may keep is quarantined as its reason only.
	DeviceBytes int64
	// AlertInterval is the shortest time between two alerts of one device
	// for one reason (kind and checks): the alerts in between are logged
	// at debug level, counted (Stats.AlertsSuppressed) and their number
	// is carried by the next alert raised (Alert.Suppressed). Default
	// DefaultAlertInterval; negative: every alert is raised.
	AlertInterval time.Duration
}

// Defaults of QuarantineLimits.
const (
	DefaultQuarantineEntries       = 10000
	DefaultQuarantineBytes         = 4 << 30
	DefaultQuarantineDeviceEntries = 100
	DefaultQuarantineDeviceBytes   = 512 << 20
	DefaultAlertInterval           = time.Minute
)

func (l *QuarantineLimits) setDefaults() {
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultQuarantineEntries
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultQuarantineBytes
	}
	if l.DeviceEntries <= 0 {
		l.DeviceEntries = DefaultQuarantineDeviceEntries
	}
	if l.DeviceBytes <= 0 {
		l.DeviceBytes = DefaultQuarantineDeviceBytes
	}
	l.DeviceEntries = min(l.DeviceEntries, l.MaxEntries)
	l.DeviceBytes = min(l.DeviceBytes, l.MaxBytes)
	if l.AlertInterval == 0 {
		l.AlertInterval = DefaultAlertInterval
	}
}

// qentry is one quarantined bundle: its files (<hex>.tar when its bytes
// are kept, <hex>.json) and what they weigh.
type qentry struct {
	name   string // hex digest
	device string
	bytes  int64
	all    *list.Element // in quarIndex.all
	dev    *list.Element // in quarIndex.devs[device]
}

// quarIndex is the quarantine's holdings, oldest first, in all and per
// device.
type quarIndex struct {
	mu      sync.Mutex
	lim     QuarantineLimits
	entries map[string]*qentry
	all     *list.List
	devs    map[string]*list.List
	bytes   int64
	devSize map[string]int64
}

func newQuarIndex(lim QuarantineLimits) *quarIndex {
	return &quarIndex{lim: lim, entries: map[string]*qentry{}, all: list.New(), devs: map[string]*list.List{}, devSize: map[string]int64{}}
}

// load indexes what dir holds, oldest (by the time in its reason) first.
func (q *quarIndex) load(dir string) error {
	des, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	type found struct {
		name, device, time string
		bytes              int64
	}
	byName := map[string]*found{}
	for _, de := range des {
		name, ext, ok := strings.Cut(de.Name(), ".")
		if !ok || (ext != "tar" && ext != "json") || !de.Type().IsRegular() {
			continue
		}
		info, err := de.Info()
		if err != nil {
			continue
		}
		f := byName[name]
		if f == nil {
			f = &found{name: name}
			byName[name] = f
		}
		f.bytes += info.Size()
		if ext == "json" && info.Size() <= 1<<20 {
			var why struct{ Device, Time string }
			if data, err := os.ReadFile(filepath.Join(dir, de.Name())); err == nil && json.Unmarshal(data, &why) == nil {
				f.device, f.time = why.Device, why.Time
			}
		}
	}
	got := make([]*found, 0, len(byName))
	for _, f := range byName {
		got = append(got, f)
	}
	slices.SortFunc(got, func(a, b *found) int {
		if c := strings.Compare(a.time, b.time); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, f := range got {
		q.put(f.name, f.device, f.bytes)
	}
	return nil
}

// put records (again, as the newest) an entry of the device; q.mu is held.
func (q *quarIndex) put(name, device string, n int64) {
	if e := q.entries[name]; e != nil {
		q.remove(e)
	}
	e := &qentry{name: name, device: device, bytes: n}
	e.all = q.all.PushBack(e)
	l := q.devs[device]
	if l == nil {
		l = list.New()
		q.devs[device] = l
	}
	e.dev = l.PushBack(e)
	q.entries[name] = e
	q.bytes += n
	q.devSize[device] += n
}

// remove forgets an entry; q.mu is held.
func (q *quarIndex) remove(e *qentry) {
	q.all.Remove(e.all)
	l := q.devs[e.device]
	l.Remove(e.dev)
	q.bytes -= e.bytes
	q.devSize[e.device] -= e.bytes
	if l.Len() == 0 {
		delete(q.devs, e.device)
		delete(q.devSize, e.device)
	}
	delete(q.entries, e.name)
}

// fits reports whether n more bytes of one entry may be kept for a device.
func (q *quarIndex) fits(n int64) bool {
	return n <= q.lim.DeviceBytes && n <= q.lim.MaxBytes
}

// overflow returns the entries to drop, oldest first, so that the
// holdings fit the bounds once keep is counted: the device's own first,
// then the oldest of all; they are forgotten here, their files are the
// caller's to remove. q.mu is held.
func (q *quarIndex) overflow(keep string) []*qentry {
	var out []*qentry
	k := q.entries[keep]
	if k == nil {
		return nil
	}
	for l := q.devs[k.device]; l != nil && (l.Len() > q.lim.DeviceEntries || q.devSize[k.device] > q.lim.DeviceBytes); {
		e := l.Front().Value.(*qentry)
		if e == k {
			break
		}
		q.remove(e)
		out = append(out, e)
		l = q.devs[k.device]
	}
	for q.all.Len() > q.lim.MaxEntries || q.bytes > q.lim.MaxBytes {
		e := q.all.Front().Value.(*qentry)
		if e == k {
			break
		}
		q.remove(e)
		out = append(out, e)
	}
	return out
}

// QuarantineStats is what the quarantine holds.
type QuarantineStats struct {
	Entries int   // refused bundles kept
	Bytes   int64 // their files' bytes
}

// QuarantineStats returns the quarantine's holdings.
func (a *Archive) QuarantineStats() QuarantineStats {
	a.qidx.mu.Lock()
	defer a.qidx.mu.Unlock()
	return QuarantineStats{Entries: a.qidx.all.Len(), Bytes: a.qidx.bytes}
}

// account records a quarantined entry and drops the oldest past the
// bounds (logged and counted).
func (a *Archive) account(digest [32]byte, device string, n int64) {
	name := hex.EncodeToString(digest[:])
	a.qidx.mu.Lock()
	a.qidx.put(name, device, n)
	drop := a.qidx.overflow(name)
	a.qidx.mu.Unlock()
	for _, e := range drop {
		base := filepath.Join(a.quar, e.name)
		for _, p := range []string{base + ".tar", base + ".json"} {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				a.lg.Warn("quarantine: entry not removed", "path", p, "err", err)
			}
		}
		a.stats.quarDropped.Add(1)
		a.lg.Info("quarantine: oldest entry dropped (quota)", "device", e.device, "bundle", "sha256:"+e.name, "bytes", e.bytes)
	}
}

// fileSize is the size of path, 0 when it is missing.
func fileSize(path string) int64 {
	info, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return info.Size()
}
