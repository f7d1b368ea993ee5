package archive

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"time"
)

// registryWatch is how often a running archive with operator keys looks
// at its pending folder and at devices.json without a bundle asking.
const registryWatch = 2 * time.Second

// The registry as a view of the log. With operator keys configured,
// devices.json is a cache: every time the archive reads it (at Open, on
// a change on disk, before each write) it lays the log's device states
// over it (deviceGate.view): status, approved key and DEVICE.json,
// approval and revocation, revoked keys and closed epochs are the log's;
// only the pending enrollment requests, which the log does not hold, are
// the file's. A deleted devices.json is written anew from the log, a
// hand-edited one is written back to the log's states (Archive.syncDevices,
// at Open, before each bundle's lookup and every registryWatch while
// the archive runs). An approval of an earlier statement version names only
// the digest of its DEVICE.json: its trust comes from a copy in
// devices.json with that digest, and without one the device stays
// pending until an operator approves it again.

// view lays the log's device states over devs and reports whether it
// changed anything.
func (g *deviceGate) view(devs map[string]*device) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	changed := false
	for name, gd := range g.devs {
		dv, ok := devs[name]
		if !ok {
			dv = &device{info: DeviceInfo{Name: name, Status: StatusPending}}
			devs[name] = dv
			changed = true
		}
		gd.learn(dv.info)
		next := gd.registryInfo(dv.info)
		if !sameInfo(next, dv.info) {
			dv.info, changed = next, true
		}
		dv.trust = nil
		if len(dv.info.Trust) > 0 {
			dv.trust = gd.parsed
		}
		dv.setView()
	}
	for name, dv := range devs {
		if _, ok := g.devs[name]; ok {
			continue
		}
		// Not in the log: nothing of it is trusted.
		next := dv.info
		next.Status, next.ApprovedAt, next.ApprovedBy, next.RevokedAt, next.RevokeReason = StatusPending, "", "", "", ""
		next.RevokedKeys, next.KeyRevocations = nil, nil
		if !sameInfo(next, dv.info) {
			dv.info, changed = next, true
		}
	}
	return changed
}

// learn takes the DEVICE.json of an approval that named only its digest,
// and of closed epochs, from devices.json when its digest matches.
func (gd *gateDevice) learn(cache DeviceInfo) {
	if gd.trustFile == nil && gd.key != "" {
		cands := [][]byte{cache.Trust}
		if p := cache.PendingKey(gd.key); p != nil {
			cands = append(cands, p.Request.Trust)
		}
		for _, c := range cands {
			if len(c) > 0 && TrustDigest(c) == gd.trust {
				if gd.setTrust(c); gd.trustFile != nil {
					break
				}
			}
		}
	}
	for k := range gd.epochs {
		if gd.epochs[k].Trust != nil {
			continue
		}
		if c := cache.closedEpochOf(gd.epochs[k].KeyID); c != nil && TrustDigest(c.Trust) == gd.epochTrust[k] {
			gd.epochs[k].Trust = json.RawMessage(CompactTrust(c.Trust))
		}
	}
}

// registryInfo is cache (the device's entry in devices.json) with the
// log's states laid over it.
func (gd *gateDevice) registryInfo(cache DeviceInfo) DeviceInfo {
	info := cache
	info.KeyID, info.Trust = gd.key, nil
	if gd.trustFile != nil {
		info.Trust = json.RawMessage(gd.trustFile)
		if len(cache.Trust) > 0 && TrustDigest(cache.Trust) == gd.trust {
			info.Trust = cache.Trust // the same DEVICE.json, as the file lays it out
		}
	}
	switch {
	case gd.revoked:
		info.Status = StatusRevoked
	case gd.key != "" && info.Trust != nil:
		info.Status = StatusApproved
		info.Requests = slices.DeleteFunc(slices.Clone(info.Requests), func(p PendingEnrollment) bool { return p.KeyID() == gd.key })
		if len(info.Requests) == 0 {
			info.Requests = nil
		}
	default:
		info.Status = StatusPending
	}
	info.ApprovedAt, info.ApprovedBy, info.RevokedAt, info.RevokeReason = gd.approvedAt, gd.approvedBy, "", ""
	if gd.revoked {
		info.RevokedAt, info.RevokeReason = gd.revokedAt, gd.reason
	}
	info.RevokedKeys = nilIfEmpty(slices.Clone(gd.revokedKeys))
	info.KeyRevocations = nilIfEmpty(slices.Clone(gd.keyRevs))
	info.Epoch, info.Epochs = gd.epoch, nil
	if len(gd.epochs) > 0 {
		eps := slices.Clone(gd.epochs)
		complete := true
		for k := range eps {
			if c := cache.closedEpochOf(eps[k].KeyID); c != nil && len(c.Trust) > 0 && TrustDigest(c.Trust) == gd.epochTrust[k] {
				eps[k].Trust = c.Trust
			}
			complete = complete && eps[k].Trust != nil
		}
		if complete {
			info.Epochs = eps
		} else {
			// A closed epoch's DEVICE.json is neither in the log nor in
			// the file: keep what the file says of the epochs.
			info.Epoch, info.Epochs = cache.Epoch, cache.Epochs
		}
	}
	return info
}

// incomplete reports the devices the log approves whose DEVICE.json it
// names only by digest and devices.json does not hold.
func (g *deviceGate) incomplete() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for name, gd := range g.devs {
		if gd.key != "" && !gd.revoked && gd.trustFile == nil {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func nilIfEmpty[S ~[]E, E any](s S) S {
	if len(s) == 0 {
		return nil
	}
	return s
}

// sameInfo compares two registry entries, the Pending view aside.
func sameInfo(a, b DeviceInfo) bool {
	a.Pending, b.Pending = nil, nil
	return reflect.DeepEqual(a, b)
}

// syncDevices writes devices.json when it differs from the log's device
// states (a deleted or hand-edited file).
func (a *Archive) syncDevices(ctx context.Context) {
	if a.gate == nil || !a.devices.stale() {
		return
	}
	if err := a.devices.sync(ctx); err != nil {
		a.lg.Error("devices.json not rewritten from the archive log", "err", err)
		return
	}
	a.lg.Warn("devices.json differed from the archive log's device states (deleted or edited by hand): written anew from the log")
}

// watchRegistry takes the queued statements and writes devices.json back
// to the log's states (with operator keys), and takes the queued content
// key requests, every interval, until Close.
func (a *Archive) watchRegistry(interval time.Duration) {
	defer close(a.watchDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-a.quit:
			return
		case <-t.C:
			if a.gate != nil {
				a.followLog(a.bg)
				a.takePending(a.bg, false)
				a.syncDevices(a.bg)
			}
			// Forced: a request written within the folder's last mtime
			// tick is not missed.
			a.takeContentKeyRequests(a.bg, true)
		}
	}
}
