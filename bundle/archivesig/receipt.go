package archivesig

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/internal/strict"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"

	"github.com/gowebpki/jcs"
)

// ReceiptPayloadType is the DSSE payload type of an archive receipt.
const ReceiptPayloadType = "application/vnd.edgeseal.receipt+json"

// MaxReceiptSize bounds a receipt envelope.
const MaxReceiptSize = 64 << 10

// Receipt is the archive's signed answer to a bundle (docs/formats.md).
type Receipt struct {
	BundleDigest      string   `json:"bundleDigest"`      // "sha256:.." of the bundle tar
	Device            string   `json:"device"`            // "<site>/<name>"
	CheckpointSize    uint64   `json:"checkpointSize"`    // the bundle's checkpoint
	CheckpointRoot    string   `json:"checkpointRoot"`    // "sha256:.."
	LogIndex          uint64   `json:"logIndex"`          // leaf index in the archive log
	ArchiveCheckpoint string   `json:"archiveCheckpoint"` // C2SP signed note of the archive log
	InclusionProof    [][]byte `json:"inclusionProof"`    // base64 hashes, LogIndex in ArchiveCheckpoint
	RetentionUntil    string   `json:"retentionUntil"`    // TimeLayout
	Epoch             uint64   `json:"epoch,omitempty"`   // the device's epoch at the archive; absent: 1
	// KeyChain holds the archive's key announcements (ParseArchiveKey),
	// oldest first, once it has rotated its key: a verifier that knows an
	// earlier key learns the key that signed the receipt from it.
	KeyChain [][]byte `json:"keyChain,omitempty"`
	// ContentKey is the archive's newest content key announcement
	// (ParseContentKey), present when the bundle held a payload sealed
	// to an older content key: the agent verifies it under the archive
	// keys it trusts and seals new payloads to it.
	ContentKey []byte `json:"contentKey,omitempty"`
	// WitnessFrom is the archive checkpoint size of the device's
	// previous receipt, WitnessProof the RFC 6962 consistency proof
	// from it to ArchiveCheckpoint: the device witnesses the archive
	// log (CheckConsistency). Both absent when the device had no receipt
	// before.
	WitnessFrom  uint64   `json:"witnessFrom,omitempty"`
	WitnessProof [][]byte `json:"witnessProof,omitempty"`
}

// ReceiptEntry is what the archive log stores for a bundle; its canonical
// JSON is the leaf the receipt's inclusion proof is for.
type ReceiptEntry struct {
	BundleDigest   string `json:"bundleDigest"`
	Device         string `json:"device"`
	CheckpointSize uint64 `json:"checkpointSize"`
	CheckpointRoot string `json:"checkpointRoot"`
	Epoch          uint64 `json:"epoch,omitempty"` // absent: epoch 1
}

// Entry returns the archive log entry the receipt proves.
func (r *Receipt) Entry() ReceiptEntry {
	return ReceiptEntry{BundleDigest: r.BundleDigest, Device: r.Device, CheckpointSize: r.CheckpointSize, CheckpointRoot: r.CheckpointRoot, Epoch: r.Epoch}
}

// Marshal returns the canonical JSON of the entry (the archive log record).
func (e ReceiptEntry) Marshal() ([]byte, error) { return marshalCanonical(e) }

// Marshal returns the canonical JSON of the receipt.
func (r *Receipt) Marshal() ([]byte, error) { return marshalCanonical(r) }

func marshalCanonical(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return jcs.Transform(raw)
}

// SignReceipt signs r with the archive's Ed25519 key (an
// ed25519.PrivateKey or a token's signer) and returns the DSSE envelope
// bytes.
func SignReceipt(r *Receipt, keyID string, key crypto.Signer) ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	payload, err := r.Marshal()
	if err != nil {
		return nil, err
	}
	return SignEnvelope(ReceiptPayloadType, payload, keyID, key)
}

// SignEnvelope signs payload, of payloadType, with the archive's Ed25519
// key (an ed25519.PrivateKey or a token's signer) and returns the DSSE
// envelope bytes with one signature under keyID: the form of every reply
// the archive signs (receipts, rejections, enrolment acknowledgements).
func SignEnvelope(payloadType string, payload []byte, keyID string, key crypto.Signer) ([]byte, error) {
	sig, err := key.Sign(rand.Reader, dsse.PAE(payloadType, payload), crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("archivesig: sign %s: %w", payloadType, err)
	}
	env := &dsse.Envelope{PayloadType: payloadType, Payload: payload, Signatures: []dsse.Signature{{KeyID: keyID, Sig: sig}}}
	return env.Marshal()
}

// ParseReceipt reads a receipt envelope strictly, without checking its
// signature: canonical JSON, known fields, well-formed hashes, the archive
// checkpoint a signed note, and the inclusion proof valid for it.
func ParseReceipt(b []byte) (*dsse.Envelope, *Receipt, error) {
	if len(b) > MaxReceiptSize {
		return nil, nil, fmt.Errorf("%w: receipt of %d bytes", wire.ErrTooLarge, len(b))
	}
	env, err := dsse.ParseEnvelope(b)
	if err != nil {
		return nil, nil, err
	}
	r, err := ReceiptOf(env)
	if err != nil {
		return nil, nil, err
	}
	return env, r, nil
}

// ReceiptOf reads strictly the receipt an envelope carries, as
// ParseReceipt does after parsing the envelope (dsse.ParseEnvelope of at
// most MaxReceiptSize bytes): for a caller that parsed the envelope
// already. The signature is not checked.
func ReceiptOf(env *dsse.Envelope) (*Receipt, error) {
	if env.PayloadType != ReceiptPayloadType {
		return nil, wire.FormatErr("receipt", "payload type %.60q", env.PayloadType)
	}
	var r Receipt
	if err := strict.Unmarshal(env.Payload, &r); err != nil {
		return nil, wire.WrapFormat("receipt", "json", err)
	}
	if canon, err := r.Marshal(); err != nil || !bytes.Equal(canon, env.Payload) {
		return nil, &wire.NotCanonicalError{Format: "receipt", Offset: strict.FirstDiff(canon, env.Payload)}
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	return &r, nil
}

// ParsedReceipt is a receipt's bytes with the envelope and the receipt
// ParseReceipt read from them, so that the parties a receipt passes
// through (the sync publisher that verified it, the agent that journals
// it) parse it once.
type ParsedReceipt struct {
	Raw      []byte         // the envelope's bytes, as the archive signed them
	Envelope *dsse.Envelope // ParseReceipt's envelope of Raw
	Receipt  *Receipt       // ParseReceipt's receipt of Raw
}

// VerifyReceipt parses b and checks its Ed25519 signature by keyID.
func VerifyReceipt(b []byte, keyID string, pub ed25519.PublicKey) (*Receipt, error) {
	env, r, err := ParseReceipt(b)
	if err != nil {
		return nil, err
	}
	if err := env.VerifyEd25519(keyID, pub); err != nil {
		return nil, err
	}
	return r, nil
}

// ArchiveRoot returns the archive checkpoint the receipt carries (the body
// of its signed note; the note's own signature lines are not verified
// here, the DSSE signature covers them).
func (r *Receipt) ArchiveRoot() (merkle.Checkpoint, error) {
	body, _, ok := strings.Cut(r.ArchiveCheckpoint, "\n\n")
	if !ok {
		return merkle.Checkpoint{}, wire.FormatErr("receipt", "archive checkpoint is not a signed note")
	}
	return merkle.ParseAnyCheckpoint([]byte(body + "\n"))
}

func (r *Receipt) check() error {
	if _, err := wire.ParseHash(r.BundleDigest); err != nil {
		return err
	}
	if _, err := wire.ParseHash(r.CheckpointRoot); err != nil {
		return err
	}
	if err := wire.CheckDevice(r.Device); err != nil {
		return err
	}
	if _, err := wire.ParseTime(r.RetentionUntil); err != nil {
		return err
	}
	if r.CheckpointSize > strict.MaxJSONInt || r.LogIndex > strict.MaxJSONInt || r.Epoch > strict.MaxJSONInt || r.WitnessFrom > strict.MaxJSONInt {
		return wire.FormatErr("receipt", "number beyond 2^53")
	}
	cp, err := r.ArchiveRoot()
	if err != nil {
		return err
	}
	if !strings.Contains(r.ArchiveCheckpoint, "\n\n\u2014 ") || !strings.HasSuffix(r.ArchiveCheckpoint, "\n") {
		return wire.FormatErr("receipt", "archive checkpoint has no signature line")
	}
	if len(r.InclusionProof) > merkle.MaxProofLen {
		return wire.FormatErr("receipt", "inclusion proof too long")
	}
	if len(r.KeyChain) > MaxKeyChain {
		return wire.FormatErr("receipt", "key chain of %d announcements", len(r.KeyChain))
	}
	for _, a := range r.KeyChain {
		if len(a) == 0 || len(a) > MaxArchiveKeySize {
			return wire.FormatErr("receipt", "key announcement of %d bytes", len(a))
		}
	}
	if r.ContentKey != nil {
		if _, _, err := ParseContentKey(r.ContentKey); err != nil {
			return wire.WrapFormat("receipt", "content key", err)
		}
	}
	for _, h := range r.InclusionProof {
		if len(h) != 32 {
			return wire.FormatErr("receipt", "proof hash of %d bytes", len(h))
		}
	}
	if err := r.checkConsistencyMembers(cp.Size); err != nil {
		return err
	}
	entry, err := r.Entry().Marshal()
	if err != nil {
		return err
	}
	if err := merkle.VerifyInclusion(merkle.ProofHashes(r.InclusionProof), r.LogIndex, cp.Size, cp.Root, merkle.LeafHash(entry)); err != nil {
		return fmt.Errorf("bundle: receipt: %w", err)
	}
	return nil
}

// RetentionTime returns RetentionUntil as a time.
func (r *Receipt) RetentionTime() time.Time {
	t, _ := wire.ParseTime(r.RetentionUntil)
	return t
}
