package trustfile

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/internal/strict"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"

	"github.com/edgeseal/edgeseal/tpm/attest"
)

// TrustVersion is the DEVICE.json version this package writes for a
// device whose keys are bound to fixed PCR values; it reads it too.
const TrustVersion = 1

// TrustVersionPCRPolicy is the DEVICE.json version of a device whose keys
// are bound to an operator's PCR-policy key (PCRPolicyKey): its
// policyDigest is PolicyAuthorize(policy key, PCRPolicyRef(device)) and its
// goldenPcrs are the values at enrollment, replaced along the chain by
// the device's PCR authorization records.
const TrustVersionPCRPolicy = 2

// MaxTrustSize bounds a DEVICE.json file.
const MaxTrustSize = 64 << 10

// Trust is a device's approved public trust material (DEVICE.json): what
// an offline verifier needs besides the bundle.
type Trust struct {
	Version       int                 `json:"version"`
	Site          string              `json:"site"`
	Device        string              `json:"device"` // name within the site
	Origin        string              `json:"origin"` // edgeseal/<site>/<device>
	EKPublic      []byte              `json:"ekPublic"`
	EKCert        []byte              `json:"ekCert,omitempty"`
	AKPublic      []byte              `json:"akPublic"`
	SigningPublic []byte              `json:"signingPublic"`
	Certification custody.Attestation `json:"certification"`
	PCRSelection  bundle.PCRSelection `json:"pcrSelection"`
	GoldenPCRs    map[string]string   `json:"goldenPcrs"`
	PolicyDigest  []byte              `json:"policyDigest"`
	KeyID         string              `json:"keyId"`
	// PCRPolicyKey is the PKIX DER of the operator's PCR-policy key
	// (version 2 only).
	PCRPolicyKey []byte `json:"pcrPolicyKey,omitempty"`
	// PolicyAdmins, when set, pins the device's policy admin set:
	// "sha256:" and the hex SHA-256 of the set's canonical JSON
	// (docs/formats.md, "Signed policy"). Every policy.change must carry
	// that set, and every export must follow a policy.change. Optional in
	// both versions; a verifier that does not know the field refuses the
	// file (unknown fields are errors), which fails closed.
	PolicyAdmins string `json:"policyAdmins,omitempty"`

	ak, signing *attest.Public
	pcrKey      *ecdsa.PublicKey
	pcrs        []int
	golden      map[int][]byte
}

// NewTrust builds and checks the trust material of site/device from a
// TPM identity.
func NewTrust(site, device string, id custody.Identity) (*Trust, error) {
	q := bundle.NewSealQuote(nil, nil, id.PCRs, id.PCRValues)
	t := &Trust{
		Version: TrustVersion, Site: site, Device: device, Origin: merkle.Origin(site + "/" + device),
		EKPublic: id.EKPublic, EKCert: id.EKCert, AKPublic: id.AKPublic, SigningPublic: id.SigningPublic,
		Certification: id.Certify, PCRSelection: q.PCRSelection, GoldenPCRs: q.PCRValues,
		PolicyDigest: id.PolicyDigest, KeyID: id.KeyID,
	}
	if id.PCRPolicyKey != nil {
		t.Version, t.PCRPolicyKey = TrustVersionPCRPolicy, id.PCRPolicyKey
	}
	if err := t.Check(); err != nil {
		return nil, err
	}
	return t, nil
}

// Marshal returns DEVICE.json, indented for operators.
func (t *Trust) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("bundle: trust: %w", err)
	}
	return append(b, '\n'), nil
}

// ParseTrust reads DEVICE.json strictly: known fields only, version 1,
// parsable keys, key id and policy digest matching, and the signing key's
// certification verifying under the AK.
func ParseTrust(b []byte) (*Trust, error) {
	if len(b) > MaxTrustSize {
		return nil, fmt.Errorf("%w: trust of %d bytes", wire.ErrTooLarge, len(b))
	}
	var t Trust
	if err := strict.Unmarshal(b, &t); err != nil {
		return nil, wire.WrapFormat("trust", "json", err)
	}
	if err := t.Check(); err != nil {
		return nil, err
	}
	return &t, nil
}

// Check validates t and parses its keys and golden values (NewTrust and
// ParseTrust call it; a Trust built by hand needs it before use).
func (t *Trust) Check() error {
	bad := func(reason string, args ...any) error { return wire.FormatErr("trust", reason, args...) }
	if t.Version != TrustVersion && t.Version != TrustVersionPCRPolicy {
		return bad("version %d", t.Version)
	}
	if wire.CheckDevice(t.Site+"/"+t.Device) != nil || t.Origin != merkle.Origin(t.Site+"/"+t.Device) {
		return bad("site %.64q device %.64q origin %.100q", t.Site, t.Device, t.Origin)
	}
	if _, err := x509.ParsePKIXPublicKey(t.EKPublic); err != nil {
		return wire.WrapFormat("trust", "ek public", err)
	}
	if len(t.EKCert) > 0 {
		if _, err := x509.ParseCertificate(t.EKCert); err != nil {
			return wire.WrapFormat("trust", "ek certificate", err)
		}
	}
	var err error
	if t.ak, err = attest.ParsePublic(t.AKPublic); err != nil {
		return wire.WrapFormat("trust", "ak public", err)
	}
	if t.signing, err = attest.ParsePublic(t.SigningPublic); err != nil {
		return wire.WrapFormat("trust", "signing public", err)
	}
	if t.KeyID != custody.KeyID(t.SigningPublic) {
		return bad("key id %.80q does not name the signing key", t.KeyID)
	}
	q := bundle.SealQuote{PCRSelection: t.PCRSelection, PCRValues: t.GoldenPCRs}
	if t.pcrs, t.golden, err = q.Values(); err != nil {
		return wire.WrapFormat("trust", "golden pcrs", err)
	}
	if err := t.checkPolicy(); err != nil {
		return err
	}
	if t.PolicyAdmins != "" {
		if _, err := wire.ParseHash(t.PolicyAdmins); err != nil {
			return wire.WrapFormat("trust", "policy admins", err)
		}
	}
	if err := attest.VerifyCertify(t.ak, t.Certification.Attest, t.Certification.Signature, t.signing); err != nil {
		return wire.WrapFormat("trust", "certification", err)
	}
	return nil
}

// checkPolicy checks policyDigest: PolicyPCR of the golden values
// (version 1), or PolicyAuthorize by the PCR-policy key (version 2).
func (t *Trust) checkPolicy() error {
	bad := func(reason string, args ...any) error { return wire.FormatErr("trust", reason, args...) }
	if t.Version == TrustVersion {
		if t.PCRPolicyKey != nil {
			return bad("version %d with a pcr policy key", t.Version)
		}
		policy, err := attest.PolicyPCRDigest(t.pcrs, t.golden)
		if err != nil {
			return wire.WrapFormat("trust", "golden pcrs", err)
		}
		if !bytes.Equal(policy, t.PolicyDigest) {
			return bad("policy digest does not match the golden pcrs")
		}
		return nil
	}
	k, err := x509.ParsePKIXPublicKey(t.PCRPolicyKey)
	if err != nil {
		return wire.WrapFormat("trust", "pcr policy key", err)
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return bad("pcr policy key is not ECDSA")
	}
	policy, err := PCRAuthorizationDigest(ek, t.DeviceName())
	if err != nil {
		return wire.WrapFormat("trust", "pcr policy key", err)
	}
	if !bytes.Equal(policy, t.PolicyDigest) {
		return bad("policy digest is not PolicyAuthorize by the pcr policy key for this device")
	}
	t.pcrKey = ek
	return nil
}

// PCRPolicy returns the operator's PCR-policy key, nil for a version 1
// trust (keys bound to fixed PCR values).
func (t *Trust) PCRPolicy() *ecdsa.PublicKey { return t.pcrKey }

// DeviceName is "<site>/<name>" as records write it.
func (t *Trust) DeviceName() string { return t.Site + "/" + t.Device }

// SigningKey is the approved signing key.
func (t *Trust) SigningKey() *ecdsa.PublicKey { return t.signing.Key }

// PCRs returns the golden PCR selection and values.
func (t *Trust) PCRs() ([]int, map[int][]byte) {
	values := make(map[int][]byte, len(t.golden))
	for p, v := range t.golden {
		values[p] = bytes.Clone(v)
	}
	return slices.Clone(t.pcrs), values
}

// AK is the parsed attestation key public area (nil before Check).
func (t *Trust) AK() *attest.Public { return t.ak }

// Signing is the parsed signing key public area (nil before Check).
func (t *Trust) Signing() *attest.Public { return t.signing }
