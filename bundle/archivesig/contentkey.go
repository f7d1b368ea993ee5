package archivesig

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"fmt"
	"math"
	"time"

	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/internal/strict"
	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// The content key announcement (docs/formats.md, "Payload encryption"):
// the archive's statement that agents seal payloads to a new HPKE public
// key from now on. A DSSE envelope of payload type
// ContentKeyPayloadType with one signature, by the archive's Ed25519 key.
// An agent takes a content key only from an announcement signed by an
// archive key it trusts, and seals to the one of the highest Seq.

// ContentKeyPayloadType is the DSSE payload type of a content key announcement.
const ContentKeyPayloadType = "application/vnd.edgeseal.content-key+json"

// ContentKeyVersion is the only content key announcement version.
const ContentKeyVersion = 1

// MaxContentKeySize bounds one content key announcement envelope.
const MaxContentKeySize = 8 << 10

// ContentKeyAnnouncement is the payload of a content key announcement.
type ContentKeyAnnouncement struct {
	V      int    `json:"v"`      // ContentKeyVersion
	Origin string `json:"origin"` // the archive log's origin
	Seq    uint64 `json:"seq"`    // 1 for the first content key, +1 each rotation
	KEM    int    `json:"kem"`    // HPKE suite ids the key is for
	KDF    int    `json:"kdf"`
	AEAD   int    `json:"aead"`
	KeyID  string `json:"keyId"` // payloadcipher.KeyID of Key
	Key    []byte `json:"key"`   // the serialized HPKE public key (base64 in JSON)
	Time   string `json:"time"`  // TimeLayout: from when agents use it
}

func (a *ContentKeyAnnouncement) check() error {
	if a.V != ContentKeyVersion {
		return wire.FormatErr("content key", "version %d", a.V)
	}
	if !wire.ValidName(a.Origin) {
		return wire.FormatErr("content key", "origin %.60q", a.Origin)
	}
	if a.Seq == 0 || a.Seq > strict.MaxJSONInt {
		return wire.FormatErr("content key", "seq out of range")
	}
	c := payloadcipher.Cipher{KEM: a.KEM, KDF: a.KDF, AEAD: a.AEAD}
	if s := c.Suite(); !s.Known() {
		return &payloadcipher.SuiteError{Suite: s}
	}
	if _, err := payloadcipher.NewPublicKey(a.Key); err != nil {
		return wire.WrapFormat("content key", "key", err)
	}
	if a.KeyID != payloadcipher.KeyID(a.Key) {
		return wire.FormatErr("content key", "keyId %.80q is not the key's id", a.KeyID)
	}
	_, err := wire.ParseTime(a.Time)
	return err
}

// PublicKey returns the announced key.
func (a *ContentKeyAnnouncement) PublicKey() (*payloadcipher.PublicKey, error) {
	return payloadcipher.NewPublicKey(a.Key)
}

// SignContentKey fills a's suite, key and key id from pub and signs it
// with the archive key (keyID, key).
func SignContentKey(a *ContentKeyAnnouncement, pub *payloadcipher.PublicKey, keyID string, key crypto.Signer) ([]byte, error) {
	s := payloadcipher.Default
	a.V, a.KEM, a.KDF, a.AEAD, a.Key, a.KeyID = ContentKeyVersion, int(s.KEM), int(s.KDF), int(s.AEAD), pub.Bytes(), pub.ID
	if err := a.check(); err != nil {
		return nil, err
	}
	payload, err := marshalCanonical(a)
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(rand.Reader, dsse.PAE(ContentKeyPayloadType, payload), crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("bundle: content key: sign: %w", err)
	}
	env := &dsse.Envelope{PayloadType: ContentKeyPayloadType, Payload: payload, Signatures: []dsse.Signature{{KeyID: keyID, Sig: sig}}}
	b, err := env.Marshal()
	if err != nil {
		return nil, err
	}
	if len(b) > MaxContentKeySize {
		return nil, fmt.Errorf("%w: content key announcement of %d bytes", wire.ErrTooLarge, len(b))
	}
	return b, nil
}

// ParseContentKey reads a content key announcement strictly (size,
// canonical envelope and payload, known fields, version, a known suite,
// the key and its id, exactly one signature). The signature is checked by
// VerifyContentKey.
func ParseContentKey(b []byte) (*dsse.Envelope, *ContentKeyAnnouncement, error) {
	if len(b) > MaxContentKeySize {
		return nil, nil, fmt.Errorf("%w: content key announcement of %d bytes", wire.ErrTooLarge, len(b))
	}
	env, err := dsse.ParseEnvelope(b)
	if err != nil {
		return nil, nil, err
	}
	if env.PayloadType != ContentKeyPayloadType {
		return nil, nil, wire.FormatErr("content key", "payload type %.60q", env.PayloadType)
	}
	var a ContentKeyAnnouncement
	if err := strict.Unmarshal(env.Payload, &a); err != nil {
		return nil, nil, wire.WrapFormat("content key", "json", err)
	}
	if canon, err := marshalCanonical(&a); err != nil || !bytes.Equal(canon, env.Payload) {
		return nil, nil, &wire.NotCanonicalError{Format: "content key", Offset: strict.FirstDiff(canon, env.Payload)}
	}
	if err := a.check(); err != nil {
		return nil, nil, err
	}
	if len(env.Signatures) != 1 {
		return nil, nil, wire.FormatErr("content key", "want one signature, by the archive key")
	}
	return env, &a, nil
}

// VerifyContentKey parses a content key announcement and checks that it
// is for k's archive and signed by an archive key k trusts at now.
func (k *ArchiveKeys) VerifyContentKey(b []byte, now time.Time) (*ContentKeyAnnouncement, error) {
	env, a, err := ParseContentKey(b)
	if err != nil {
		return nil, err
	}
	if a.Origin != k.origin {
		return nil, &ArchiveKeyError{KeyID: env.Signatures[0].KeyID, Reason: "content key announced for archive " + a.Origin + ", want " + k.origin}
	}
	if err := k.verifyEnvelope(env, math.MaxInt64, now); err != nil {
		return nil, err
	}
	return a, nil
}
