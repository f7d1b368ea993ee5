package proof

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/internal/strict"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Format identifiers of a proof document.
const (
	Version = 1
	Type    = "edgeseal.export-proof"
)

// Bounds of a proof document: the largest payload a bundle holds in base64
// plus the rest, and the records one proof carries.
const (
	MaxSize    = (256<<20)/3*4 + 16<<20
	MaxRecords = 64
)

// Files lists the bundle files a proof carries besides the seal, in the
// order they are written: the key and attestation files the TPM checks
// read. keys/signing.pem (format 2) and keys/ek.crt are optional.
var Files = []string{
	bundle.PathQuoteMsg, bundle.PathQuotePCRs, bundle.PathQuoteSig,
	bundle.PathAKPEM, bundle.PathAKPub, bundle.PathCertifyMsg, bundle.PathCertifySig,
	bundle.PathEKCert, bundle.PathEKPub, bundle.PathSigningPEM, bundle.PathSigningPub,
}

// optionalFile reports the files a proof may leave out.
func optionalFile(name string) bool {
	return name == bundle.PathSigningPEM || name == bundle.PathEKCert
}

// Record is one custody record of the export with its inclusion proof in
// the sealed checkpoint.
type Record struct {
	Seq uint64 `json:"seq"`
	// Record is the record's canonical JSON, as a JSON string (its bytes
	// are exactly the line of data/records.jsonl).
	Record string `json:"record"`
	// Inclusion is the RFC 6962 inclusion proof of the record's leaf at
	// Seq in the sealed checkpoint (base64 hashes, bottom up).
	Inclusion [][]byte `json:"inclusion"`
}

// Proof is the proof of one export (docs/formats.md, "Export proofs").
type Proof struct {
	V        int    `json:"v"`
	Type     string `json:"type"`
	Device   string `json:"device"`
	ExportID string `json:"exportId"`
	// Principal is the export record's actor id: export ids are scoped
	// by principal.
	Principal string `json:"principal"`
	// Records: the export record first, then the related records of the
	// same bundle (refusals of the same id and principal, the purge of its
	// payload, the policy.change it names) in ascending seq.
	Records []Record `json:"records"`
	// Payload is the export's payload bytes; absent only when a carried
	// retention.purge record deleted them.
	Payload []byte `json:"payload,omitempty"`
	// Seal is seal.dsse.json of the bundle, byte for byte.
	Seal []byte `json:"seal"`
	// Files are the bundle's key and attestation files (Files).
	Files map[string][]byte `json:"files"`
	// Trust is the device's trust file (DEVICE.json) byte for byte.
	Trust []byte `json:"trust"`
	// Receipt is the archive's receipt envelope for the bundle.
	Receipt []byte `json:"receipt"`
	// ArchiveKey is the PKIX DER of the archive's Ed25519 key that signed
	// the receipt and its log checkpoint.
	ArchiveKey []byte `json:"archiveKey"`
	// ArchiveKeyChain is, when ArchiveKey is a key the archive has since
	// rotated away from, its key announcements from the one retiring
	// ArchiveKey to the archive's current key, oldest first: each newer
	// key's signature on the announcement naming the older vouches for it.
	ArchiveKeyChain [][]byte `json:"archiveKeyChain,omitempty"`
	// PCRAuthorization is, for a device bound to a PCR-policy key (trust
	// version 2) whose quoted PCR values are not its enrollment values,
	// the operator's signed PCR authorization of the quoted values (the
	// body of a tpm.pcrs.authorized record of the device's chain).
	PCRAuthorization []byte `json:"pcrAuthorization,omitempty"`
}

// Marshal returns the proof document: compact JSON, members in the order
// of Proof, ending in a newline. The payload is encoded straight into the
// output (one allocation of the final size for a large payload).
func (p *Proof) Marshal() ([]byte, error) {
	q := *p
	q.Payload = nil
	head, err := json.Marshal(&q)
	if err != nil {
		return nil, err
	}
	if p.Payload == nil {
		return append(head, '\n'), nil
	}
	// Without a payload (omitempty) "seal" follows "records"; quotes
	// inside strings are escaped, so this is the member, not text.
	i := bytes.Index(head, []byte(`,"seal":"`))
	if i < 0 {
		return nil, errors.New("proof: marshal: no seal member")
	}
	const member = `,"payload":"`
	out := make([]byte, 0, len(head)+len(member)+base64.StdEncoding.EncodedLen(len(p.Payload))+2)
	out = append(out, head[:i]...)
	out = append(out, member...)
	out = base64.StdEncoding.AppendEncode(out, p.Payload)
	out = append(out, '"')
	out = append(out, head[i:]...)
	return append(out, '\n'), nil
}

func formatErr(reason string, args ...any) error { return wire.FormatErr("proof", reason, args...) }

// Parse reads a proof document strictly: the size bound, unknown members
// and trailing data refused, the version and type, a device name, at most
// MaxRecords records with proofs of 32-byte hashes, only the known files.
// It checks the shape only; Verify checks what it proves.
func Parse(b []byte) (*Proof, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("proof: %d bytes: %w", len(b), wire.ErrTooLarge)
	}
	var p Proof
	if err := strict.Unmarshal(b, &p); err != nil {
		return nil, wire.WrapFormat("proof", "json", err)
	}
	switch {
	case p.V != Version:
		return nil, formatErr("version %d", p.V)
	case p.Type != Type:
		return nil, formatErr("type %.40q", p.Type)
	case wire.CheckDevice(p.Device) != nil:
		return nil, formatErr("device %.80q", p.Device)
	case p.ExportID == "" || len(p.ExportID) > 1024:
		return nil, formatErr("exportId of %d bytes", len(p.ExportID))
	case p.Principal == "" || len(p.Principal) > 1024:
		return nil, formatErr("principal of %d bytes", len(p.Principal))
	case len(p.Records) == 0 || len(p.Records) > MaxRecords:
		return nil, formatErr("%d records", len(p.Records))
	case len(p.Seal) == 0 || len(p.Trust) == 0 || len(p.Receipt) == 0 || len(p.ArchiveKey) == 0:
		return nil, formatErr("seal, trust, receipt and archiveKey are required")
	}
	for i, r := range p.Records {
		if i > 1 && r.Seq <= p.Records[i-1].Seq || i > 0 && r.Seq == p.Records[0].Seq {
			return nil, formatErr("related records not in seq order, or repeating the export's")
		}
		if r.Seq > strict.MaxJSONInt || len(r.Record) == 0 || len(r.Record) > 1<<20 {
			return nil, formatErr("record %d: seq or size out of range", i)
		}
		if len(r.Inclusion) > merkle.MaxProofLen {
			return nil, formatErr("record %d: inclusion proof of %d hashes", i, len(r.Inclusion))
		}
		for _, h := range r.Inclusion {
			if len(h) != 32 {
				return nil, formatErr("record %d: inclusion hash of %d bytes", i, len(h))
			}
		}
	}
	if len(p.ArchiveKeyChain) > archivesig.MaxKeyChainFileLen {
		return nil, formatErr("archiveKeyChain of %d announcements", len(p.ArchiveKeyChain))
	}
	for i, a := range p.ArchiveKeyChain {
		if len(a) == 0 || len(a) > archivesig.MaxArchiveKeySize {
			return nil, formatErr("archiveKeyChain %d of %d bytes", i, len(a))
		}
	}
	if len(p.PCRAuthorization) > trustfile.MaxPCRAuthSize {
		return nil, formatErr("pcrAuthorization of %d bytes", len(p.PCRAuthorization))
	}
	for name := range p.Files {
		if !slices.Contains(Files, name) {
			return nil, formatErr("unknown file %.80q", name)
		}
	}
	for _, name := range Files {
		if _, ok := p.Files[name]; !ok && !optionalFile(name) {
			return nil, formatErr("file %s missing", name)
		}
	}
	return &p, nil
}
