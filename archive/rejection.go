package archive

import (
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"strings"

	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/sync"
)

// RejectionReport is the archive's account of a refused bundle. Checks names
// the failed checks (verify.Check* names and this package's Check*
// names); Reasons holds one line per failed check. Alarm is set for a
// fork (the device signed two histories).
//
// It is kept in full beside the quarantined bundle; the signed reply the
// device receives is the wire rejection of package sync (DSSE Ed25519,
// payload type sync.RejectionPayloadType, verified by the agent with
// sync.VerifyRejection): bundle digest, device, the reasons joined in one
// line, the check names and the time.
type RejectionReport struct {
	BundleDigest string   `json:"bundleDigest"` // "sha256:.." of the bytes received
	Device       string   `json:"device"`       // "<site>/<name>" the bundle came in as
	Checks       []string `json:"checks"`
	Reasons      []string `json:"reasons"`
	Alarm        bool     `json:"alarm"`
	Time         string   `json:"time"` // wire.TimeLayout
}

// maxWireReason is the longest reason line the wire rejection carries.
const maxWireReason = 4096

// Sign returns the signed wire rejection (a sync.Rejection), carrying the
// archive's key announcements chain (none before its first rotation).
func (r *RejectionReport) Sign(keyID string, key crypto.Signer, chain ...[]byte) ([]byte, error) {
	reason := strings.Join(r.Reasons, "; ")
	if r.Alarm {
		reason = "ALARM: " + reason
	}
	if len(reason) > maxWireReason {
		reason = reason[:maxWireReason-3] + "..."
	}
	return sync.SignRejection(&sync.Rejection{
		BundleDigest: r.BundleDigest, Device: r.Device, Reason: reason, Checks: r.Checks, Time: r.Time, KeyChain: chain,
	}, keyID, key)
}

// KeyID names the archive's Ed25519 public key in receipts and
// rejections: "sha256:<hex of SHA-256(PKIX DER of the key)>".
func KeyID(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil { // only for a key of the wrong length
		return "sha256:invalid"
	}
	return wire.FormatHash(sha256.Sum256(der))
}
