package archive

import (
	"fmt"
	"unicode/utf8"

	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Signed device statements: with operator keys configured, an operator's
// approval or revocation of a device, or revocation of one of its keys,
// is an OperatorStatement in the archive log (DeviceStatement), and the
// device states the archive trusts are rebuilt from the log, not read
// from devices.json.
const (
	StatementDeviceApprove   = "device.approve"
	StatementDeviceRevoke    = "device.revoke"
	StatementDeviceRevokeKey = "device.revoke-key"
)

// isDeviceStatement tells the device statement types.
func isDeviceStatement(typ string) bool {
	return typ == StatementDeviceApprove || typ == StatementDeviceRevoke || typ == StatementDeviceRevokeKey
}

// checkDevice validates a device statement's fields (Device always;
// approve: KeyID and TrustDigest; revoke-key: KeyID and Reason; revoke:
// Reason) and that it names nothing of a hold or purge.
func (s *OperatorStatement) checkDevice() error {
	if s.Case != "" || s.Target != nil || s.Objects != nil || s.Purged != nil {
		return stmtErr("a device statement names a case, target, objects or purged objects", nil)
	}
	if err := wire.CheckDevice(s.Device); err != nil {
		return err
	}
	if len(s.KeyID) > maxOperatorText || !utf8.ValidString(s.KeyID) {
		return stmtErr("keyId longer than 1024 bytes or not UTF-8", nil)
	}
	switch s.Type {
	case StatementDeviceApprove:
		if s.KeyID == "" {
			return stmtErr("an approval without keyId", nil)
		}
		if _, err := wire.ParseHash(s.TrustDigest); err != nil {
			return err
		}
		return nil
	case StatementDeviceRevokeKey:
		if s.KeyID == "" {
			return stmtErr("a key revocation without keyId", nil)
		}
	}
	if s.TrustDigest != "" || s.NoActivation {
		return stmtErr(fmt.Sprintf("a %s statement names a trust or noActivation", s.Type), nil)
	}
	if s.Reason == "" {
		return stmtErr(fmt.Sprintf("a %s statement without reason", s.Type), nil)
	}
	return nil
}
