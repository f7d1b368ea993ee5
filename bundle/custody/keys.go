package custody

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/internal/strict"
	"github.com/edgeseal/edgeseal/bundle/wire"

	"github.com/gowebpki/jcs"

	"github.com/edgeseal/edgeseal/tpm/attest"
)

// Signing-key records (docs/keys.md): key.create names the signing key in
// force with its certification by the AK; key.rotate carries a rotation
// statement signed by the old key that names the new one; key.revoke
// retires a key. Their bodies are parsed strictly by ParseKeyCreateBody,
// ParseKeyRotateBody and ParseKeyRevokeBody.

// KeyBodyVersion is the only version of the key record bodies and of the
// rotation statement.
const KeyBodyVersion = 1

// KeyRotatePayloadType is the DSSE payload type of a rotation statement.
const KeyRotatePayloadType = "application/vnd.edgeseal.key-rotate+json"

// KeyRotateStatementType is the "type" member of a rotation statement.
const KeyRotateStatementType = "edgeseal.key.rotate"

// KeyRevokeRotated is the reason of the key.revoke the agent journals for
// the key a rotation replaced.
const KeyRevokeRotated = "rotated"

// Bounds of the key formats.
const (
	maxKeyBodySize  = 16 << 10 // one key record body or rotation statement
	maxKeyReason    = 256      // bytes of a reason
	maxKeyPublic    = 1024     // TPMT_PUBLIC
	maxKeyAttest    = 1024     // TPMS_ATTEST
	maxKeySignature = 512      // TPMT_SIGNATURE
)

// KeyCert is a TPM2_Certify of a key by the AK: the TPMS_ATTEST and the
// TPMT_SIGNATURE over it.
type KeyCert struct {
	Attest    []byte `json:"attest"`
	Signature []byte `json:"signature"`
}

// KeyCreateBody is the body of a key.create record: the signing key in
// force when the journal first saw it.
type KeyCreateBody struct {
	V             int     `json:"v"`
	KeyID         string  `json:"keyId"`         // KeyID(Public)
	Public        []byte  `json:"public"`        // TPMT_PUBLIC of the signing key
	Certification KeyCert `json:"certification"` // the AK's TPM2_Certify of it
	AKID          string  `json:"akId"`          // KeyID of the AK's TPMT_PUBLIC
	PCRs          []int   `json:"pcrs"`          // the PCR selection its policy covers
	PolicyDigest  []byte  `json:"policyDigest"`  // = the key's authPolicy
}

// KeyRotateStatement is the DSSE payload (KeyRotatePayloadType) of a
// rotation, signed by the old key before the new one is put in force.
type KeyRotateStatement struct {
	V                int     `json:"v"`
	Type             string  `json:"type"`   // KeyRotateStatementType
	Device           string  `json:"device"` // "<site>/<name>"
	OldKeyID         string  `json:"oldKeyId"`
	NewKeyID         string  `json:"newKeyId"`  // KeyID(NewPublic)
	NewPublic        []byte  `json:"newPublic"` // TPMT_PUBLIC
	NewCertification KeyCert `json:"newCertification"`
	AKID             string  `json:"akId"`
	Reason           string  `json:"reason"`
	Time             string  `json:"time"` // TimeLayout
}

// KeyRotateBody is the body of a key.rotate record.
type KeyRotateBody struct {
	V         int            `json:"v"`
	OldKeyID  string         `json:"oldKeyId"`
	NewKeyID  string         `json:"newKeyId"`
	Reason    string         `json:"reason"`
	Statement *dsse.Envelope `json:"statement"` // DSSE, signed by OldKeyID
}

// KeyRevokeBody is the body of a key.revoke record.
type KeyRevokeBody struct {
	V      int    `json:"v"`
	KeyID  string `json:"keyId"`
	Reason string `json:"reason"`
}

// NewKeyCreateBody builds the key.create body of the signing key of id.
func NewKeyCreateBody(id Identity) KeyCreateBody {
	return KeyCreateBody{
		V: KeyBodyVersion, KeyID: id.KeyID, Public: id.SigningPublic,
		Certification: KeyCert{Attest: id.Certify.Attest, Signature: id.Certify.Signature},
		AKID:          KeyID(id.AKPublic), PCRs: slices.Clone(id.PCRs), PolicyDigest: id.PolicyDigest,
	}
}

// Marshal returns the canonical (RFC 8785) bytes of the statement, after
// checking it as ParseKeyRotateStatement would.
func (s *KeyRotateStatement) Marshal() ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return canonicalJSON("key rotate statement", s)
}

func canonicalJSON(format string, v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, wire.WrapFormat(format, "json", err)
	}
	out, err := jcs.Transform(raw)
	if err != nil {
		return nil, wire.WrapFormat(format, "canonicalize", err)
	}
	return out, nil
}

// parseKeyJSON decodes b strictly into v: bounded, known fields only,
// canonical JSON.
func parseKeyJSON(format string, b []byte, v any) error {
	if len(b) > maxKeyBodySize {
		return fmt.Errorf("%w: %s of %d bytes", wire.ErrTooLarge, format, len(b))
	}
	if err := strict.Unmarshal(b, v); err != nil {
		return wire.WrapFormat(format, "json", err)
	}
	canon, err := canonicalJSON(format, v)
	if err != nil {
		return err
	}
	if !bytes.Equal(canon, b) {
		return &wire.NotCanonicalError{Format: format, Offset: strict.FirstDiff(canon, b)}
	}
	return nil
}

// ParseKeyCreateBody reads a key.create body strictly: version 1, known
// fields only, canonical, the key id naming the public area, the public
// area an ECC P-256 key whose authPolicy is PolicyDigest, a PCR
// selection, and a certification that is a TPM2_Certify naming the key
// (its signature is checked by the verifier against the trusted AK).
func ParseKeyCreateBody(b []byte) (*KeyCreateBody, error) {
	const f = "key.create body"
	var k KeyCreateBody
	if err := parseKeyJSON(f, b, &k); err != nil {
		return nil, err
	}
	if k.V != KeyBodyVersion {
		return nil, wire.FormatErr(f, "version %d", k.V)
	}
	pub, err := CheckKeyPublic(f, k.KeyID, k.Public)
	if err != nil {
		return nil, err
	}
	if err := CheckKeyCert(f, k.Certification, pub); err != nil {
		return nil, err
	}
	if _, err := wire.ParseHash(k.AKID); err != nil {
		return nil, wire.WrapFormat(f, "akId", err)
	}
	if len(k.PCRs) == 0 || len(k.PCRs) > 24 || !slices.IsSorted(k.PCRs) || len(slices.Compact(slices.Clone(k.PCRs))) != len(k.PCRs) ||
		k.PCRs[0] < 0 || k.PCRs[len(k.PCRs)-1] > 23 {
		return nil, wire.FormatErr(f, "pcrs %v is not a sorted selection of 0..23", k.PCRs)
	}
	if !bytes.Equal(k.PolicyDigest, pub.AuthPolicy) {
		return nil, wire.FormatErr(f, "policyDigest is not the key's authPolicy")
	}
	return &k, nil
}

// ParseKeyRotateStatement reads a rotation statement strictly (see
// KeyRotateStatement); its signature is the verifier's business.
func ParseKeyRotateStatement(b []byte) (*KeyRotateStatement, error) {
	var s KeyRotateStatement
	if err := parseKeyJSON("key rotate statement", b, &s); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	return &s, nil
}

func (s *KeyRotateStatement) check() error {
	const f = "key rotate statement"
	if s.V != KeyBodyVersion {
		return wire.FormatErr(f, "version %d", s.V)
	}
	if s.Type != KeyRotateStatementType {
		return wire.FormatErr(f, "type %.60q", s.Type)
	}
	if err := wire.CheckDevice(s.Device); err != nil {
		return err
	}
	if _, err := wire.ParseHash(s.OldKeyID); err != nil {
		return wire.WrapFormat(f, "oldKeyId", err)
	}
	pub, err := CheckKeyPublic(f, s.NewKeyID, s.NewPublic)
	if err != nil {
		return err
	}
	if s.NewKeyID == s.OldKeyID {
		return wire.FormatErr(f, "new key is the old key")
	}
	if err := CheckKeyCert(f, s.NewCertification, pub); err != nil {
		return err
	}
	if _, err := wire.ParseHash(s.AKID); err != nil {
		return wire.WrapFormat(f, "akId", err)
	}
	if err := checkReason(f, s.Reason); err != nil {
		return err
	}
	if _, err := wire.ParseTime(s.Time); err != nil {
		return wire.WrapFormat(f, "time", err)
	}
	return nil
}

// ParseKeyRotateBody reads a key.rotate body strictly: version 1, a DSSE
// envelope of type KeyRotatePayloadType with one signature by the old
// key id, whose payload is a rotation statement agreeing with the body's
// key ids and reason. The signature itself is checked by the verifier
// against the key in force.
func ParseKeyRotateBody(b []byte) (*KeyRotateBody, *KeyRotateStatement, error) {
	const f = "key.rotate body"
	var k KeyRotateBody
	if err := parseKeyJSON(f, b, &k); err != nil {
		return nil, nil, err
	}
	if k.V != KeyBodyVersion {
		return nil, nil, wire.FormatErr(f, "version %d", k.V)
	}
	e := k.Statement
	if e == nil || e.PayloadType != KeyRotatePayloadType {
		return nil, nil, wire.FormatErr(f, "statement is not a %s envelope", KeyRotatePayloadType)
	}
	if len(e.Signatures) != 1 || e.Signatures[0].KeyID != k.OldKeyID || len(e.Signatures[0].Sig) == 0 || len(e.Signatures[0].Sig) > dsse.MaxSignatureSize {
		return nil, nil, wire.FormatErr(f, "statement needs exactly one signature by the old key %.80s", k.OldKeyID)
	}
	s, err := ParseKeyRotateStatement(e.Payload)
	if err != nil {
		return nil, nil, err
	}
	if s.OldKeyID != k.OldKeyID || s.NewKeyID != k.NewKeyID || s.Reason != k.Reason {
		return nil, nil, wire.FormatErr(f, "key ids or reason differ from the signed statement")
	}
	return &k, s, nil
}

// ParseKeyRevokeBody reads a key.revoke body strictly.
func ParseKeyRevokeBody(b []byte) (*KeyRevokeBody, error) {
	const f = "key.revoke body"
	var k KeyRevokeBody
	if err := parseKeyJSON(f, b, &k); err != nil {
		return nil, err
	}
	if k.V != KeyBodyVersion {
		return nil, wire.FormatErr(f, "version %d", k.V)
	}
	if _, err := wire.ParseHash(k.KeyID); err != nil {
		return nil, wire.WrapFormat(f, "keyId", err)
	}
	if err := checkReason(f, k.Reason); err != nil {
		return nil, err
	}
	return &k, nil
}

// checkKeyBody checks the body of a key record as ParseRecord reads it.
func checkKeyBody(r *Record) error {
	var err error
	switch r.Type {
	case TypeKeyCreate:
		_, err = ParseKeyCreateBody(r.Body)
	case TypeKeyRotate:
		_, _, err = ParseKeyRotateBody(r.Body)
	case TypeKeyRevoke:
		_, err = ParseKeyRevokeBody(r.Body)
	}
	return err
}

// CheckKeyPublic checks that public is a signing key's TPMT_PUBLIC that
// id names.
func CheckKeyPublic(format, id string, public []byte) (*attest.Public, error) {
	if len(public) == 0 || len(public) > maxKeyPublic {
		return nil, wire.FormatErr(format, "public area of %d bytes", len(public))
	}
	if _, err := wire.ParseHash(id); err != nil {
		return nil, wire.WrapFormat(format, "key id", err)
	}
	if id != KeyID(public) {
		return nil, wire.FormatErr(format, "key id %.80s does not name the public area (%s)", id, KeyID(public))
	}
	pub, err := attest.ParsePublic(public)
	if err != nil {
		return nil, wire.WrapFormat(format, "public area", err)
	}
	return pub, nil
}

// CheckKeyCert checks that c is a TPM2_Certify naming pub, within bounds.
func CheckKeyCert(format string, c KeyCert, pub *attest.Public) error {
	if len(c.Attest) == 0 || len(c.Attest) > maxKeyAttest || len(c.Signature) == 0 || len(c.Signature) > maxKeySignature {
		return wire.FormatErr(format, "certification of %d+%d bytes", len(c.Attest), len(c.Signature))
	}
	a, err := attest.ParseAttest(c.Attest)
	if err != nil {
		return wire.WrapFormat(format, "certification", err)
	}
	if a.Type != attest.TypeCertify || !bytes.Equal(a.CertifiedName, pub.Name) {
		return wire.FormatErr(format, "certification is not a TPM2_Certify of the key")
	}
	if _, _, err := attest.ParseSignature(c.Signature); err != nil {
		return wire.WrapFormat(format, "certification signature", err)
	}
	return nil
}

// checkReason accepts 1 to maxKeyReason bytes of printable UTF-8.
func checkReason(format, s string) error {
	if s == "" || len(s) > maxKeyReason || !utf8.ValidString(s) {
		return wire.FormatErr(format, "reason must be 1 to %d bytes of UTF-8", maxKeyReason)
	}
	for _, c := range s {
		if !unicode.IsPrint(c) {
			return wire.FormatErr(format, "reason has a control character")
		}
	}
	return nil
}
