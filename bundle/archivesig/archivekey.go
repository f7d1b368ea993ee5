package archivesig

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/internal/strict"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// The archive key announcement (docs/archive-keys.md): the archive's
// statement that it signs with a new Ed25519 key from now on. It is a DSSE
// envelope of payload type ArchiveKeyPayloadType, signed by the old key
// (the one agents trust already) and by the new key (proving the archive
// holds it). Receipts carry the chain of announcements (Receipt.KeyChain)
// so that a verifier that knows only an earlier key can follow it.

// ArchiveKeyPayloadType is the DSSE payload type of an announcement.
const ArchiveKeyPayloadType = "application/vnd.edgeseal.archive-key+json"

// ArchiveKeyVersion is the only announcement version.
const ArchiveKeyVersion = 1

// Bounds of announcements.
const (
	MaxArchiveKeySize = 4 << 10 // one announcement envelope
	MaxKeyChain       = 16      // announcements a receipt carries
)

// ArchiveKeyAnnouncement is the payload of an announcement.
type ArchiveKeyAnnouncement struct {
	V      int    `json:"v"`      // ArchiveKeyVersion
	Origin string `json:"origin"` // the archive log's origin (archive name)
	Seq    uint64 `json:"seq"`    // 1 for the first rotation, +1 each
	// OldKeyID and NewKeyID are ArchiveKeyID of the retired and the new key.
	OldKeyID string `json:"oldKeyId"`
	NewKeyID string `json:"newKeyId"`
	NewKey   []byte `json:"newKey"` // the new Ed25519 public key, 32 bytes (base64 in JSON)
	Time     string `json:"time"`   // TimeLayout: when the archive switched
	// OverlapUntil (TimeLayout, not before Time): until then receipts by
	// the old key are still accepted for entries logged after the switch.
	OverlapUntil string `json:"overlapUntil"`
	// LogSize is the archive log's size before the switch: receipts by
	// the old key for log indexes below it stay valid for ever.
	LogSize uint64 `json:"logSize"`
}

// ArchiveKeyID names an archive Ed25519 public key: "sha256:<hex of
// SHA-256(PKIX DER)>" (the DSSE key id of receipts and rejections).
func ArchiveKeyID(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return "sha256:invalid"
	}
	return wire.FormatHash(sha256.Sum256(der))
}

// ArchiveKeyError is an announcement, or a key a reply names, refused by a
// verifier: KeyID is the key concerned, Reason says what was wrong.
type ArchiveKeyError struct {
	KeyID  string
	Reason string
}

func (e *ArchiveKeyError) Error() string {
	return "bundle: archive key " + e.KeyID + ": " + e.Reason
}

func (a *ArchiveKeyAnnouncement) marshal() ([]byte, error) { return marshalCanonical(a) }

func (a *ArchiveKeyAnnouncement) check() error {
	if a.V != ArchiveKeyVersion {
		return wire.FormatErr("archive key", "version %d", a.V)
	}
	if !wire.ValidName(a.Origin) {
		return wire.FormatErr("archive key", "origin %.60q", a.Origin)
	}
	if a.Seq == 0 || a.Seq > strict.MaxJSONInt || a.LogSize > strict.MaxJSONInt {
		return wire.FormatErr("archive key", "seq or logSize out of range")
	}
	if _, err := wire.ParseHash(a.OldKeyID); err != nil {
		return err
	}
	if len(a.NewKey) != ed25519.PublicKeySize {
		return wire.FormatErr("archive key", "new key of %d bytes", len(a.NewKey))
	}
	if a.NewKeyID != ArchiveKeyID(a.NewKey) {
		return wire.FormatErr("archive key", "newKeyId %.80q is not the new key's id", a.NewKeyID)
	}
	if a.NewKeyID == a.OldKeyID {
		return wire.FormatErr("archive key", "new key is the old key")
	}
	t, err := wire.ParseTime(a.Time)
	if err != nil {
		return err
	}
	u, err := wire.ParseTime(a.OverlapUntil)
	if err != nil {
		return err
	}
	if u.Before(t) {
		return wire.FormatErr("archive key", "overlap ends before the switch")
	}
	return nil
}

// SignArchiveKey signs a (with its NewKey and NewKeyID set from newKey)
// with the old key first and the new key second.
func SignArchiveKey(a *ArchiveKeyAnnouncement, oldKeyID string, oldKey, newKey crypto.Signer) ([]byte, error) {
	pub, ok := newKey.Public().(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("bundle: archive key: new key is not Ed25519")
	}
	a.V, a.OldKeyID, a.NewKey, a.NewKeyID = ArchiveKeyVersion, oldKeyID, pub, ArchiveKeyID(pub)
	if err := a.check(); err != nil {
		return nil, err
	}
	payload, err := a.marshal()
	if err != nil {
		return nil, err
	}
	pae := dsse.PAE(ArchiveKeyPayloadType, payload)
	env := &dsse.Envelope{PayloadType: ArchiveKeyPayloadType, Payload: payload}
	for _, s := range []struct {
		id  string
		key crypto.Signer
	}{{oldKeyID, oldKey}, {a.NewKeyID, newKey}} {
		sig, err := s.key.Sign(rand.Reader, pae, crypto.Hash(0))
		if err != nil {
			return nil, fmt.Errorf("bundle: archive key: sign: %w", err)
		}
		env.Signatures = append(env.Signatures, dsse.Signature{KeyID: s.id, Sig: sig})
	}
	b, err := env.Marshal()
	if err != nil {
		return nil, err
	}
	if len(b) > MaxArchiveKeySize {
		return nil, fmt.Errorf("%w: announcement of %d bytes", wire.ErrTooLarge, len(b))
	}
	return b, nil
}

// ParseArchiveKey reads an announcement strictly (size, canonical
// envelope and payload, known fields, version, well-formed ids and
// times, exactly two signatures: the old key's and the new key's) and
// checks the new key's signature. The old key's signature is checked by
// the verifier that trusts it (ArchiveKeys.Learn).
func ParseArchiveKey(b []byte) (*dsse.Envelope, *ArchiveKeyAnnouncement, error) {
	if len(b) > MaxArchiveKeySize {
		return nil, nil, fmt.Errorf("%w: announcement of %d bytes", wire.ErrTooLarge, len(b))
	}
	env, err := dsse.ParseEnvelope(b)
	if err != nil {
		return nil, nil, err
	}
	if env.PayloadType != ArchiveKeyPayloadType {
		return nil, nil, wire.FormatErr("archive key", "payload type %.60q", env.PayloadType)
	}
	var a ArchiveKeyAnnouncement
	if err := strict.Unmarshal(env.Payload, &a); err != nil {
		return nil, nil, wire.WrapFormat("archive key", "json", err)
	}
	if canon, err := a.marshal(); err != nil || !bytes.Equal(canon, env.Payload) {
		return nil, nil, &wire.NotCanonicalError{Format: "archive key", Offset: strict.FirstDiff(canon, env.Payload)}
	}
	if err := a.check(); err != nil {
		return nil, nil, err
	}
	if len(env.Signatures) != 2 || env.Signatures[0].KeyID != a.OldKeyID || env.Signatures[1].KeyID != a.NewKeyID {
		return nil, nil, wire.FormatErr("archive key", "want two signatures, by the old key then the new key")
	}
	if err := env.VerifyEd25519(a.NewKeyID, a.NewKey); err != nil {
		return nil, nil, &ArchiveKeyError{KeyID: a.NewKeyID, Reason: "announcement not signed by the new key it names"}
	}
	return env, &a, nil
}
