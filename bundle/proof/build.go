package proof

import (
	"maps"

	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"time"

	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"slices"
	"strings"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// ErrNotFound reports an export id no bundle given holds.
var ErrNotFound = errors.New("proof: export not found")

// Export names one export record of a bundle.
type Export struct {
	ExportID  string `json:"exportId"`
	Principal string `json:"principal"`
	Device    string `json:"device"`
	Seq       uint64 `json:"seq"`
	Time      string `json:"time"`
	App       string `json:"app"`
	Workflow  string `json:"workflow"`
	Policy    string `json:"policy"`
	Payload   string `json:"payload"` // the payload digest
}

func (e Export) String() string {
	return fmt.Sprintf("%s (principal %s, device %s, seq %d, %s)", e.ExportID, e.Principal, e.Device, e.Seq, e.Time)
}

// AmbiguousError reports an export id that names exports of more than one
// principal or device: the caller must say which.
type AmbiguousError struct {
	ExportID   string
	Candidates []Export
}

func (e *AmbiguousError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "proof: export id %q names %d exports; give the principal and device of one:", e.ExportID, len(e.Candidates))
	for _, c := range e.Candidates {
		b.WriteString("\n  " + c.String())
	}
	return b.String()
}

// Exports lists the export records of a bundle, in seq order. It parses
// the records only; it does not verify the bundle.
func Exports(b *bundle.Bundle) ([]Export, error) {
	recs, err := b.Records()
	if err != nil {
		return nil, err
	}
	var out []Export
	for _, raw := range recs {
		r, err := custody.ParseRecord(raw)
		if err != nil {
			return nil, fmt.Errorf("proof: %w", err)
		}
		if r.Type != custody.TypeExport {
			continue
		}
		e, err := r.ExportBody()
		if err != nil {
			return nil, fmt.Errorf("proof: record %d: %w", r.Seq, err)
		}
		out = append(out, Export{ExportID: e.ExportID, Principal: r.Actor.ID, Device: r.Device, Seq: r.Seq,
			Time: wire.FormatTime(r.Time), App: e.App, Workflow: e.Workflow, Policy: e.Policy, Payload: e.Payload.Digest})
	}
	return out, nil
}

// Select picks the export id's record among exports, narrowed by principal
// and device when not empty: ErrNotFound when none matches, an
// *AmbiguousError when more than one does.
func Select(exports []Export, id, principal, device string) (Export, error) {
	var hit []Export
	for _, e := range exports {
		if e.ExportID == id && (principal == "" || e.Principal == principal) && (device == "" || e.Device == device) {
			hit = append(hit, e)
		}
	}
	switch len(hit) {
	case 0:
		return Export{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	case 1:
		return hit[0], nil
	}
	return Export{}, &AmbiguousError{ExportID: id, Candidates: hit}
}

// Input is what Build takes: a bundle's bytes as sealed, the export in it,
// and what the archive answered.
type Input struct {
	Bundle    []byte // the bundle tar
	ExportID  string
	Principal string // optional when the id is unique in the bundle
	Trust     []byte // DEVICE.json of the device
	Receipt   []byte // the archive's receipt envelope for the bundle
	// ArchiveKey is the archive key that signed the receipt: PKIX DER or
	// a raw 32-byte Ed25519 key.
	ArchiveKey []byte
	// ArchiveKeyChain, for a receipt signed by a key the archive has
	// since rotated away from (ArchiveKey), are the announcements from
	// the one retiring it to the current key (Proof.ArchiveKeyChain).
	ArchiveKeyChain [][]byte
	// PCRAuthorizations are tpm.pcrs.authorized record bodies of the
	// device's chain (those of the bundle itself are added): for a
	// version 2 trust whose golden values the quote does not show, the
	// newest one that authorizes the quoted values goes in the proof.
	PCRAuthorizations [][]byte
}

// Build makes the proof of one export of a bundle; the proof shares no
// memory with the input. It refuses a receipt
// that is not for this bundle and an export whose payload is missing
// without a purge record of the bundle. It does not verify the bundle's
// seal or the receipt's signature (Verify does, on the result).
func Build(in Input) (*Proof, error) {
	b, err := bundle.ReadBytes(in.Bundle, bundle.DefaultLimits)
	if err != nil {
		return nil, fmt.Errorf("proof: %w", err)
	}
	exports, err := Exports(b)
	if err != nil {
		return nil, err
	}
	ex, err := Select(exports, in.ExportID, in.Principal, "")
	if err != nil {
		return nil, err
	}
	_, st, err := b.Statement()
	if err != nil {
		return nil, fmt.Errorf("proof: seal: %w", err)
	}
	cp, err := merkle.ParseCheckpoint([]byte(st.Predicate.Checkpoint))
	if err != nil {
		return nil, fmt.Errorf("proof: seal: %w", err)
	}
	recs, err := b.Records()
	if err != nil {
		return nil, err
	}
	first := st.Predicate.FirstSeq
	tree := &merkle.Partial{Start: first, Range: merkle.ProofHashes(st.Predicate.RangeHashes)}
	for _, r := range recs {
		tree.Leaves = append(tree.Leaves, merkle.LeafHash(r))
	}
	if tree.Size() != cp.Size {
		return nil, fmt.Errorf("proof: bundle holds records to %d, its checkpoint is of %d", tree.Size(), cp.Size)
	}
	seqs, purged, err := related(recs, first, ex)
	if err != nil {
		return nil, err
	}
	p := &Proof{V: Version, Type: Type, Device: ex.Device, ExportID: ex.ExportID, Principal: ex.Principal,
		Seal: bytes.Clone(b.Files[bundle.PathSeal]), Files: map[string][]byte{}, Trust: bytes.Clone(in.Trust), Receipt: bytes.Clone(in.Receipt)}
	for _, seq := range seqs {
		path, err := merkle.InclusionProof(tree.Hash, seq, cp.Size)
		if err != nil {
			return nil, fmt.Errorf("proof: record %d: %w", seq, err)
		}
		p.Records = append(p.Records, Record{Seq: seq, Record: string(recs[seq-first]), Inclusion: merkle.ProofBytes(path)})
	}
	// The payload's file: the plaintext, or the ciphertext (named by its
	// own digest) of a payload the agent encrypted.
	if ex.Seq < first || ex.Seq-first >= uint64(len(recs)) {
		return nil, fmt.Errorf("proof: export %q: record %d not in the bundle", ex.ExportID, ex.Seq)
	}
	d, enc, _, err := custody.RecordPayloadFile(recs[ex.Seq-first])
	if err != nil {
		return nil, fmt.Errorf("proof: %w", err)
	}
	path := bundle.PayloadPath(d)
	if enc {
		path += bundle.EncryptedPayload
	}
	if data, ok := b.Files[path]; ok {
		p.Payload = bytes.Clone(data)
	} else if !purged {
		return nil, fmt.Errorf("proof: payload %s of export %q missing from the bundle", ex.Payload, ex.ExportID)
	}
	for _, name := range Files {
		if data, ok := b.Files[name]; ok {
			p.Files[name] = bytes.Clone(data)
		}
	}
	cands := slices.Clone(in.PCRAuthorizations)
	for _, r := range recs {
		if bytes.Contains(r, []byte(`"type":"`+custody.TypePCRsAuthorized+`"`)) {
			if rec, err := custody.ParseRecord(r); err == nil && rec.Type == custody.TypePCRsAuthorized {
				cands = append(cands, rec.Body)
			}
		}
	}
	p.PCRAuthorization = pcrAuthorization(in.Trust, st, cands)
	env, rc, err := archivesig.ParseReceipt(in.Receipt)
	if err != nil {
		return nil, fmt.Errorf("proof: receipt: %w", err)
	}
	if p.ArchiveKey, err = signingKey(in.ArchiveKey, env, rc, in.Receipt); err != nil {
		return nil, err
	}
	for _, a := range in.ArchiveKeyChain {
		p.ArchiveKeyChain = append(p.ArchiveKeyChain, bytes.Clone(a))
	}
	// The bundle digest is not recomputed (a hash over the whole bundle):
	// in format 2 one checkpoint has one bundle.
	if rc.Device != ex.Device || rc.CheckpointSize != cp.Size || rc.CheckpointRoot != wire.FormatHash(cp.Root) {
		return nil, fmt.Errorf("proof: the receipt is for bundle %s (checkpoint %d of %s), not this one", rc.BundleDigest, rc.CheckpointSize, rc.Device)
	}
	return p, nil
}

// pcrAuthorization picks, for a version 2 trust whose golden values the
// quote does not show, the newest candidate statement for the device that
// authorizes the quoted values (nil when none is needed or found; Verify
// checks its signature).
func pcrAuthorization(trust []byte, st *bundle.Statement, cands [][]byte) []byte {
	t, err := trustfile.ParseTrust(trust)
	if err != nil || t.PCRPolicy() == nil {
		return nil
	}
	pcrs, values, err := st.Predicate.Quote.Values()
	if err != nil {
		return nil
	}
	gp, gv := t.PCRs()
	if slices.Equal(pcrs, gp) && maps.EqualFunc(values, gv, bytes.Equal) {
		return nil
	}
	var best *trustfile.PCRAuthorization
	var bestRaw []byte
	for _, c := range cands {
		a, err := trustfile.ParsePCRAuthorization(c)
		if err != nil || a.Device != t.DeviceName() {
			continue
		}
		ap, av := a.PCRs()
		if slices.Equal(ap, pcrs) && maps.EqualFunc(av, values, bytes.Equal) && (best == nil || a.Time > best.Time) {
			best, bestRaw = a, c
		}
	}
	return bytes.Clone(bestRaw)
}

// related returns the seqs of the export record and of its related records
// in the bundle (the export first, the others by seq), and whether a purge record deleted its payload.
func related(recs [][]byte, first uint64, ex Export) ([]uint64, bool, error) {
	seqs := []uint64{ex.Seq}
	purged := false
	policySeq := int64(-1)
	for i, raw := range recs {
		seq := first + uint64(i)
		if seq == ex.Seq {
			continue
		}
		r, err := custody.ParseRecord(raw)
		if err != nil {
			return nil, false, fmt.Errorf("proof: %w", err)
		}
		switch r.Type {
		case custody.TypeExportRejected:
			var body custody.RejectedBody
			if json.Unmarshal(r.Body, &body) == nil && body.ExportID == ex.ExportID && r.Actor.ID == ex.Principal {
				seqs = append(seqs, seq)
			}
		case custody.TypeRetentionPurge:
			var body custody.PurgeBody
			if json.Unmarshal(r.Body, &body) == nil && slices.Contains(body.Payloads, ex.Payload) && seq > ex.Seq {
				seqs = append(seqs, seq)
				purged = true
			}
		case custody.TypePolicyChange:
			if seq > ex.Seq {
				continue
			}
			if d, _, err := verify.PolicyChange(r.Body); err == nil && d == ex.Policy {
				policySeq = int64(seq)
			} else {
				policySeq = -1 // a later policy.change than the one the export names
			}
		}
	}
	if policySeq >= 0 {
		seqs = append(seqs, uint64(policySeq))
	}
	slices.Sort(seqs[1:]) // the export first, then the related records by seq
	if len(seqs) > MaxRecords {
		return nil, false, fmt.Errorf("proof: export %q has %d related records, more than %d", ex.ExportID, len(seqs), MaxRecords)
	}
	return seqs, purged, nil
}

// signingKey is the archive key that signed the receipt, as PKIX DER:
// the key given, or the key the receipt's key chain leads to from it
// after the archive rotated its key.
func signingKey(given []byte, env *dsse.Envelope, rc *archivesig.Receipt, raw []byte) ([]byte, error) {
	der, err := pkixKey(given)
	if err != nil {
		return nil, err
	}
	root, _ := parseArchiveKey(der)
	if len(env.Signatures) == 1 && env.Signatures[0].KeyID == archivesig.ArchiveKeyID(root) {
		return der, nil
	}
	cp, err := rc.ArchiveRoot()
	if err != nil {
		return nil, fmt.Errorf("proof: receipt: %w", err)
	}
	keys := archivesig.NewArchiveKeys(cp.Origin, root)
	if _, _, err := keys.VerifyReceipt(raw, time.Now()); err != nil {
		return nil, fmt.Errorf("proof: the receipt is not signed by the archive key given or a key its chain leads to: %w", err)
	}
	pub, err := keys.Key(env.Signatures[0].KeyID, rc.LogIndex, time.Now())
	if err != nil {
		return nil, fmt.Errorf("proof: receipt: %w", err)
	}
	return x509.MarshalPKIXPublicKey(pub)
}

// pkixKey returns an archive Ed25519 key as PKIX DER.
func pkixKey(k []byte) ([]byte, error) {
	if len(k) == ed25519.PublicKeySize {
		return x509.MarshalPKIXPublicKey(ed25519.PublicKey(k))
	}
	if _, err := parseArchiveKey(k); err != nil {
		return nil, err
	}
	return k, nil
}

// parseArchiveKey reads an archive key given as PKIX DER.
func parseArchiveKey(der []byte) (ed25519.PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("proof: archive key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("proof: archive key: not an Ed25519 key")
	}
	return pub, nil
}
