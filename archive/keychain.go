package archive

import (
	"context"
	"fmt"
	"slices"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Signing keys. The archive follows a device's key rotations without an
// operator step: verify.Verify applies the key records of each bundle and
// State.Keys, stored with the device's state in the index, carries the
// key in force to the next bundle (and across restarts). An operator can
// also revoke one signing key of a device (RevokeKey, `edgeseal archive
// devices revoke-key`): a bundle sealed by it is then refused
// (CheckKeyRevoked) with a signed rejection naming the key, and the
// device keeps it in its outbox.

// CheckKeyRevoked names the archive check that the bundle's sealing key
// was not revoked by an operator.
const CheckKeyRevoked = "archive.key-revoked"

// KeyRevocation is an operator's revocation of one signing key.
type KeyRevocation struct {
	KeyID  string `json:"keyId"`
	Reason string `json:"reason"`
	At     string `json:"at"` // wire.TimeLayout
	By     string `json:"by,omitempty"`
}

// RevokeKey revokes the signing key keyID of device name: bundles it
// sealed are refused from now on and it can never be approved again. The
// device stays approved; its other keys are unaffected. Revoking a key
// again keeps the first revocation.
func (d *Devices) RevokeKey(ctx context.Context, name, keyID, reason, by string) (DeviceInfo, error) {
	if _, err := wire.ParseHash(keyID); err != nil {
		return DeviceInfo{}, &DeviceError{Device: name, Op: "revoke-key", Reason: "key id " + err.Error()}
	}
	if reason == "" {
		return DeviceInfo{}, &DeviceError{Device: name, Op: "revoke-key", Reason: "a reason is required"}
	}
	var out DeviceInfo
	err := d.update(ctx, func(devs map[string]*device) error {
		dv, ok := devs[name]
		if !ok {
			return &DeviceError{Device: name, Op: "revoke-key", Reason: "not enrolled"}
		}
		if dv.info.keyRevocation(keyID) == nil {
			dv.info.KeyRevocations = append(slices.Clone(dv.info.KeyRevocations),
				KeyRevocation{KeyID: keyID, Reason: reason, At: wire.FormatTime(d.now()), By: by})
		}
		if !slices.Contains(dv.info.RevokedKeys, keyID) {
			dv.info.RevokedKeys = append(slices.Clone(dv.info.RevokedKeys), keyID)
		}
		out = dv.info
		return nil
	})
	if err == nil {
		d.log.Warn("device signing key revoked", "device", name, "key", keyID, "reason", reason, "by", by)
	}
	return out, err
}

// keyRevocation returns the operator's revocation of keyID, nil if none.
func (i *DeviceInfo) keyRevocation(keyID string) *KeyRevocation {
	for k := range i.KeyRevocations {
		if i.KeyRevocations[k].KeyID == keyID {
			return &i.KeyRevocations[k]
		}
	}
	return nil
}

// keyChecks refuses a bundle sealed by a key the operator revoked.
func keyChecks(info DeviceInfo, st *bundle.Statement) []failure {
	if st == nil {
		return nil
	}
	id := st.Predicate.KeyID
	if r := info.keyRevocation(id); r != nil {
		return []failure{{check: CheckKeyRevoked, reason: fmt.Sprintf("bundle sealed by signing key %s, revoked by the operator at %s: %s", id, r.At, r.Reason)}}
	}
	if slices.Contains(info.RevokedKeys, id) {
		return []failure{{check: CheckKeyRevoked, reason: fmt.Sprintf("bundle sealed by signing key %s, which was revoked", id)}}
	}
	return nil
}
