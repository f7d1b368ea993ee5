package archive_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// quarFiles lists quarantine/ by extension.
func quarFiles(t *testing.T, dir string) (tars, jsons []string) {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(dir, "quarantine"))
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		switch filepath.Ext(de.Name()) {
		case ".tar":
			tars = append(tars, de.Name())
		case ".json":
			jsons = append(jsons, de.Name())
		}
	}
	return tars, jsons
}

// garbage is unreadable bytes, distinct per i.
func garbage(i int) []byte {
	return bytes.Repeat(fmt.Appendf(nil, "not a bundle %06d ", i), 64)
}

// TestQuarantineKeepsNoBytesOfStrangers: a bundle that does not read as
// one, or comes from a device that is not enrolled, is quarantined as its
// digest and reason only; a readable bundle of an approved device that
// fails verification keeps its bytes.
func TestQuarantineKeepsNoBytesOfStrangers(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 3, bundletest.Options{})
	for _, tc := range []struct {
		name, device string
		data         []byte
		want         string
	}{
		{"unreadable", "dev1", garbage(1), archive.CheckRead},
		{"not enrolled", c.Opts.Device, raw(t, c.Bundles[0]), archive.CheckEnrolled},
	} {
		rj := e.refused(c.Opts.Site, tc.device, tc.data, tc.want)
		if !strings.HasSuffix(rj.Quarantine, ".json") {
			t.Fatalf("%s: quarantine path %s, want the reason only", tc.name, rj.Quarantine)
		}
		if _, err := os.Stat(strings.TrimSuffix(rj.Quarantine, ".json") + ".tar"); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: bytes kept: %v", tc.name, err)
		}
		var why struct {
			BundleDigest string
			Reasons      []string
			Size         int64
			BytesKept    bool
		}
		data, err := os.ReadFile(rj.Quarantine)
		if err != nil || json.Unmarshal(data, &why) != nil {
			t.Fatalf("%s: reason: %v %s", tc.name, err, data)
		}
		if why.BundleDigest != digestOf(tc.data) || !strings.Contains(strings.Join(why.Reasons, " "), tc.want) || why.BytesKept || why.Size != int64(len(tc.data)) {
			t.Fatalf("%s: reason %+v", tc.name, why)
		}
	}
	tars, _ := quarFiles(t, e.dir)
	if len(tars) != 0 {
		t.Fatalf("bytes kept: %v", tars)
	}
	e.approve(c)
	gap := raw(t, c.Bundles[2])
	rj := e.refused(c.Opts.Site, c.Opts.Device, gap, archive.CheckGap)
	if q, err := os.ReadFile(rj.Quarantine); err != nil || !bytes.Equal(q, gap) {
		t.Fatalf("an approved device's refused bundle: bytes not kept (%s): %v", rj.Quarantine, err)
	}
}

// TestQuarantineBundleOverDeviceBytes: a refused bundle of an approved
// device larger than what a device may keep is quarantined as its reason
// only.
func TestQuarantineBundleOverDeviceBytes(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 2, bundletest.Options{})
	gap := raw(t, c.Bundles[1])
	e.quar = archive.QuarantineLimits{DeviceBytes: int64(len(gap)) - 1}
	e.reopen()
	e.approve(c)
	rj := e.refused(c.Opts.Site, c.Opts.Device, gap, archive.CheckGap)
	if !strings.HasSuffix(rj.Quarantine, ".json") {
		t.Fatalf("quarantine path %s, want the reason only", rj.Quarantine)
	}
	if tars, _ := quarFiles(t, e.dir); len(tars) != 0 {
		t.Fatalf("bytes kept beyond the device's quota: %v", tars)
	}
}

// TestQuarantineDeviceQuota: one device cannot fill the quarantine: past
// DefaultQuarantineDeviceEntries its oldest entries are dropped and
// counted, and another device's entries stay.
func TestQuarantineDeviceQuota(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if _, err := e.a.Receive(ctx, "site1", "other", garbage(-1)); err == nil {
		t.Fatal("garbage accepted")
	}
	n := archive.DefaultQuarantineDeviceEntries + 5
	for i := range n {
		if _, err := e.a.Receive(ctx, "site1", "flood", garbage(i)); err == nil {
			t.Fatal("garbage accepted")
		}
	}
	_, jsons := quarFiles(t, e.dir)
	if len(jsons) != archive.DefaultQuarantineDeviceEntries+1 {
		t.Fatalf("%d entries kept, want %d of the flooding device and 1 of the other", len(jsons), archive.DefaultQuarantineDeviceEntries)
	}
	has := func(data []byte) bool {
		d := digestOf(data)
		_, err := os.Stat(filepath.Join(e.dir, "quarantine", strings.TrimPrefix(d, "sha256:")+".json"))
		return err == nil
	}
	if !has(garbage(-1)) {
		t.Fatal("the other device's entry was dropped")
	}
	if has(garbage(0)) || has(garbage(4)) || !has(garbage(5)) || !has(garbage(n-1)) {
		t.Fatal("not the oldest entries dropped")
	}
	if got := e.a.Stats().QuarantineDropped; got != 5 {
		t.Fatalf("QuarantineDropped %d, want 5", got)
	}
	if s := e.a.QuarantineStats(); s.Entries != len(jsons) {
		t.Fatalf("QuarantineStats %+v, %d files", s, len(jsons))
	}
}

// TestQuarantineTotalQuota: the total count and bytes bounds hold across
// devices (the oldest of all dropped) and across a restart.
func TestQuarantineTotalQuota(t *testing.T) {
	dir := t.TempDir()
	lim := archive.QuarantineLimits{MaxEntries: 6, MaxBytes: 4000, AlertInterval: -1}
	open := func() *archive.Archive {
		a, err := archive.Open(t.Context(), archive.Options{Dir: dir, Key: testKey, Quarantine: lim})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := open()
	for i := range 20 {
		if _, err := a.Receive(t.Context(), "site1", fmt.Sprintf("dev%d", i%4), garbage(i)); err == nil {
			t.Fatal("garbage accepted")
		}
		s := a.QuarantineStats()
		if s.Entries > lim.MaxEntries || s.Bytes > lim.MaxBytes {
			t.Fatalf("after %d refusals: %+v beyond %+v", i+1, s, lim)
		}
	}
	if a.Stats().QuarantineDropped == 0 {
		t.Fatal("nothing dropped")
	}
	a.Close()
	lim.MaxEntries = 2
	a = open()
	defer a.Close()
	if _, err := a.Receive(t.Context(), "site1", "dev9", garbage(99)); err == nil {
		t.Fatal("garbage accepted")
	}
	if _, jsons := quarFiles(t, dir); len(jsons) != 2 {
		t.Fatalf("%d entries after a restart with 2 allowed", len(jsons))
	}
}

// TestAlertRateLimit: one alert per device and reason per interval; the
// next one carries the number suppressed; another device or reason is
// not held back.
func TestAlertRateLimit(t *testing.T) {
	var mu gosync.Mutex
	now := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	var alerts []archive.Alert
	a, err := archive.Open(t.Context(), archive.Options{Dir: t.TempDir(), Key: testKey,
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
		Alert: func(_ context.Context, al archive.Alert) {
			mu.Lock()
			alerts = append(alerts, al)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	send := func(device string, i int) {
		t.Helper()
		if _, err := a.Receive(t.Context(), "site1", device, garbage(i)); err == nil {
			t.Fatal("garbage accepted")
		}
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(alerts) }
	for i := range 5 {
		send("flood", i)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d alerts for 5 refusals of one device and reason in one interval", n)
	}
	send("quiet", 100)
	if n := count(); n != 2 {
		t.Fatalf("another device's alert held back: %d alerts", n)
	}
	if got := a.Stats().AlertsSuppressed; got != 4 {
		t.Fatalf("AlertsSuppressed %d, want 4", got)
	}
	mu.Lock()
	now = now.Add(archive.DefaultAlertInterval)
	mu.Unlock()
	send("flood", 6)
	mu.Lock()
	defer mu.Unlock()
	if len(alerts) != 3 || alerts[2].Device != "site1/flood" || alerts[2].Suppressed != 4 {
		t.Fatalf("after the interval: %d alerts, last %+v", len(alerts), alerts[len(alerts)-1])
	}
}
