package bundle

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/internal/strict"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"

	"github.com/gowebpki/jcs"

	"github.com/edgeseal/edgeseal/tpm/attest"
)

// In-toto names used by the seal (format 2: SealPredicateTypeV2).
const (
	StatementType     = "https://in-toto.io/Statement/v1"
	SealPredicateType = "https://edgeseal.dev/seal/v1"
)

// Statement is an in-toto Statement v1 carrying a SealPredicate.
type Statement struct {
	Type          string        `json:"_type"`
	Subject       []Subject     `json:"subject"`
	PredicateType string        `json:"predicateType"`
	Predicate     SealPredicate `json:"predicate"`
}

// Subject is an in-toto resource descriptor (name and digests).
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"` // {"sha256": "<hex>"}
}

// SealPredicate is what the TPM signing key vouches for at a seal.
type SealPredicate struct {
	Checkpoint         string           `json:"checkpoint"`         // checkpoint body text
	PreviousCheckpoint string           `json:"previousCheckpoint"` // "" for the first seal
	ConsistencyProof   [][]byte         `json:"consistencyProof"`   // base64 hashes
	RangeHashes        [][]byte         `json:"rangeHashes"`        // compact range of the previous tree
	FirstSeq           uint64           `json:"firstSeq"`
	PreviousLeaf       string           `json:"previousLeaf"` // "sha256:.." prev of the first record
	Counter            uint64           `json:"counter"`      // TPM NV counter after increment
	Clock              attest.ClockInfo `json:"clock"`
	Quote              SealQuote        `json:"quote"`
	KeyID              string           `json:"keyId"`
}

// SealQuote is the TPM quote bound to the checkpoint, as the seal
// statement carries it (Seal writes it from a Quote).
type SealQuote struct {
	Attest       []byte            `json:"attest"`    // TPMS_ATTEST, base64
	Signature    []byte            `json:"signature"` // TPMT_SIGNATURE, base64
	PCRSelection PCRSelection      `json:"pcrSelection"`
	PCRValues    map[string]string `json:"pcrValues"` // "0": "<hex>"
}

// PCRSelection names a PCR bank and indexes.
type PCRSelection struct {
	Hash string `json:"hash"` // "sha256"
	PCRs []int  `json:"pcrs"`
}

// Marshal returns the canonical JSON of the statement.
func (s *Statement) Marshal() ([]byte, error) {
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("bundle: statement: %w", err)
	}
	return jcs.Transform(raw)
}

// ParseStatement reads a seal statement strictly (shape, types, hash
// sizes, canonical JSON).
func ParseStatement(b []byte) (*Statement, error) {
	if len(b) > dsse.MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: statement of %d bytes", wire.ErrTooLarge, len(b))
	}
	var s Statement
	if err := strict.Unmarshal(b, &s); err != nil {
		return nil, wire.WrapFormat("statement", "json", err)
	}
	if s.Type != StatementType || FormatOf(s.PredicateType) == 0 {
		return nil, wire.FormatErr("statement", "type %.60q predicate %.60q", s.Type, s.PredicateType)
	}
	if FormatOf(s.PredicateType) == FormatV2 {
		if err := checkSubjectsV2(s.Subject); err != nil {
			return nil, err
		}
	} else if len(s.Subject) != 1 || s.Subject[0].Name != PathRecords || len(s.Subject[0].Digest) != 1 {
		return nil, wire.FormatErr("statement", "want one subject %s", PathRecords)
	}
	if d := s.Subject[0].Digest["sha256"]; len(d) != 64 || !strict.IsHex(d) {
		return nil, wire.FormatErr("statement", "subject digest")
	}
	p := &s.Predicate
	if len(p.ConsistencyProof) > merkle.MaxProofLen || len(p.RangeHashes) > merkle.MaxProofLen {
		return nil, wire.FormatErr("statement", "proof too long")
	}
	for _, h := range slices.Concat(p.ConsistencyProof, p.RangeHashes) {
		if len(h) != 32 {
			return nil, wire.FormatErr("statement", "hash of %d bytes", len(h))
		}
	}
	if _, err := wire.ParseHash(p.PreviousLeaf); err != nil {
		return nil, err
	}
	if _, _, err := p.Quote.Values(); err != nil {
		return nil, err
	}
	canon, err := s.Marshal()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canon, b) {
		return nil, &wire.NotCanonicalError{Format: "statement", Offset: strict.FirstDiff(canon, b)}
	}
	return &s, nil
}

// Values returns the quoted PCR selection and values.
func (q *SealQuote) Values() ([]int, map[int][]byte, error) {
	if q.PCRSelection.Hash != "sha256" {
		return nil, nil, wire.FormatErr("statement", "pcr bank %.20q", q.PCRSelection.Hash)
	}
	pcrs := q.PCRSelection.PCRs
	if len(q.PCRValues) != len(pcrs) || len(pcrs) > attest.MaxPCR+1 {
		return nil, nil, wire.FormatErr("statement", "%d pcr values for %d pcrs", len(q.PCRValues), len(pcrs))
	}
	values := make(map[int][]byte, len(pcrs))
	for i, p := range pcrs {
		if p < 0 || p > attest.MaxPCR || (i > 0 && pcrs[i-1] >= p) {
			return nil, nil, wire.FormatErr("statement", "pcr selection %v", pcrs)
		}
		v, err := hex.DecodeString(q.PCRValues[strconv.Itoa(p)])
		if err != nil || len(v) != 32 || hex.EncodeToString(v) != q.PCRValues[strconv.Itoa(p)] {
			return nil, nil, wire.FormatErr("statement", "pcr %d value", p)
		}
		values[p] = v
	}
	return pcrs, values, nil
}

// NewSealQuote renders a selection and its values for the predicate.
func NewSealQuote(attestBytes, sig []byte, pcrs []int, values map[int][]byte) SealQuote {
	m := make(map[string]string, len(pcrs))
	for _, p := range pcrs {
		m[strconv.Itoa(p)] = hex.EncodeToString(values[p])
	}
	return SealQuote{Attest: attestBytes, Signature: sig, PCRSelection: PCRSelection{Hash: "sha256", PCRs: slices.Clone(pcrs)}, PCRValues: m}
}
