package archive

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/edgeseal/edgeseal/archive/state"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Status is a device's state in the registry.
type Status string

// Device statuses. Only an approved device's bundles are accepted.
const (
	StatusPending  Status = "pending"  // enrolled, waiting for an operator
	StatusApproved Status = "approved" // golden values set, bundles accepted
	StatusRevoked  Status = "revoked"  // refused; its keys can never be approved again
)

// DeviceInfo is one device in the registry.
type DeviceInfo struct {
	Name   string          `json:"name"` // "<site>/<name>"
	Status Status          `json:"status"`
	KeyID  string          `json:"keyId,omitempty"` // the approved signing key
	Trust  json.RawMessage `json:"trust,omitempty"` // the approved DEVICE.json (golden values)
	// Requests are the pending enrollment requests, one per key id,
	// oldest first (see PendingEnrollment).
	Requests []PendingEnrollment `json:"requests,omitempty"`
	// Pending is the newest of Requests, a convenience view that is not
	// written; a registry of earlier versions kept its one pending
	// request here, and it is read into Requests.
	Pending      *EnrollRequest `json:"pending,omitempty"`
	RevokedKeys  []string       `json:"revokedKeys,omitempty"`
	EnrolledAt   string         `json:"enrolledAt,omitempty"`
	ApprovedAt   string         `json:"approvedAt,omitempty"`
	ApprovedBy   string         `json:"approvedBy,omitempty"`
	RevokedAt    string         `json:"revokedAt,omitempty"`
	RevokeReason string         `json:"revokeReason,omitempty"`
	// Epoch is the device's current epoch (absent: 1); Epochs are the
	// closed ones, oldest first (see Archive.Rekey).
	Epoch  uint64      `json:"epoch,omitempty"`
	Epochs []EpochInfo `json:"epochs,omitempty"`
	// KeyRevocations are the operator's revocations of single signing
	// keys (keychain.go); each key is in RevokedKeys too.
	KeyRevocations []KeyRevocation `json:"keyRevocations,omitempty"`
}

// registryVersion is the devices.json version.
const registryVersion = 1

// maxRegistrySize bounds devices.json.
const maxRegistrySize = 256 << 20

type registryFile struct {
	Version int          `json:"version"`
	Devices []DeviceInfo `json:"devices"`
}

// Devices is the device registry, kept in one JSON file (devices.json in
// the archive's data dir) that every change rewrites atomically (temp
// file, fsync, rename, fsync dir) under an exclusive lock on
// devices.json.lock. Operator commands change it while the daemon runs;
// the daemon notices a new file on its next lookup (a stat per bundle)
// and reloads it. The registry is small (one entry per device, with the
// trust and summary of each epoch a rekey closed); its history is kept by
// the operators' change log and, for rekeys, by the archive log.
// With operator keys configured the archive trusts only what its log's
// signed statements approve (devices_signed.go) and the registry is a
// cache of those states beside the pending requests.
type Devices struct {
	reg state.Registry
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	ekRoots *x509.CertPool                 // nil: EK certificates are not required
	onEvict func(context.Context, Evicted) // nil: logged only
	tag     string                         // of the document loaded
	devs    map[string]*device
	loaded  bool
	// overlay, when set, lays the archive log's device states over the
	// registry read or about to be written (devices_view.go); dirty is
	// set when the file on disk differs from them.
	overlay func(devs map[string]*device) bool
	dirty   bool
}

type device struct {
	info  DeviceInfo
	trust *trustfile.Trust // parsed Trust, nil unless approved at least once
}

// OpenDevices opens the registry in the file at path (a missing file is
// an empty registry): the embedded engine, FileRegistry.
func OpenDevices(path string, log *slog.Logger, now func() time.Time) (*Devices, error) {
	return OpenDevicesOn(NewFileRegistry(path), log, now)
}

// OpenDevicesOn opens the registry kept by reg: a FileRegistry, or the
// SQL store's (state.SQL.Registry) that archive replicas and their
// operator commands share.
func OpenDevicesOn(reg state.Registry, log *slog.Logger, now func() time.Time) (*Devices, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	d := &Devices{reg: reg, log: log, now: now}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.refresh(); err != nil {
		return nil, err
	}
	return d, nil
}

// registryReadTimeout bounds a lookup's read of the registry (a stat, or
// one query of the shared database).
const registryReadTimeout = 10 * time.Second

// refresh reloads the registry when it changed since it was loaded.
func (d *Devices) refresh() error {
	ctx, cancel := context.WithTimeout(context.Background(), registryReadTimeout)
	defer cancel()
	known := ""
	if d.loaded {
		known = d.tag
	}
	data, tag, err := d.reg.Read(ctx, known)
	if err != nil {
		return err
	}
	if d.loaded && tag == known {
		return nil
	}
	if data == nil {
		d.devs, d.tag, d.loaded = map[string]*device{}, tag, true
		d.laid()
		return nil
	}
	devs, err := parseRegistry(data)
	if fr, ok := d.reg.(*FileRegistry); ok && err != nil && d.overlay != nil {
		// The log's states stand: keep the unreadable file aside (its
		// pending requests) and go on from the log alone.
		aside, rerr := fr.setAside()
		if rerr != nil {
			return fmt.Errorf("archive: devices %s: %w", fr.Path(), errors.Join(err, rerr))
		}
		d.log.Error("devices.json unreadable: moved aside, written anew from the archive log", "file", aside, "err", err)
		d.devs, d.tag, d.loaded = map[string]*device{}, "", true
		d.laid()
		d.dirty = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("archive: devices: %w", err)
	}
	d.devs, d.tag, d.loaded = devs, tag, true
	d.laid()
	return nil
}

// laid lays the overlay over the registry just read.
func (d *Devices) laid() {
	if d.overlay != nil && d.overlay(d.devs) {
		d.dirty = true
	}
}

// follow sets the overlay (nil: none) and lays it over the registry.
func (d *Devices) follow(overlay func(devs map[string]*device) bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.overlay = overlay
	if d.loaded {
		d.laid()
	}
}

// stale reports whether devices.json differs from the overlay (checked
// again when the file changed).
func (d *Devices) stale() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.refresh(); err != nil {
		return true
	}
	return d.dirty
}

// sync writes the registry with the overlay laid over it when the file
// differs from it.
func (d *Devices) sync(ctx context.Context) error {
	return d.update(ctx, func(map[string]*device) error { return errUnchanged })
}

// parseRegistry reads devices.json strictly.
func parseRegistry(data []byte) (map[string]*device, error) {
	if len(data) > maxRegistrySize {
		return nil, fmt.Errorf("registry of %d bytes: %w", len(data), wire.ErrTooLarge)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f registryFile
	if err := dec.Decode(&f); err != nil {
		return nil, &wire.FormatError{Format: "devices", Reason: "json", Err: err}
	}
	if f.Version != registryVersion {
		return nil, &wire.FormatError{Format: "devices", Reason: fmt.Sprintf("version %d", f.Version)}
	}
	devs := make(map[string]*device, len(f.Devices))
	for _, info := range f.Devices {
		if err := wire.CheckDevice(info.Name); err != nil {
			return nil, err
		}
		if _, dup := devs[info.Name]; dup {
			return nil, &wire.FormatError{Format: "devices", Reason: "duplicate device " + info.Name}
		}
		dv := &device{info: info}
		switch info.Status {
		case StatusPending, StatusApproved, StatusRevoked:
		default:
			return nil, &wire.FormatError{Format: "devices", Reason: fmt.Sprintf("device %s status %.20q", info.Name, info.Status)}
		}
		if len(info.Trust) > 0 {
			t, err := trustfile.ParseTrust(info.Trust)
			if err != nil {
				return nil, fmt.Errorf("device %s: %w", info.Name, err)
			}
			if t.DeviceName() != info.Name || t.KeyID != info.KeyID {
				return nil, &wire.FormatError{Format: "devices", Reason: "trust does not match device " + info.Name}
			}
			dv.trust = t
		} else if info.Status == StatusApproved {
			return nil, &wire.FormatError{Format: "devices", Reason: "approved device " + info.Name + " without trust"}
		}
		if err := parsePending(dv); err != nil {
			return nil, err
		}
		if err := checkEpochs(info); err != nil {
			return nil, err
		}
		devs[info.Name] = dv
	}
	return devs, nil
}

// update runs fn on the registry as stored, holding it exclusively
// (the engine's lock), and stores the result durably.
func (d *Devices) update(ctx context.Context, fn func(devs map[string]*device) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Read first: a file that does not parse is set aside here (with
	// the log's states laid over the registry), not under the lock.
	d.mu.Lock()
	err := d.refresh()
	d.mu.Unlock()
	if err != nil {
		return err
	}
	var devs map[string]*device
	written := false
	tag, err := d.reg.Update(ctx, func(doc []byte) ([]byte, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		cur := map[string]*device{}
		if doc != nil {
			var err error
			if cur, err = parseRegistry(doc); err != nil {
				return nil, fmt.Errorf("archive: devices: %w", err)
			}
		}
		devs = make(map[string]*device, len(cur)+1)
		for k, v := range cur {
			c := *v
			devs[k] = &c
		}
		err := fn(devs)
		unchanged := errors.Is(err, errUnchanged)
		if err != nil && !unchanged {
			return nil, err
		}
		if d.overlay != nil && d.overlay(devs) {
			unchanged = false
		}
		if unchanged && !d.dirty {
			return nil, nil
		}
		f := registryFile{Version: registryVersion}
		for _, dv := range devs {
			dv.setView()
			info := dv.info
			info.Pending = nil
			f.Devices = append(f.Devices, info)
		}
		sort.Slice(f.Devices, func(i, j int) bool { return f.Devices[i].Name < f.Devices[j].Name })
		data, err := json.MarshalIndent(f, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("archive: devices: %w", err)
		}
		written = true
		return append(data, '\n'), nil
	})
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.devs, d.tag, d.loaded = devs, tag, true
	if written {
		d.dirty = false
	}
	return nil
}

// Enroll records an enrollment request. A new device becomes pending; a
// known one keeps its status and approved key, and the request waits
// beside it (Requests, one per key id, at most MaxPendingPerDevice, the
// oldest evicted) for an operator: approved (a key rotation after a PCR
// change, the journal going on) or, for an approved device, as the key
// of a new epoch (Archive.Rekey: the TPM was cleared or the board or
// disk replaced, the journal starts again). A request for the approved
// key and trust itself changes nothing. A key that was revoked, or that
// signed a closed epoch, cannot be enrolled again. With EK roots set
// (SetEKRoots), a request whose EK certificate is missing or does not
// chain to them is refused (CheckEKCert).
func (d *Devices) Enroll(ctx context.Context, req *EnrollRequest) (DeviceInfo, error) {
	t := req.ParsedTrust()
	if t == nil {
		return DeviceInfo{}, errors.New("archive: enroll: request not parsed by ParseEnrollRequest")
	}
	name := t.DeviceName()
	d.mu.Lock()
	roots := d.ekRoots
	d.mu.Unlock()
	if roots != nil {
		if err := CheckEKCert(t, roots); err != nil {
			return DeviceInfo{}, &DeviceError{Device: name, Op: "enroll", Reason: err.Error()}
		}
	}
	var out DeviceInfo
	var evicted []Evicted
	err := d.update(ctx, func(devs map[string]*device) error {
		dv, ok := devs[name]
		if !ok {
			dv = &device{info: DeviceInfo{Name: name, Status: StatusPending}}
			devs[name] = dv
		}
		if slices.Contains(dv.info.RevokedKeys, t.KeyID) {
			return &DeviceError{Device: name, Status: dv.info.Status, Op: "enroll", Reason: "key " + t.KeyID + " was revoked"}
		}
		if ep := dv.info.closedEpochOf(t.KeyID); ep != nil {
			return &DeviceError{Device: name, Status: dv.info.Status, Op: "enroll", Reason: fmt.Sprintf("key %s signed epoch %d, closed by a rekey", t.KeyID, ep.Epoch)}
		}
		now := wire.FormatTime(d.now())
		dv.info.EnrolledAt = now
		if dv.info.Status == StatusApproved && dv.info.KeyID == t.KeyID && bytes.Equal(CompactTrust(dv.info.Trust), CompactTrust(req.Trust)) {
			removePending(dv, t.KeyID) // already approved as is
		} else {
			evicted = addPending(dv, req, now)
			evicted = append(evicted, evictTotal(devs, name, t.KeyID)...)
		}
		dv.setView()
		out = dv.info
		return nil
	})
	if err == nil {
		d.log.Info("device enrolled", "device", name, "key", t.KeyID, "status", out.Status, "pcrsMatch", req.PCRsMatch(), "pending", len(out.Requests))
		d.evicted(ctx, evicted)
	}
	return out, err
}

// Approval is what an operator approves: the pending key they checked
// (required), who they are, and whether a request whose credential was
// not activated may be approved (NoActivation: the binding of its AK to
// its EK was checked otherwise, or is accepted unchecked).
type Approval struct {
	KeyID        string
	By           string
	NoActivation bool
}

// ApproveEnrollment approves the pending request of o.KeyID of device
// name as the device's golden values. A request whose credential was
// not activated is refused unless o.NoActivation. The device's other
// pending requests stay.
func (d *Devices) ApproveEnrollment(ctx context.Context, name string, o Approval) (DeviceInfo, error) {
	if o.KeyID == "" {
		return DeviceInfo{}, &DeviceError{Device: name, Op: "approve", Reason: "no key id: name the pending key to approve"}
	}
	return d.approve(ctx, name, o)
}

// Approve approves the pending request of keyID of device name as its
// golden values, without asking for credential activation (tests and
// tools that bound the AK to the EK themselves; operators use
// ApproveEnrollment). keyID "" names the only pending request. by names
// the operator.
func (d *Devices) Approve(ctx context.Context, name, keyID, by string) (DeviceInfo, error) {
	return d.approve(ctx, name, Approval{KeyID: keyID, By: by, NoActivation: true})
}

func (d *Devices) approve(ctx context.Context, name string, o Approval) (DeviceInfo, error) {
	var out DeviceInfo
	var activated bool
	err := d.update(ctx, func(devs map[string]*device) error {
		dv, ok := devs[name]
		if !ok {
			return &DeviceError{Device: name, Op: "approve", Reason: "not enrolled"}
		}
		fail := func(reason string) error {
			return &DeviceError{Device: name, Status: dv.info.Status, Op: "approve", Reason: reason}
		}
		if len(dv.info.Requests) == 0 {
			return fail("no pending enrollment")
		}
		keyID := o.KeyID
		if keyID == "" {
			if len(dv.info.Requests) > 1 {
				return fail(fmt.Sprintf("%d pending keys (%s): name one", len(dv.info.Requests), strings.Join(dv.info.PendingKeys(), ", ")))
			}
			keyID = dv.info.Requests[0].KeyID()
		}
		p := dv.info.PendingKey(keyID)
		if p == nil {
			return fail("no pending key " + keyID + " (pending: " + strings.Join(dv.info.PendingKeys(), ", ") + ")")
		}
		t := p.Request.ParsedTrust()
		if slices.Contains(dv.info.RevokedKeys, t.KeyID) {
			return fail("key " + t.KeyID + " was revoked")
		}
		if ep := dv.info.closedEpochOf(t.KeyID); ep != nil {
			return fail(fmt.Sprintf("key %s signed epoch %d, closed by a rekey", t.KeyID, ep.Epoch))
		}
		if activated = p.Activated(); !activated && !o.NoActivation {
			return fail(notActivatedReason(name, t.KeyID, p.Challenge != ""))
		}
		dv.info.Status, dv.info.KeyID, dv.info.Trust, dv.trust = StatusApproved, t.KeyID, p.Request.Trust, t
		removePending(dv, t.KeyID)
		dv.info.ApprovedAt, dv.info.ApprovedBy = wire.FormatTime(d.now()), o.By
		dv.info.RevokedAt, dv.info.RevokeReason = "", ""
		dv.setView()
		out = dv.info
		return nil
	})
	if err == nil {
		if activated {
			d.log.Info("device approved", "device", name, "key", out.KeyID, "by", o.By, "credentialActivated", true)
		} else {
			d.log.Warn("device approved WITHOUT credential activation: its AK is not proven to be in the TPM of its EK", "device", name, "key", out.KeyID, "by", o.By)
		}
	}
	return out, err
}

// Revoke refuses everything from device name from now on; its approved
// key can never be approved again (a new key must be enrolled).
func (d *Devices) Revoke(ctx context.Context, name, reason string) (DeviceInfo, error) {
	var out DeviceInfo
	err := d.update(ctx, func(devs map[string]*device) error {
		dv, ok := devs[name]
		if !ok {
			return &DeviceError{Device: name, Op: "revoke", Reason: "not enrolled"}
		}
		if dv.info.KeyID != "" && !slices.Contains(dv.info.RevokedKeys, dv.info.KeyID) {
			dv.info.RevokedKeys = append(slices.Clone(dv.info.RevokedKeys), dv.info.KeyID)
		}
		dv.info.Status, dv.info.RevokedAt, dv.info.RevokeReason = StatusRevoked, wire.FormatTime(d.now()), reason
		out = dv.info
		return nil
	})
	if err == nil {
		d.log.Warn("device revoked", "device", name, "key", out.KeyID, "reason", reason)
	}
	return out, err
}

// List returns every device, sorted by name.
func (d *Devices) List() ([]DeviceInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.refresh(); err != nil {
		return nil, err
	}
	out := make([]DeviceInfo, 0, len(d.devs))
	for _, dv := range d.devs {
		out = append(out, dv.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Trusted returns the approved trust material of device name. Anything
// but an approved device is a *DeviceError (unknown: wraps ErrNotFound).
func (d *Devices) Trusted(name string) (*trustfile.Trust, DeviceInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.refresh(); err != nil {
		return nil, DeviceInfo{}, err
	}
	dv, ok := d.devs[name]
	if !ok {
		return nil, DeviceInfo{}, &DeviceError{Device: name, Op: "lookup", Reason: "not enrolled"}
	}
	if dv.info.Status != StatusApproved || dv.trust == nil {
		return nil, dv.info, &DeviceError{Device: name, Status: dv.info.Status, Op: "lookup", Reason: "not approved"}
	}
	return dv.trust, dv.info, nil
}
