package archive

import (
	"slices"
	"sync"

	"github.com/edgeseal/edgeseal/bundle/trustfile"
)

// gateDevice is one device as the log's statements leave it: what the
// archive trusts of it, and what devices.json shows of it (the view,
// devices_view.go).
type gateDevice struct {
	key, trust string // the approved key id and TrustDigest of its DEVICE.json, "" when none
	// trustFile is that DEVICE.json, nil while the log names only its
	// digest (an approval of an earlier statement version) and no copy
	// of devices.json whose digest matches was seen.
	trustFile   []byte
	parsed      *trustfile.Trust // trustFile parsed, nil when unknown
	revoked     bool
	reason      string
	revokedKeys []string
	// The registry's view of the statements.
	approvedAt, approvedBy, revokedAt string
	keyRevs                           []KeyRevocation
	epoch                             uint64      // current epoch, 0 before a rekey
	epochs                            []EpochInfo // closed; Trust nil while unknown
	epochTrust                        []string    // TrustDigest of each closed epoch's DEVICE.json
}

// deviceGate holds the device states of the log's statements.
type deviceGate struct {
	mu   sync.Mutex
	devs map[string]*gateDevice
	// admins are the key ids of the policy administrators seen in the
	// policy.change records of accepted bundles (separation.go).
	admins map[string]string // key id -> device whose policy named it
}

func newDeviceGate() *deviceGate {
	return &deviceGate{devs: map[string]*gateDevice{}, admins: map[string]string{}}
}

func (g *deviceGate) dev(name string) *gateDevice {
	d, ok := g.devs[name]
	if !ok {
		d = &gateDevice{}
		g.devs[name] = d
	}
	return d
}

// setTrust makes trust (a DEVICE.json whose TrustDigest is d.trust, nil
// when unknown) the device's current one.
func (d *gateDevice) setTrust(trust []byte) {
	d.trustFile, d.parsed = nil, nil
	if trust == nil {
		return
	}
	t, err := trustfile.ParseTrust(trust)
	if err != nil || t.KeyID != d.key || TrustDigest(trust) != d.trust {
		return
	}
	d.trustFile, d.parsed = CompactTrust(trust), t
}

// apply applies a logged device statement.
func (g *deviceGate) apply(s *OperatorStatement) {
	g.mu.Lock()
	defer g.mu.Unlock()
	d := g.dev(s.Device)
	switch s.Type {
	case StatementDeviceApprove:
		same := d.key == s.KeyID && d.trust == s.TrustDigest
		old := d.trustFile
		d.key, d.trust, d.revoked, d.reason = s.KeyID, s.TrustDigest, false, ""
		switch {
		case s.TrustFile != nil:
			d.setTrust(s.TrustFile)
		case same:
			d.setTrust(old)
		default:
			d.setTrust(nil)
		}
		d.approvedAt, d.approvedBy, d.revokedAt = s.Time, s.By, ""
	case StatementDeviceRevoke:
		d.revoked, d.reason, d.revokedAt = true, s.Reason, s.Time
		if d.key != "" && !slices.Contains(d.revokedKeys, d.key) {
			d.revokedKeys = append(d.revokedKeys, d.key)
		}
	case StatementDeviceRevokeKey:
		if !slices.Contains(d.revokedKeys, s.KeyID) {
			d.revokedKeys = append(d.revokedKeys, s.KeyID)
		}
		if !slices.ContainsFunc(d.keyRevs, func(r KeyRevocation) bool { return r.KeyID == s.KeyID }) {
			d.keyRevs = append(d.keyRevs, KeyRevocation{KeyID: s.KeyID, Reason: s.Reason, At: s.Time, By: s.By})
		}
	}
}

// applyRekey applies a logged rekey statement (at log index seq): the
// current epoch is closed, its key and trust are the device's approved
// ones.
func (g *deviceGate) applyRekey(s *EpochStatement, seq uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	d := g.dev(s.Device)
	if max(d.epoch, 1) >= s.Epoch {
		return // applied already
	}
	c := s.Closed
	d.epochs = append(d.epochs, EpochInfo{
		Epoch: c.Epoch, KeyID: c.KeyID, Trust: d.trustFile, ApprovedAt: d.approvedAt,
		ClosedAt: s.Time, ClosedBy: s.By, Reason: s.Reason, Bundles: c.Bundles, CheckpointSize: c.CheckpointSize,
		CheckpointRoot: c.CheckpointRoot, Counter: c.Counter, Bundle: c.Bundle, StatementIndex: seq,
	})
	d.epochTrust = append(d.epochTrust, d.trust)
	d.epoch, d.key, d.trust = s.Epoch, s.KeyID, TrustDigest(s.Trust)
	d.setTrust(s.Trust)
	d.approvedAt, d.approvedBy = s.Time, s.By
}

// check refuses what the log does not approve: info is devices.json's
// approved state of device name. It returns info with the log's revoked
// keys added.
func (g *deviceGate) check(name string, info DeviceInfo) (DeviceInfo, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	d, ok := g.devs[name]
	switch {
	case ok && d.revoked:
		info.Status, info.RevokeReason = StatusRevoked, d.reason
		return info, &DeviceError{Device: name, Status: StatusRevoked, Op: "lookup", Reason: "revoked by a signed operator statement"}
	case !ok || d.key == "" || d.key != info.KeyID || d.trust != TrustDigest(info.Trust):
		info.Status = StatusPending
		return info, &DeviceError{Device: name, Status: StatusPending, Op: "lookup", Reason: "key " + info.KeyID + " not approved by a signed operator statement in the archive log"}
	}
	for _, k := range d.revokedKeys {
		if !slices.Contains(info.RevokedKeys, k) {
			info.RevokedKeys = append(slices.Clone(info.RevokedKeys), k)
		}
	}
	return info, nil
}
