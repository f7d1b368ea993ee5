package archive

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"sort"

	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Bounds of the pending enrollment requests the registry keeps. A new
// request beyond them evicts the oldest one (of the device, or of all
// devices): the eviction is logged and alerted (KindEnrollmentEvicted).
const (
	MaxPendingPerDevice = 4
	MaxPendingTotal     = 1024
)

// pendingTotal is MaxPendingTotal (lowered by tests).
var pendingTotal = MaxPendingTotal

// PendingEnrollment is an enrollment request waiting for an operator,
// one per signing key id. Its credential is activated when the device
// answered the archive's challenge (TPM2_MakeCredential for the
// request's EK and AK), which proves the AK lives in the TPM of the EK.
type PendingEnrollment struct {
	Request    *EnrollRequest `json:"request"`
	ReceivedAt string         `json:"receivedAt"`
	// Challenge is the SHA-256 ("sha256:<hex>") of the credential of the
	// last challenge issued; empty before one was.
	Challenge    string `json:"challenge,omitempty"`
	ChallengedAt string `json:"challengedAt,omitempty"`
	// ActivatedAt is when the device proved the credential (empty: not
	// activated).
	ActivatedAt string `json:"activatedAt,omitempty"`
}

// KeyID is the request's signing key id ("" for a request whose trust
// does not parse).
func (p *PendingEnrollment) KeyID() string {
	if p.Request == nil {
		return ""
	}
	if t := p.Request.ParsedTrust(); t != nil {
		return t.KeyID
	}
	// Decoded from JSON (a registry listing) rather than parsed.
	t, err := trustfile.ParseTrust(p.Request.Trust)
	if err != nil {
		return ""
	}
	return t.KeyID
}

// Activated reports whether the request's credential was activated.
func (p *PendingEnrollment) Activated() bool { return p.ActivatedAt != "" }

// PendingKey returns the pending request of keyID, nil when none.
func (i DeviceInfo) PendingKey(keyID string) *PendingEnrollment {
	for k := range i.Requests {
		if i.Requests[k].KeyID() == keyID {
			return &i.Requests[k]
		}
	}
	return nil
}

// PendingKeys lists the key ids of the pending requests, oldest first.
func (i DeviceInfo) PendingKeys() []string {
	out := make([]string, 0, len(i.Requests))
	for k := range i.Requests {
		out = append(out, i.Requests[k].KeyID())
	}
	return out
}

// Evicted is a pending request dropped to keep the bounds.
type Evicted struct {
	Device     string
	KeyID      string
	ReceivedAt string
	Reason     string // "per device" or "in total"
}

// addPending records req as the newest pending request of dv: it
// replaces the request of the same key (keeping its challenge and
// activation when the trust is the same), or is added, evicting the
// device's oldest beyond MaxPendingPerDevice.
func addPending(dv *device, req *EnrollRequest, now string) []Evicted {
	keyID := req.ParsedTrust().KeyID
	reqs := slices.Clone(dv.info.Requests)
	for k := range reqs {
		if reqs[k].KeyID() != keyID {
			continue
		}
		if !bytes.Equal(CompactTrust(reqs[k].Request.Trust), CompactTrust(req.Trust)) {
			reqs[k].Challenge, reqs[k].ChallengedAt, reqs[k].ActivatedAt = "", "", ""
		}
		p := reqs[k]
		p.Request, p.ReceivedAt = req, now
		dv.info.Requests = append(slices.Delete(reqs, k, k+1), p) // the newest now
		return nil
	}
	reqs = append(reqs, PendingEnrollment{Request: req, ReceivedAt: now})
	var out []Evicted
	for len(reqs) > MaxPendingPerDevice {
		out = append(out, Evicted{Device: dv.info.Name, KeyID: reqs[0].KeyID(), ReceivedAt: reqs[0].ReceivedAt, Reason: "per device"})
		reqs = reqs[1:]
	}
	dv.info.Requests = reqs
	return out
}

// evictTotal drops the oldest pending requests of all devices beyond
// MaxPendingTotal, never keep's request of keepKey.
func evictTotal(devs map[string]*device, keep, keepKey string) []Evicted {
	type ref struct {
		dev, key, at string
	}
	names := make([]string, 0, len(devs))
	for name := range devs {
		names = append(names, name)
	}
	sort.Strings(names)
	var all []ref
	for _, name := range names {
		for _, p := range devs[name].info.Requests { // oldest first
			all = append(all, ref{name, p.KeyID(), p.ReceivedAt})
		}
	}
	if len(all) <= pendingTotal {
		return nil
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].at < all[j].at })
	var out []Evicted
	for _, r := range all {
		if len(all)-len(out) <= pendingTotal {
			break
		}
		if r.dev == keep && r.key == keepKey {
			continue
		}
		dv := devs[r.dev]
		dv.info.Requests = slices.DeleteFunc(slices.Clone(dv.info.Requests), func(p PendingEnrollment) bool { return p.KeyID() == r.key })
		out = append(out, Evicted{Device: r.dev, KeyID: r.key, ReceivedAt: r.at, Reason: "in total"})
	}
	return out
}

// removePending drops the pending request of keyID.
func removePending(dv *device, keyID string) {
	dv.info.Requests = slices.DeleteFunc(slices.Clone(dv.info.Requests), func(p PendingEnrollment) bool { return p.KeyID() == keyID })
	if len(dv.info.Requests) == 0 {
		dv.info.Requests = nil
	}
}

// parsePending checks a device's pending requests in devices.json (and
// moves a registry's single "pending" request of earlier versions into
// them).
func parsePending(dv *device) error {
	info := &dv.info
	if p := info.Pending; p != nil {
		if k := p.ParsedTrust(); k == nil || info.PendingKey(k.KeyID) == nil {
			info.Requests = append([]PendingEnrollment{{Request: p, ReceivedAt: info.EnrolledAt}}, info.Requests...)
		}
		info.Pending = nil
	}
	if len(info.Requests) > MaxPendingPerDevice {
		return &wire.FormatError{Format: "devices", Reason: fmt.Sprintf("device %s has %d pending requests (at most %d)", info.Name, len(info.Requests), MaxPendingPerDevice)}
	}
	seen := map[string]bool{}
	reqs := make([]PendingEnrollment, 0, len(info.Requests))
	for _, p := range info.Requests {
		if p.Request == nil {
			return &wire.FormatError{Format: "devices", Reason: "device " + info.Name + " pending entry without a request"}
		}
		raw, err := p.Request.Marshal()
		if err != nil {
			return err
		}
		req, err := ParseEnrollRequest(raw)
		if err != nil {
			return fmt.Errorf("device %s pending enrollment: %w", info.Name, err)
		}
		if req.ParsedTrust().DeviceName() != info.Name {
			return &wire.FormatError{Format: "devices", Reason: "device " + info.Name + " pending request of another device"}
		}
		if seen[req.ParsedTrust().KeyID] {
			return &wire.FormatError{Format: "devices", Reason: "device " + info.Name + " pending key listed twice"}
		}
		seen[req.ParsedTrust().KeyID] = true
		p.Request = req
		reqs = append(reqs, p)
	}
	if len(reqs) == 0 {
		reqs = nil
	}
	info.Requests = reqs
	dv.setView()
	return nil
}

// setView sets DeviceInfo.Pending to the newest pending request.
func (dv *device) setView() {
	dv.info.Pending = nil
	if n := len(dv.info.Requests); n > 0 {
		dv.info.Pending = dv.info.Requests[n-1].Request
	}
}

func notActivatedReason(name, keyID string, challenged bool) string {
	s := "the credential of key " + keyID + " was not activated (its AK is not proven to be in the TPM of its EK): "
	if challenged {
		s += "the device has not answered its challenge; run edgeseal agent enroll on it again (or agent enroll --answer CHALLENGE for a challenge file)"
	} else {
		s += "no challenge was answered; send one with edgeseal archive enroll-file REQUEST --challenge FILE, or have the device run edgeseal agent enroll over MQTT"
	}
	return s + "; approve unchecked with --no-activation (edgeseal archive devices approve " + name + " --key " + keyID + " --no-activation)"
}

// SetEKRoots makes Enroll require an EK certificate that chains to roots
// (the TPM manufacturers' CAs); nil requires none.
func (d *Devices) SetEKRoots(roots *x509.CertPool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ekRoots = roots
}

// OnEvict has f called for every pending request dropped to keep the
// bounds (after it is logged).
func (d *Devices) OnEvict(f func(context.Context, Evicted)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.onEvict = f
}

func (d *Devices) evicted(ctx context.Context, ev []Evicted) {
	d.mu.Lock()
	f := d.onEvict
	d.mu.Unlock()
	for _, e := range ev {
		d.log.Warn("pending enrollment evicted", "device", e.Device, "key", e.KeyID, "receivedAt", e.ReceivedAt,
			"why", fmt.Sprintf("more than %d pending requests %s", map[string]int{"per device": MaxPendingPerDevice, "in total": pendingTotal}[e.Reason], e.Reason))
		if f != nil {
			f(ctx, e)
		}
	}
}
