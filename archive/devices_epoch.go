package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// EpochInfo is a closed epoch of a device in the registry: its trust
// material, kept so that its bundles stay verifiable and its key is
// recognised, and the summary its rekey statement logged.
type EpochInfo struct {
	Epoch          uint64          `json:"epoch"`
	KeyID          string          `json:"keyId"`
	Trust          json.RawMessage `json:"trust"`
	ApprovedAt     string          `json:"approvedAt,omitempty"`
	ClosedAt       string          `json:"closedAt"`
	ClosedBy       string          `json:"closedBy"`
	Reason         string          `json:"reason,omitempty"`
	Bundles        uint64          `json:"bundles"`
	CheckpointSize uint64          `json:"checkpointSize"`
	CheckpointRoot string          `json:"checkpointRoot,omitempty"`
	Counter        uint64          `json:"counter"`
	Bundle         string          `json:"bundle,omitempty"`
	// StatementIndex is the rekey statement's index in the archive log.
	StatementIndex uint64 `json:"statementIndex"`
}

// CurrentEpoch is the device's current epoch (1 before any rekey).
func (i DeviceInfo) CurrentEpoch() uint64 { return epochOf(i.Epoch) }

// closedEpochOf returns the closed epoch signed by keyID, nil when none.
func (i DeviceInfo) closedEpochOf(keyID string) *EpochInfo {
	for k := range i.Epochs {
		if i.Epochs[k].KeyID == keyID {
			return &i.Epochs[k]
		}
	}
	return nil
}

// errUnchanged ends a registry update without writing.
var errUnchanged = errors.New("archive: registry unchanged")

// checkEpochs validates a device's epochs in devices.json: closed epochs
// numbered 1, 2, ... with valid trust of the device, the current epoch
// the next one, no key twice.
func checkEpochs(info DeviceInfo) error {
	bad := func(reason string) error {
		return &wire.FormatError{Format: "devices", Reason: "device " + info.Name + " " + reason}
	}
	if len(info.Epochs) == 0 {
		if info.Epoch > 1 {
			return bad(fmt.Sprintf("at epoch %d without closed epochs", info.Epoch))
		}
		return nil
	}
	if info.Epoch != uint64(len(info.Epochs))+1 {
		return bad(fmt.Sprintf("at epoch %d after %d closed epochs", info.Epoch, len(info.Epochs)))
	}
	keys := []string{info.KeyID}
	for k, ep := range info.Epochs {
		if ep.Epoch != uint64(k)+1 {
			return bad(fmt.Sprintf("closed epoch %d listed as number %d", ep.Epoch, k+1))
		}
		t, err := trustfile.ParseTrust(ep.Trust)
		if err != nil {
			return fmt.Errorf("device %s epoch %d: %w", info.Name, ep.Epoch, err)
		}
		if t.DeviceName() != info.Name || t.KeyID != ep.KeyID {
			return bad(fmt.Sprintf("epoch %d trust does not match", ep.Epoch))
		}
		if slices.Contains(keys, ep.KeyID) {
			return bad(fmt.Sprintf("epoch %d key %s used twice", ep.Epoch, ep.KeyID))
		}
		keys = append(keys, ep.KeyID)
	}
	return nil
}

// rekeyCandidate returns the approved device name and its pending
// enrollment of keyID, the key of the epoch a rekey would open.
func (d *Devices) rekeyCandidate(name, keyID string) (DeviceInfo, *EnrollRequest, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.refresh(); err != nil {
		return DeviceInfo{}, nil, err
	}
	dv, ok := d.devs[name]
	if !ok {
		return DeviceInfo{}, nil, &DeviceError{Device: name, Op: "rekey", Reason: "not enrolled"}
	}
	info := dv.info
	fail := func(reason string) (DeviceInfo, *EnrollRequest, error) {
		return info, nil, &DeviceError{Device: name, Status: info.Status, Op: "rekey", Reason: reason}
	}
	switch {
	case info.Status != StatusApproved:
		return fail("only an approved device is rekeyed (approve a pending device, enroll a revoked one anew)")
	case keyID == info.KeyID:
		return fail("key " + keyID + " is the current epoch's key; a new epoch needs the device's new key")
	case slices.Contains(info.RevokedKeys, keyID):
		return fail("key " + keyID + " was revoked")
	case info.closedEpochOf(keyID) != nil:
		return fail(fmt.Sprintf("key %s signed epoch %d, closed by a rekey", keyID, info.closedEpochOf(keyID).Epoch))
	case len(info.Requests) == 0:
		return fail("no pending enrollment: enroll the device's new key first (edgeseal agent enroll, or archive enroll-file)")
	case info.PendingKey(keyID) == nil:
		return fail("no pending key " + keyID + " (pending: " + strings.Join(info.PendingKeys(), ", ") + ")")
	}
	return info, info.PendingKey(keyID).Request, nil
}

// applyRekey records a logged rekey statement (at log index seq) in the
// registry: the current epoch is closed with its trust and the
// statement's summary, the statement's key and trust become the
// device's. A statement already applied changes nothing, so the registry
// can be brought up to date from the log any number of times.
func (d *Devices) applyRekey(ctx context.Context, s *EpochStatement, seq uint64) error {
	changed := false
	err := d.update(ctx, func(devs map[string]*device) error {
		dv, ok := devs[s.Device]
		if !ok {
			return &DeviceError{Device: s.Device, Op: "rekey", Reason: "not enrolled"}
		}
		cur := dv.info.CurrentEpoch()
		if cur >= s.Epoch {
			return errUnchanged
		}
		if cur != s.Closed.Epoch || dv.info.KeyID != s.Closed.KeyID {
			return &DeviceError{Device: s.Device, Status: dv.info.Status, Op: "rekey", Reason: fmt.Sprintf(
				"the registry is at epoch %d key %s, the logged rekey closes epoch %d key %s", cur, dv.info.KeyID, s.Closed.Epoch, s.Closed.KeyID)}
		}
		c := s.Closed
		dv.info.Epochs = append(slices.Clone(dv.info.Epochs), EpochInfo{
			Epoch: c.Epoch, KeyID: c.KeyID, Trust: dv.info.Trust, ApprovedAt: dv.info.ApprovedAt,
			ClosedAt: s.Time, ClosedBy: s.By, Reason: s.Reason, Bundles: c.Bundles, CheckpointSize: c.CheckpointSize,
			CheckpointRoot: c.CheckpointRoot, Counter: c.Counter, Bundle: c.Bundle, StatementIndex: seq,
		})
		dv.info.Epoch, dv.info.KeyID, dv.info.Trust, dv.trust = s.Epoch, s.KeyID, json.RawMessage(s.Trust), s.ParsedTrust()
		dv.info.Status, dv.info.ApprovedAt, dv.info.ApprovedBy = StatusApproved, s.Time, s.By
		removePending(dv, s.KeyID)
		dv.setView()
		changed = true
		return nil
	})
	if err == nil && changed {
		d.log.Warn("device rekeyed", "device", s.Device, "epoch", s.Epoch, "key", s.KeyID, "closedKey", s.Closed.KeyID, "by", s.By)
	}
	return err
}

// EnrollNextSteps are the operator commands for a pending enrollment of
// keyID: approve a new device; for an approved one, a rekey (the
// device's journal starts again as a new epoch) or an approval (the
// journal goes on under the new key).
func EnrollNextSteps(info DeviceInfo, keyID string) []string {
	if info.Status != StatusApproved {
		return []string{"approve with: edgeseal archive devices approve " + info.Name + " --key " + keyID}
	}
	return []string{
		fmt.Sprintf("if the device's TPM was cleared or its board or disk replaced (its journal starts again), continue its history as epoch %d: edgeseal archive devices rekey %s --key %s",
			info.CurrentEpoch()+1, info.Name, keyID),
		"if its journal goes on (a new key after a firmware update), approve with: edgeseal archive devices approve " + info.Name + " --key " + keyID,
	}
}
