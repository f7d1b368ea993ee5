package trustfile

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/internal/strict"
	"github.com/edgeseal/edgeseal/bundle/wire"

	"github.com/edgeseal/edgeseal/tpm/attest"
	"github.com/gowebpki/jcs"
)

// PCR authorization statements. A device whose signing key and data key
// are bound with TPM2_PolicyAuthorize to an operator's offline PCR-policy
// key can use them under any PCR values the operator signs for it. The
// statement carries that signature with what it approves; the agent
// journals it (record type TypePCRsAuthorized, body = the statement), and
// the verifier and the archive take its values as the golden PCR values
// from that record on.

// PCRAuthVersion is the statement version this package reads and writes.
const PCRAuthVersion = 1

// MaxPCRAuthSize bounds a statement.
const MaxPCRAuthSize = 8 << 10

// maxPCRAuthSig bounds the DER signature (a P-256 ECDSA one is at most 72).
const maxPCRAuthSig = 80

// pcrPolicyRefPrefix starts the text whose SHA-256 is a device's policyRef.
const pcrPolicyRefPrefix = "edgeseal pcr policy v1\n"

// PCRPolicyRef is the policyRef that binds a device's keys and its
// authorizations: SHA-256("edgeseal pcr policy v1\n" || "<site>/<name>").
// The TPM compares it with the one in the keys' authPolicy, so an
// authorization signed for one device does nothing on another that trusts
// the same operator key; the version line keeps these signatures apart from
// anything else the key might sign.
func PCRPolicyRef(device string) []byte {
	sum := sha256.Sum256([]byte(pcrPolicyRefPrefix + device))
	return sum[:]
}

// PCRPolicyKeyID names a PCR-policy key: "sha256:<hex of SHA-256(PKIX DER)>".
func PCRPolicyKeyID(key *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return "", fmt.Errorf("bundle: pcr policy key: %w", err)
	}
	return wire.FormatHash(sha256.Sum256(der)), nil
}

// PCRAuthorizationDigest is the policy digest of a device's keys bound to
// key: TPM2_PolicyAuthorize(Name of key, PCRPolicyRef(device)).
func PCRAuthorizationDigest(key *ecdsa.PublicKey, device string) ([]byte, error) {
	area, err := attest.PolicyKeyPublic(key)
	if err != nil {
		return nil, err
	}
	return attest.PolicyAuthorizeDigest(attest.Name(area), PCRPolicyRef(device)), nil
}

// PCRAuthorization is a signed PCR authorization statement. Its JSON form
// (members in RFC 8785 order, as Marshal writes them):
//
//	approvedPolicy  hex of PolicyPCR(pcrSelection, pcrValues), recomputed
//	device          "<site>/<name>"
//	pcrSelection    {"hash":"sha256","pcrs":[0,2,4,7]}
//	pcrValues       {"0":"<hex>",...}, one per selected PCR
//	policyKeyId     PCRPolicyKeyID of the signing key
//	policyRef       hex of PCRPolicyRef(device), recomputed
//	signature       base64 of the ASN.1 DER ECDSA P-256 signature over
//	                SHA-256(approvedPolicy || policyRef), the bytes
//	                TPM2_VerifySignature checks
//	statementSignature  base64 of the DER ECDSA signature by the same key
//	                over SHA-256("edgeseal pcr authorization v1\n" ||
//	                the canonical statement without this member): it
//	                covers the time, which the TPM's signature cannot
//	time            when it was signed (TimeLayout); verifiers refuse an
//	                authorization not signed after the one in force
//	version         1
type PCRAuthorization struct {
	ApprovedPolicy string              `json:"approvedPolicy"`
	Device         string              `json:"device"`
	PCRSelection   bundle.PCRSelection `json:"pcrSelection"`
	PCRValues      map[string]string   `json:"pcrValues"`
	PolicyKeyID    string              `json:"policyKeyId"`
	PolicyRef      string              `json:"policyRef"`
	Signature      []byte              `json:"signature"`
	// StatementSignature is omitted only while it is being computed.
	StatementSignature []byte `json:"statementSignature,omitempty"`
	Time               string `json:"time"`
	Version            int    `json:"version"`

	pcrs     []int
	values   map[int][]byte
	approved []byte
	ref      []byte
}

// PCRAuthError reports a statement that does not parse or does not verify;
// Field names what is wrong ("json", "version", "device", "pcrs",
// "approvedPolicy", "policyRef", "policyKeyId", "time", "signature").
type PCRAuthError struct {
	Field  string
	Reason string
}

func (e *PCRAuthError) Error() string {
	return "bundle: pcr authorization: " + e.Field + ": " + e.Reason
}

func pcrAuthErr(field, format string, args ...any) error {
	return &PCRAuthError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// SignPCRAuthorization has signer, the operator's PCR-policy key (an
// ECDSA P-256 crypto.Signer), authorize values of pcrs for device.
func SignPCRAuthorization(signer crypto.Signer, device string, pcrs []int, values map[int][]byte, at time.Time) (*PCRAuthorization, error) {
	pub, ok := signer.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, pcrAuthErr("policyKeyId", "the PCR policy key must be ECDSA P-256")
	}
	if err := wire.CheckDevice(device); err != nil {
		return nil, err
	}
	approved, err := attest.PolicyPCRDigest(pcrs, values)
	if err != nil {
		return nil, pcrAuthErr("pcrs", "%v", err)
	}
	ref := PCRPolicyRef(device)
	sig, err := signer.Sign(rand.Reader, attest.AuthorizationDigest(approved, ref), crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("bundle: pcr authorization: sign: %w", err)
	}
	kid, err := PCRPolicyKeyID(pub)
	if err != nil {
		return nil, err
	}
	q := bundle.NewSealQuote(nil, nil, pcrs, values)
	a := &PCRAuthorization{
		ApprovedPolicy: hex.EncodeToString(approved), Device: device,
		PCRSelection: q.PCRSelection, PCRValues: q.PCRValues, PolicyKeyID: kid,
		PolicyRef: hex.EncodeToString(ref), Signature: sig, Time: wire.FormatTime(at), Version: PCRAuthVersion,
	}
	tbs, err := a.signedBytes()
	if err != nil {
		return nil, err
	}
	if a.StatementSignature, err = signer.Sign(rand.Reader, tbs, crypto.SHA256); err != nil {
		return nil, fmt.Errorf("bundle: pcr authorization: sign statement: %w", err)
	}
	raw, err := a.Marshal()
	if err != nil {
		return nil, err
	}
	return ParsePCRAuthorization(raw)
}

// pcrAuthStatementPrefix starts what the statement signature covers.
const pcrAuthStatementPrefix = "edgeseal pcr authorization v1\n"

// signedBytes is the digest the statement signature covers:
// SHA-256(prefix || canonical statement without statementSignature).
func (a *PCRAuthorization) signedBytes() ([]byte, error) {
	c := *a
	c.StatementSignature = nil
	raw, err := c.Marshal()
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write([]byte(pcrAuthStatementPrefix))
	h.Write(raw)
	return h.Sum(nil), nil
}

// Marshal returns the canonical (RFC 8785) JSON of the statement.
func (a *PCRAuthorization) Marshal() ([]byte, error) {
	raw, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("bundle: pcr authorization: %w", err)
	}
	return jcs.Transform(raw)
}

// ParsePCRAuthorization reads a statement strictly: at most
// MaxPCRAuthSize bytes, known fields only, version 1, a valid device and
// SHA-256 PCR selection with one 32-byte value for each PCR, approvedPolicy
// and policyRef equal to what the values and the device give, a key id, a
// time and a signature of plausible size. It does not check the signature:
// see Verify.
func ParsePCRAuthorization(b []byte) (*PCRAuthorization, error) {
	if len(b) > MaxPCRAuthSize {
		return nil, fmt.Errorf("%w: pcr authorization of %d bytes", wire.ErrTooLarge, len(b))
	}
	var a PCRAuthorization
	if err := strict.Unmarshal(b, &a); err != nil {
		return nil, pcrAuthErr("json", "%v", err)
	}
	if a.Version != PCRAuthVersion {
		return nil, pcrAuthErr("version", "%d, want %d", a.Version, PCRAuthVersion)
	}
	if err := wire.CheckDevice(a.Device); err != nil {
		return nil, pcrAuthErr("device", "%v", err)
	}
	q := bundle.SealQuote{PCRSelection: a.PCRSelection, PCRValues: a.PCRValues}
	pcrs, values, err := q.Values()
	if err != nil {
		return nil, pcrAuthErr("pcrs", "%v", err)
	}
	approved, err := attest.PolicyPCRDigest(pcrs, values)
	if err != nil {
		return nil, pcrAuthErr("pcrs", "%v", err)
	}
	if a.ApprovedPolicy != hex.EncodeToString(approved) {
		return nil, pcrAuthErr("approvedPolicy", "%.80q is not PolicyPCR of the values (%x)", a.ApprovedPolicy, approved)
	}
	ref := PCRPolicyRef(a.Device)
	if a.PolicyRef != hex.EncodeToString(ref) {
		return nil, pcrAuthErr("policyRef", "%.80q is not the policyRef of %s", a.PolicyRef, a.Device)
	}
	if _, err := wire.ParseHash(a.PolicyKeyID); err != nil {
		return nil, pcrAuthErr("policyKeyId", "%.80q is not sha256:<hex>", a.PolicyKeyID)
	}
	if _, err := wire.ParseTime(a.Time); err != nil {
		return nil, pcrAuthErr("time", "%v", err)
	}
	if len(a.Signature) < 8 || len(a.Signature) > maxPCRAuthSig {
		return nil, pcrAuthErr("signature", "%d bytes", len(a.Signature))
	}
	if len(a.StatementSignature) < 8 || len(a.StatementSignature) > maxPCRAuthSig {
		return nil, pcrAuthErr("statementSignature", "%d bytes", len(a.StatementSignature))
	}
	a.pcrs, a.values, a.approved, a.ref = pcrs, values, approved, ref
	return &a, nil
}

// Verify checks that the statement is for device and signed by key, the
// PCR-policy key the device's keys are bound to: the key id, and the ECDSA
// signature over SHA-256(approvedPolicy || policyRef), the same check the
// TPM makes. a must come from ParsePCRAuthorization or
// SignPCRAuthorization.
func (a *PCRAuthorization) Verify(key *ecdsa.PublicKey, device string) error {
	if a.approved == nil {
		return pcrAuthErr("json", "not parsed")
	}
	if a.Device != device {
		return pcrAuthErr("device", "authorizes %s, this device is %s", a.Device, device)
	}
	kid, err := PCRPolicyKeyID(key)
	if err != nil {
		return err
	}
	if a.PolicyKeyID != kid {
		return pcrAuthErr("policyKeyId", "signed by key %.80s, the device's PCR policy key is %s", a.PolicyKeyID, kid)
	}
	if !ecdsa.VerifyASN1(key, attest.AuthorizationDigest(a.approved, a.ref), a.Signature) {
		return pcrAuthErr("signature", "does not verify under the PCR policy key %s", kid)
	}
	tbs, err := a.signedBytes()
	if err != nil {
		return err
	}
	if !ecdsa.VerifyASN1(key, tbs, a.StatementSignature) {
		return pcrAuthErr("statementSignature", "does not verify under the PCR policy key %s (the statement was changed after signing)", kid)
	}
	return nil
}

// PCRs returns the authorized selection and values.
func (a *PCRAuthorization) PCRs() ([]int, map[int][]byte) {
	values := make(map[int][]byte, len(a.values))
	for p, v := range a.values {
		values[p] = bytes.Clone(v)
	}
	return slices.Clone(a.pcrs), values
}

// ApprovedPolicyDigest is the PolicyPCR digest the statement approves.
func (a *PCRAuthorization) ApprovedPolicyDigest() []byte { return bytes.Clone(a.approved) }
