package archivesig

import (
	"bytes"
	"strings"

	"github.com/edgeseal/edgeseal/bundle/internal/strict"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// maxNoteSize bounds the signed note of an archive checkpoint in a
// record: the 1 KiB body and a few signature lines.
const maxNoteSize = 4096

// CheckpointRecord is the body of an `archive.checkpoint` journal record
// (docs/formats.md): an archive checkpoint the device accepted, as the
// receipt carried it, so that its bundles show every auditor which log
// the archive showed it. Checkpoint is the signed note; Receipt the
// digest of the receipt it came in (whose bytes the delivery.receipt
// record names); WitnessFrom and WitnessProof the receipt's consistency
// proof from the checkpoint the device accepted before (both absent when
// the receipt carried none).
type CheckpointRecord struct {
	Checkpoint   string   `json:"checkpoint"`
	Receipt      string   `json:"receipt"`
	WitnessFrom  uint64   `json:"witnessFrom,omitempty"`
	WitnessProof [][]byte `json:"witnessProof,omitempty"`
}

// NewCheckpointRecord is the archive.checkpoint body of receipt r whose
// bytes hash to receiptDigest ("sha256:..").
func NewCheckpointRecord(r *Receipt, receiptDigest string) *CheckpointRecord {
	return &CheckpointRecord{Checkpoint: r.ArchiveCheckpoint, Receipt: receiptDigest, WitnessFrom: r.WitnessFrom, WitnessProof: r.WitnessProof}
}

// Marshal returns the canonical JSON of the body.
func (c *CheckpointRecord) Marshal() ([]byte, error) { return marshalCanonical(c) }

// ParseCheckpointRecord reads an archive.checkpoint body strictly:
// canonical JSON, exactly these members, the checkpoint a signed note
// (its signatures are not verified here: the verifier holds the archive
// key), the receipt a hash, the proof's form as in a receipt.
func ParseCheckpointRecord(b []byte) (*CheckpointRecord, error) {
	if len(b) > 2*maxNoteSize+merkle.MaxProofLen*48 {
		return nil, wire.FormatErr("archive.checkpoint", "%d bytes", len(b))
	}
	var c CheckpointRecord
	if err := strict.Unmarshal(b, &c); err != nil {
		return nil, wire.WrapFormat("archive.checkpoint", "json", err)
	}
	if canon, err := c.Marshal(); err != nil || !bytes.Equal(canon, b) {
		return nil, &wire.NotCanonicalError{Format: "archive.checkpoint", Offset: strict.FirstDiff(canon, b)}
	}
	if _, err := wire.ParseHash(c.Receipt); err != nil {
		return nil, err
	}
	cp, err := c.Root()
	if err != nil {
		return nil, err
	}
	r := Receipt{WitnessFrom: c.WitnessFrom, WitnessProof: c.WitnessProof}
	if c.WitnessFrom > strict.MaxJSONInt {
		return nil, wire.FormatErr("archive.checkpoint", "number beyond 2^53")
	}
	if err := r.checkConsistencyMembers(cp.Size); err != nil {
		return nil, err
	}
	return &c, nil
}

// Root returns the checkpoint body the record's signed note carries.
func (c *CheckpointRecord) Root() (merkle.Checkpoint, error) {
	return NoteCheckpoint(c.Checkpoint)
}

// NoteCheckpoint parses the body of an archive checkpoint's C2SP signed
// note (at most 4 KiB, the body, a blank line, at least one signature
// line, ending in a newline) without verifying its signatures.
func NoteCheckpoint(note string) (merkle.Checkpoint, error) {
	if len(note) > maxNoteSize {
		return merkle.Checkpoint{}, wire.FormatErr("archive checkpoint", "note of %d bytes", len(note))
	}
	body, _, ok := strings.Cut(note, "\n\n")
	if !ok || !strings.Contains(note, "\n\n\u2014 ") || !strings.HasSuffix(note, "\n") {
		return merkle.Checkpoint{}, wire.FormatErr("archive checkpoint", "not a signed note")
	}
	return merkle.ParseAnyCheckpoint([]byte(body + "\n"))
}
