package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/edgeseal/edgeseal/bundle/trustfile"
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

// checkTrustFile checks an approval's trustFile, when it has one (a
// statement of an earlier version names only the digest): at most
// trustfile.MaxTrustSize bytes whose SHA-256 is the statement's trust, a
// valid DEVICE.json of the statement's device and key.
func (s *OperatorStatement) checkTrustFile() error {
	if s.TrustFile == nil {
		return nil
	}
	if len(s.TrustFile) > trustfile.MaxTrustSize {
		return stmtErr(fmt.Sprintf("trustFile of %d bytes (at most %d)", len(s.TrustFile), trustfile.MaxTrustSize), nil)
	}
	if wire.FormatHash(sha256.Sum256(s.TrustFile)) != s.TrustDigest {
		return stmtErr("trustFile does not hash to trust (SHA-256 of the compacted DEVICE.json)", nil)
	}
	t, err := trustfile.ParseTrust(s.TrustFile)
	if err != nil {
		return stmtErr("trustFile", err)
	}
	if t.DeviceName() != s.Device || t.KeyID != s.KeyID {
		return stmtErr("trustFile is the DEVICE.json of "+t.DeviceName()+" key "+t.KeyID+", not of the statement's device and key", nil)
	}
	return nil
}

// CompactTrust returns a DEVICE.json without insignificant whitespace,
// the bytes an approval's trustFile carries and TrustDigest hashes.
func CompactTrust(trust []byte) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, trust); err != nil {
		return trust
	}
	return b.Bytes()
}

// checkDevice validates a device statement's fields (Device always;
// approve: KeyID and TrustDigest, TrustFile when present; revoke-key: KeyID and Reason; revoke:
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
		return s.checkTrustFile()
	case StatementDeviceRevokeKey:
		if s.KeyID == "" {
			return stmtErr("a key revocation without keyId", nil)
		}
	}
	if s.TrustDigest != "" || s.NoActivation {
		return stmtErr(fmt.Sprintf("a %s statement names a trust or noActivation", s.Type), nil)
	}
	if s.TrustFile != nil {
		return stmtErr(fmt.Sprintf("a %s statement names a trustFile", s.Type), nil)
	}
	if s.Reason == "" {
		return stmtErr(fmt.Sprintf("a %s statement without reason", s.Type), nil)
	}
	return nil
}
