package main

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gowebpki/jcs"
	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/sync"
)

// VectorsFile is the name of the archive replies' vectors in the vectors
// directory.
const VectorsFile = "replies-v1.json"

// Replies are test vectors of the archive's signed answers: a receipt
// (with its archive log, signed note and inclusion proof), a rejection
// and an enrollment answer, signed by a fixed Ed25519 key, and copies
// changed after signing that a reader must refuse. Ed25519 signatures are
// deterministic, so the file is the same on every run.
type Replies struct {
	Description string `json:"description"`
	// Seed is the text whose SHA-256 is the archive key's Ed25519 seed.
	Seed      string `json:"seed"`
	PublicKey []byte `json:"publicKey"` // 32 bytes
	KeyID     string `json:"keyId"`
	// NoteKey is the C2SP note verifier key of the archive log.
	NoteKey string `json:"noteKey"`
	// LogEntries are the archive log's leaves (canonical receipt entries);
	// the receipt proves the one at its logIndex.
	LogEntries []string `json:"logEntries"`
	LeafHashes []string `json:"leafHashes"`
	Receipt    string   `json:"receipt"`
	Rejection  string   `json:"rejection"`
	EnrollAck  string   `json:"enrollAck"`
	// ContentKeyIKM is the text payloadcipher.DeriveKey makes the
	// announced content key from; ContentKey is its announcement (seq 2,
	// signed by the archive key) and ReceiptContentKey the receipt above
	// carrying it, as the archive sends it for a bundle sealed to an
	// older content key.
	ContentKeyIKM     string `json:"contentKeyIkm"`
	ContentKey        string `json:"contentKey"`
	ReceiptContentKey string `json:"receiptContentKey"`
	// ArchiveCheckpointBefore is the body of the archive log's checkpoint
	// at size 2, the one a device accepted with an earlier receipt;
	// ReceiptConsistency is the receipt for entry 2 at size 3 carrying
	// witnessFrom 2 and the consistency proof from it, which MUST
	// verify against ArchiveCheckpointBefore and MUST NOT against
	// ArchiveCheckpointForked (size 2, another root: a forked log).
	ArchiveCheckpointBefore string    `json:"archiveCheckpointBefore"`
	ArchiveCheckpointForked string    `json:"archiveCheckpointForked"`
	ReceiptConsistency      string    `json:"receiptConsistency"`
	Refused                 []Refused `json:"refused"`
}

// Refused is a reply a reader must refuse.
type Refused struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"` // "receipt", "rejection", "enrollAck", "contentKey"
	Envelope string `json:"envelope"`
}

const vectorSeed = "edgeseal archive reply vector key"

const contentKeyIKM = "edgeseal content key announcement vector"

// replies builds the reply vectors.
func replies() (*Replies, error) {
	seed := sha256.Sum256([]byte(vectorSeed))
	key := ed25519.NewKeyFromSeed(seed[:])
	pub := key.Public().(ed25519.PublicKey)
	keyID := archivesig.ArchiveKeyID(pub)
	v := &Replies{
		Description: "archive replies signed by the Ed25519 key whose seed is SHA-256(seed): " +
			"a receipt for the entry at index 1 of a three-entry archive log, a rejection, an enrollment answer, " +
			"a content key announcement (the key derived from contentKeyIkm) and the receipt carrying it, " +
			"a receipt for entry 2 with its consistency proof from the checkpoint at size 2 (and a forked one it must fail against), " +
			"and changed copies a reader must refuse (docs/formats.md)",
		Seed: vectorSeed, PublicKey: pub, KeyID: keyID,
	}
	const name = "edgeseal-archive"
	signer, vkey, err := noteSigner(name, key)
	if err != nil {
		return nil, err
	}
	v.NoteKey = vkey
	digest := func(s string) string { return wire.FormatHash(sha256.Sum256([]byte(s))) }
	var leaves [][32]byte
	for i := range 3 {
		e := archivesig.ReceiptEntry{BundleDigest: digest(fmt.Sprintf("bundle %d", i)), Device: "site1/dev1",
			CheckpointSize: uint64(8 * (i + 1)), CheckpointRoot: digest(fmt.Sprintf("root %d", i))}
		raw, err := e.Marshal()
		if err != nil {
			return nil, err
		}
		l := merkle.LeafHash(raw)
		leaves = append(leaves, l)
		v.LogEntries = append(v.LogEntries, string(raw))
		v.LeafHashes = append(v.LeafHashes, wire.FormatHash(l))
	}
	root := merkle.RangeRoot(merkle.CompactRange(leaves))
	body := merkle.Checkpoint{Origin: name, Size: 3, Root: root}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(body)}, signer)
	if err != nil {
		return nil, err
	}
	// Inclusion of leaf 1 in a tree of 3: its sibling leaf 0, then leaf 2.
	r := &archivesig.Receipt{BundleDigest: digest("bundle 1"), Device: "site1/dev1", CheckpointSize: 16,
		CheckpointRoot: digest("root 1"), LogIndex: 1, ArchiveCheckpoint: string(signed),
		InclusionProof: [][]byte{leaves[0][:], leaves[2][:]}, RetentionUntil: "2033-12-07T00:00:00.000000Z"}
	rec, err := archivesig.SignReceipt(r, keyID, key)
	if err != nil {
		return nil, err
	}
	v.Receipt = string(rec)
	rej, err := sync.SignRejection(&sync.Rejection{BundleDigest: digest("bundle 3"), Device: "site1/dev1",
		Reason: "archive.gap: bundle of checkpoint 24 arrived before checkpoint 16", Checks: []string{"archive.gap"},
		Time: "2026-12-07T00:00:00Z"}, keyID, key)
	if err != nil {
		return nil, err
	}
	v.Rejection = string(rej)
	ack, err := sync.SignEnrollAck(&sync.EnrollAck{Device: "site1/dev1", Request: digest("request"),
		KeyID: digest("signing key"), Status: sync.EnrollPending, Reason: "waiting for an operator's approval",
		Time: "2026-12-07T00:00:00Z"}, keyID, key)
	if err != nil {
		return nil, err
	}
	v.EnrollAck = string(ack)
	ck, err := payloadcipher.DeriveKey([]byte(contentKeyIKM))
	if err != nil {
		return nil, err
	}
	an, err := archivesig.SignContentKey(&archivesig.ContentKeyAnnouncement{Origin: name, Seq: 2, Time: "2026-12-07T00:00:00.000000Z"}, ck.Public(), keyID, key)
	if err != nil {
		return nil, err
	}
	v.ContentKeyIKM, v.ContentKey = contentKeyIKM, string(an)
	rc := *r
	rc.ContentKey = an
	rck, err := archivesig.SignReceipt(&rc, keyID, key)
	if err != nil {
		return nil, err
	}
	v.ReceiptContentKey = string(rck)
	if err := consistencyVector(v, leaves, signed, keyID, key, digest); err != nil {
		return nil, err
	}
	for _, k := range []struct{ kind, env string }{{"receipt", v.Receipt}, {"rejection", v.Rejection}, {"enrollAck", v.EnrollAck}, {"contentKey", v.ContentKey}} {
		flipped, err := flipSignature(k.env)
		if err != nil {
			return nil, err
		}
		v.Refused = append(v.Refused, Refused{Name: k.kind + " signature changed", Kind: k.kind, Envelope: flipped})
		field, value, what := "device", any("site1/dev2"), " device changed, old signature kept"
		if k.kind == "contentKey" {
			field, value, what = "seq", any(3), " seq changed, old signature kept"
		}
		changed, err := editPayload(k.env, func(p map[string]any) { p[field] = value })
		if err != nil {
			return nil, err
		}
		v.Refused = append(v.Refused, Refused{Name: k.kind + what, Kind: k.kind, Envelope: changed})
	}
	// A receipt whose entry is no longer the proven leaf: re-signed with
	// the archive key, the inclusion proof fails.
	moved, err := editPayload(v.Receipt, func(p map[string]any) { p["checkpointSize"] = 17 })
	if err != nil {
		return nil, err
	}
	resigned, err := resign(moved, key, keyID)
	if err != nil {
		return nil, err
	}
	v.Refused = append(v.Refused, Refused{Name: "receipt entry not in the log (re-signed)", Kind: "receipt", Envelope: resigned})
	return v, nil
}

// consistencyVector adds the receipt for entry 2 with its consistency
// proof from size 2 (signed3 is the log's signed note at size 3).
func consistencyVector(v *Replies, leaves [][32]byte, signed3 []byte, keyID string, key ed25519.PrivateKey, digest func(string) string) error {
	tree := &merkle.Partial{Leaves: leaves}
	root2, err := tree.Hash(0, 2)
	if err != nil {
		return err
	}
	v.ArchiveCheckpointBefore = string(merkle.Checkpoint{Origin: "edgeseal-archive", Size: 2, Root: root2}.Marshal())
	v.ArchiveCheckpointForked = string(merkle.Checkpoint{Origin: "edgeseal-archive", Size: 2, Root: sha256.Sum256([]byte("forked"))}.Marshal())
	incl, err := merkle.InclusionProof(tree.Hash, 2, 3)
	if err != nil {
		return err
	}
	cons, err := merkle.ConsistencyProof(tree.Hash, 2, 3)
	if err != nil {
		return err
	}
	r := &archivesig.Receipt{BundleDigest: digest("bundle 2"), Device: "site1/dev1", CheckpointSize: 24,
		CheckpointRoot: digest("root 2"), LogIndex: 2, ArchiveCheckpoint: string(signed3),
		InclusionProof: merkle.ProofBytes(incl), RetentionUntil: "2033-12-07T00:00:00.000000Z",
		WitnessFrom: 2, WitnessProof: merkle.ProofBytes(cons)}
	rec, err := archivesig.SignReceipt(r, keyID, key)
	if err != nil {
		return err
	}
	v.ReceiptConsistency = string(rec)
	return nil
}

// marshalReplies is the vectors file.
func marshalReplies(v *Replies) ([]byte, error) {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(raw, '\n'), nil
}

func parseEnv(s string) (*dsse.Envelope, error) { return dsse.ParseEnvelope([]byte(s)) }

func flipSignature(s string) (string, error) {
	env, err := parseEnv(s)
	if err != nil {
		return "", err
	}
	env.Signatures[0].Sig[10] ^= 0x01
	b, err := env.Marshal()
	return string(b), err
}

// editPayload changes the payload's JSON (canonical again) and keeps the
// signature made over the old payload.
func editPayload(s string, fn func(map[string]any)) (string, error) {
	env, err := parseEnv(s)
	if err != nil {
		return "", err
	}
	var p map[string]any
	if err := json.Unmarshal(env.Payload, &p); err != nil {
		return "", err
	}
	fn(p)
	raw, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	if env.Payload, err = jcs.Transform(raw); err != nil {
		return "", err
	}
	b, err := env.Marshal()
	return string(b), err
}

// resign signs the envelope's payload again with key.
func resign(s string, key ed25519.PrivateKey, keyID string) (string, error) {
	env, err := parseEnv(s)
	if err != nil {
		return "", err
	}
	sig, err := key.Sign(rand.Reader, dsse.PAE(env.PayloadType, env.Payload), crypto.Hash(0))
	if err != nil {
		return "", err
	}
	env.Signatures = []dsse.Signature{{KeyID: keyID, Sig: sig}}
	b, err := env.Marshal()
	return string(b), err
}

// vnoteSigner signs C2SP notes with an Ed25519 key, as the archive does.
type vnoteSigner struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

func (s *vnoteSigner) Name() string                    { return s.name }
func (s *vnoteSigner) KeyHash() uint32                 { return s.hash }
func (s *vnoteSigner) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

func noteSigner(name string, key ed25519.PrivateKey) (note.Signer, string, error) {
	vkey, err := note.NewEd25519VerifierKey(name, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, "", err
	}
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, "", errors.New("corpusgen: unexpected note key " + vkey)
	}
	h, err := strconv.ParseUint(parts[1], 16, 32)
	if err != nil {
		return nil, "", err
	}
	return &vnoteSigner{name: name, hash: uint32(h), key: key}, vkey, nil
}
