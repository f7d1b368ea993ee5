package verify

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/internal/strict"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Checks of the bag, the seal, the records, the payloads and the tree.

func (v *verifier) bagitStructure() error {
	var errs []string
	if string(v.b.Files[bundle.PathBagIt]) != bundle.BagItDeclaration {
		errs = append(errs, "bagit.txt is not the BagIt 1.0 declaration")
	}
	info, err := bundle.ParseBagInfo(v.b.Files[bundle.PathBagInfo])
	if err != nil {
		return err
	}
	if got, want := info["Payload-Oxum"], strconv.Itoa(v.octets)+"."+strconv.Itoa(v.nData); got != want && !v.purgedOxum(got) {
		errs = append(errs, fmt.Sprintf("Payload-Oxum %s, data holds %s", got, want))
	}
	if v.cp != nil {
		if info["Origin"] != v.cp.Origin || info["Checkpoint-Size"] != strconv.FormatUint(v.cp.Size, 10) {
			errs = append(errs, "bag-info Origin/Checkpoint-Size differ from the sealed checkpoint")
		}
	}
	for _, p := range bundle.RequiredPaths() {
		if _, ok := v.b.Files[p]; !ok {
			errs = append(errs, "missing "+p)
		}
	}
	for i := range v.files {
		if !v.files[i].known {
			errs = append(errs, fmt.Sprintf("unknown path %.100q", v.files[i].name))
		}
	}
	return joinErrs(errs)
}

// checkManifest compares the manifest at path with the files of set: one
// line for each, with its digest, and no other line.
func (v *verifier) checkManifest(path string, set uint8, want int) error {
	var errs []string
	listed := 0
	lines, err := bundle.ScanManifest(v.b.Files[path], func(name []byte, sum *[32]byte) {
		i, ok := v.lookup(name)
		if !ok || v.files[i].set != set {
			return
		}
		listed++
		if *sum != v.files[i].sum {
			errs = append(errs, string(name)+" digest differs")
		}
	})
	if err != nil {
		return err
	}
	if listed != want {
		names := map[string]bool{}
		_, _ = bundle.ScanManifest(v.b.Files[path], func(name []byte, _ *[32]byte) { names[string(name)] = true })
		for i := range v.files {
			if f := &v.files[i]; f.set == set && !names[f.name] {
				errs = append(errs, f.name+" not listed")
			}
		}
	}
	gone, bad := v.goneLines(path, set)
	errs = append(errs, bad...)
	if lines != want+gone {
		errs = append(errs, fmt.Sprintf("%d entries for %d files", lines, want+gone))
	}
	return joinErrs(errs)
}

func (v *verifier) bagitManifest() error {
	return v.checkManifest(bundle.PathManifest, inManifest, v.nData)
}

func (v *verifier) bagitTagManifest() error {
	return v.checkManifest(bundle.PathTagManifest, inTagManifest, v.nTag)
}

func (v *verifier) sealSignature() error {
	if err := v.needPred(); err != nil {
		return err
	}
	if v.signing == nil {
		return skip("keys/signing.pub did not parse")
	}
	if id := custody.KeyID(v.b.Files[bundle.PathSigningPub]); v.pred.KeyID != id {
		return fmt.Errorf("statement key id %.80s is not keys/signing.pub (%s)", v.pred.KeyID, id)
	}
	return v.env.VerifyECDSA(v.pred.KeyID, v.signing.Key)
}

func (v *verifier) sealSubject() error {
	if err := v.needPred(); err != nil {
		return err
	}
	if bundle.FormatOf(v.st.PredicateType) == bundle.FormatV2 {
		return v.sealSubjectsV2()
	}
	sum, _ := v.sum(bundle.PathRecords)
	got, want := v.st.Subject[0].Digest["sha256"], hexSum(sum)
	if got != want {
		return fmt.Errorf("subject sha256 %s, %s has %s", got, bundle.PathRecords, want)
	}
	return nil
}

func (v *verifier) checkpointOrigin() error {
	if err := v.needPred(); err != nil {
		return err
	}
	if v.cp == nil {
		_, err := merkle.ParseCheckpoint([]byte(v.pred.Checkpoint))
		return err
	}
	if err := v.needTrust(); err != nil {
		return err
	}
	if v.cp.Origin != v.t.Origin {
		return fmt.Errorf("origin %q, device is %q", v.cp.Origin, v.t.Origin)
	}
	return nil
}

func (v *verifier) checkpointPrevious() error {
	if err := v.needPred(); err != nil {
		return err
	}
	if v.prevCP == nil {
		_, err := merkle.ParseCheckpoint([]byte(v.pred.PreviousCheckpoint))
		return fmt.Errorf("previous: %w", err)
	}
	if v.cp == nil {
		return skip("checkpoint did not parse")
	}
	p := v.prevCP
	switch {
	case p.Size > 0 && p.Origin != v.cp.Origin:
		return fmt.Errorf("previous origin %q differs from %q", p.Origin, v.cp.Origin)
	case p.Size > v.cp.Size:
		return fmt.Errorf("previous size %d beyond size %d", p.Size, v.cp.Size)
	case v.pred.FirstSeq != p.Size:
		return fmt.Errorf("firstSeq %d, previous size %d", v.pred.FirstSeq, p.Size)
	case p.Size == 0 && v.pred.PreviousCheckpoint != "":
		return errors.New("previous checkpoint of size 0 (write it empty)")
	}
	if v.prev != nil && v.pred.PreviousCheckpoint != v.prev.Checkpoint {
		return fmt.Errorf("previous checkpoint %q is not the last verified %q",
			strings.ReplaceAll(v.pred.PreviousCheckpoint, "\n", `\n`), strings.ReplaceAll(v.prev.Checkpoint, "\n", `\n`))
	}
	return nil
}

func (v *verifier) recordsSequence() error {
	if err := v.needRecords(); err != nil {
		return err
	}
	if err := v.needCheckpoints(); err != nil {
		return err
	}
	if want := v.cp.Size - min(v.cp.Size, v.prevCP.Size); uint64(len(v.recs)) != want {
		return fmt.Errorf("%d records, checkpoints %d..%d need %d", len(v.recs), v.prevCP.Size, v.cp.Size, want)
	}
	for i, r := range v.recs {
		if want := v.pred.FirstSeq + uint64(i); r.Seq != want {
			return fmt.Errorf("record %d has seq %d, want %d", i, r.Seq, want)
		}
	}
	return nil
}

func (v *verifier) recordsChain() error {
	if err := v.needRecords(); err != nil {
		return err
	}
	if err := v.needPred(); err != nil {
		return err
	}
	want, _ := wire.ParseHash(v.pred.PreviousLeaf)
	for i, r := range v.recs {
		if r.Prev != want {
			return fmt.Errorf("record seq %d prev %s, want %s", r.Seq, wire.FormatHash(r.Prev), wire.FormatHash(want))
		}
		want = v.leaves[i]
	}
	return nil
}

func (v *verifier) recordsDevice() error {
	if err := v.needRecords(); err != nil {
		return err
	}
	if err := v.needTrust(); err != nil {
		return err
	}
	dev := v.t.DeviceName()
	for _, r := range v.recs {
		if r.Device != dev {
			return fmt.Errorf("record seq %d from device %q, bundle is %q's", r.Seq, r.Device, dev)
		}
	}
	return nil
}

func (v *verifier) recordsTime() error {
	if err := v.needRecords(); err != nil {
		return err
	}
	var last string
	if v.prev != nil {
		last = v.prev.LastTime
	}
	for _, r := range v.recs {
		// TimeLayout strings order as the times they denote. A parsed
		// record keeps its time as written, which is FormatTime(r.Time).
		ts := r.TimeText()
		if ts == "" {
			ts = wire.FormatTime(r.Time)
		}
		if ts < last {
			return fmt.Errorf("record seq %d at %s before %s", r.Seq, ts, last)
		}
		last = ts
	}
	return nil
}

// payloadRef is what an export record says of the payload file it names:
// the file is data/payloads/<hex of stored> (plain) or
// data/payloads/<hex of stored>.hpke (encrypted, stored the ciphertext's
// digest).
type payloadRef struct {
	size   int64 // of the file: the plaintext's, or the ciphertext's for a known suite
	plain  [32]byte
	cipher *payloadcipher.Cipher // nil: plaintext
	n      int                   // export records naming the file
}

// fileSize is the size the file of r must have (-1: unknown suite or
// payload cipher version).
func (r *payloadRef) fileSize() int64 {
	if r.cipher == nil {
		return r.size
	}
	return r.cipher.FileSize(r.size)
}

// payloadRefs collects the payload files export records of this bundle
// reference (by the digest their path names) and the digests
// retention.purge records of this bundle delete.
func (v *verifier) payloadRefs() (refs map[[32]byte]*payloadRef, purged map[[32]byte]bool, err error) {
	if v.refs != nil {
		return v.refs, v.purged, nil
	}
	refs, purged = make(map[[32]byte]*payloadRef, len(v.recs)), map[[32]byte]bool{}
	for _, r := range v.recs {
		switch r.Type {
		case custody.TypeExport:
			e, ok := r.ParsedExport()
			if !ok {
				eb, err := r.ExportBody()
				if err != nil {
					return nil, nil, err
				}
				e = *eb
			}
			d, err := wire.ParseHash(e.Payload.Digest)
			if err != nil {
				return nil, nil, err
			}
			ref := &payloadRef{size: e.Payload.Size, plain: d, cipher: e.PayloadCipher}
			if c := e.PayloadCipher; c != nil {
				if d, err = wire.ParseHash(c.Digest); err != nil {
					return nil, nil, err
				}
			}
			if old, ok := refs[d]; ok {
				old.n++
				continue
			}
			ref.n = 1
			refs[d] = ref
		case custody.TypeRetentionPurge:
			var p custody.PurgeBody
			if err := strict.Unmarshal(r.Body, &p); err != nil {
				return nil, nil, err
			}
			for _, s := range p.Payloads {
				d, _ := wire.ParseHash(s)
				purged[d] = true
			}
		}
	}
	v.refs, v.purged = refs, purged
	return refs, purged, nil
}

// isPurged: the payload of r (file digest d) was purged by a record of
// this bundle or at the archive.
func (v *verifier) isPurged(d [32]byte, r *payloadRef, purged map[[32]byte]bool) bool {
	return purged[d] || purged[r.plain] || v.gone[d] || v.gone[r.plain]
}

func (v *verifier) payloadsDigest() error {
	var errs []string
	for _, i := range v.pays {
		f := &v.files[i]
		if f.sum != f.digest {
			errs = append(errs, fmt.Sprintf("%s holds %d bytes of sha256 %s", f.name, len(f.data), hexSum(f.sum)))
		}
	}
	if err := v.needRecords(); err != nil {
		errs = append(errs, err.Error())
		return joinErrs(errs)
	}
	refs, purged, err := v.payloadRefs()
	if err != nil {
		return err
	}
	for d, r := range refs {
		s, ok := v.byDigest[d]
		plain, enc := ok && s.plain >= 0, ok && s.enc >= 0
		want, wrong := plain, enc
		idx := s.plain
		if r.cipher != nil {
			want, wrong, idx = enc, plain, s.enc
		}
		switch {
		case wrong && r.cipher != nil:
			errs = append(errs, "payload "+wire.FormatHash(d)+" is named by an encrypted record but present in plaintext")
		case wrong:
			errs = append(errs, "payload "+wire.FormatHash(d)+" is named by a plaintext record but present as .hpke")
		case purged[d] || purged[r.plain]:
		case (v.gone[d] || v.gone[r.plain]) && want:
			errs = append(errs, "payload "+wire.FormatHash(d)+" purged at the archive is present")
		case v.gone[d] || v.gone[r.plain]:
		case !want:
			errs = append(errs, "missing payload "+wire.FormatHash(d))
		case r.fileSize() >= 0 && int64(len(v.files[idx].data)) != r.fileSize():
			errs = append(errs, fmt.Sprintf("payload %s has %d bytes, record says %d", wire.FormatHash(d), len(v.files[idx].data), r.fileSize()))
		}
	}
	return joinErrs(errs)
}

func (v *verifier) payloadsReferenced() error {
	if err := v.needRecords(); err != nil {
		return err
	}
	refs, purged, err := v.payloadRefs()
	if err != nil {
		return err
	}
	var errs []string
	for _, i := range v.pays {
		f := &v.files[i]
		r, ok := refs[f.digest]
		switch {
		case !ok || (r.cipher != nil) != f.enc:
			errs = append(errs, f.name+" referenced by no export record")
		case purged[f.digest] || purged[r.plain]:
			errs = append(errs, f.name+" present but purged")
		}
	}
	return joinErrs(errs)
}

// payloadCipher checks what the records say of encrypted payloads, with
// no private key: a suite and payload cipher version this version knows,
// one record per ciphertext (each ciphertext is encrypted under a key
// bound to its record, so a ciphertext two records name was copied), and
// a ciphertext of the suite's form. The ciphertext's digest and size are payloads.digest's.
func (v *verifier) payloadCipher() error {
	if err := v.needRecords(); err != nil {
		return err
	}
	refs, purged, err := v.payloadRefs()
	if err != nil {
		return err
	}
	var errs []string
	for d, r := range refs {
		if r.cipher == nil {
			continue
		}
		if err := r.cipher.Check(); err != nil {
			errs = append(errs, fmt.Sprintf("payload %s: %v", wire.FormatHash(r.plain), err))
			continue
		}
		if r.n > 1 {
			errs = append(errs, fmt.Sprintf("ciphertext %s named by %d export records (moved or copied)", wire.FormatHash(d), r.n))
		}
		s, ok := v.byDigest[d]
		if !ok || s.enc < 0 || v.isPurged(d, r, purged) {
			continue
		}
		if _, _, err := payloadcipher.Split(r.cipher.Suite(), v.files[s.enc].data); err != nil {
			errs = append(errs, fmt.Sprintf("payload %s: %v", wire.FormatHash(r.plain), err))
		}
	}
	return joinErrs(errs)
}

func (v *verifier) merkleRoot() error {
	if err := v.needCheckpoints(); err != nil {
		return err
	}
	rng := merkle.ProofHashes(v.pred.RangeHashes)
	root, _, err := merkle.FoldRange(rng, v.pred.FirstSeq, v.leaves)
	if err != nil {
		return err
	}
	if root != v.cp.Root {
		return fmt.Errorf("records fold to root %s, checkpoint says %s", wire.FormatHash(root), wire.FormatHash(v.cp.Root))
	}
	if v.pred.FirstSeq+uint64(len(v.leaves)) != v.cp.Size {
		return fmt.Errorf("%d leaves from %d do not make size %d", len(v.leaves), v.pred.FirstSeq, v.cp.Size)
	}
	return nil
}

func (v *verifier) merkleRange() error {
	if err := v.needCheckpoints(); err != nil {
		return err
	}
	rng := merkle.ProofHashes(v.pred.RangeHashes)
	if v.prevCP.Size == 0 {
		if len(rng) != 0 {
			return errors.New("range hashes for an empty previous tree")
		}
		return v.nothingToCompare("first seal: no previous tree")
	}
	if _, _, err := merkle.FoldRange(rng, v.prevCP.Size, nil); err != nil {
		return err
	}
	if root := merkle.RangeRoot(rng); root != v.prevCP.Root {
		return fmt.Errorf("range hashes fold to %s, previous checkpoint says %s", wire.FormatHash(root), wire.FormatHash(v.prevCP.Root))
	}
	return nil
}

func (v *verifier) merkleConsistency() error {
	if err := v.needCheckpoints(); err != nil {
		return err
	}
	if v.prevCP.Size == 0 && len(v.pred.ConsistencyProof) == 0 {
		return v.nothingToCompare("first seal: no previous tree")
	}
	return merkle.VerifyConsistency(merkle.ProofHashes(v.pred.ConsistencyProof), v.prevCP.Size, v.cp.Size, v.prevCP.Root, v.cp.Root)
}

func (v *verifier) previousLeaf() error {
	if err := v.needCheckpoints(); err != nil {
		return err
	}
	got, _ := wire.ParseHash(v.pred.PreviousLeaf)
	if v.prevCP.Size == 0 && got != ([32]byte{}) {
		return fmt.Errorf("first seal with previous leaf %s", wire.FormatHash(got))
	}
	if v.prev != nil && v.pred.PreviousLeaf != v.prev.LastLeaf {
		return fmt.Errorf("previous leaf %s, last verified leaf %s", v.pred.PreviousLeaf, v.prev.LastLeaf)
	}
	if v.prev == nil && v.prevCP.Size > 0 {
		return v.nothingToCompare("no previous state")
	}
	return nil
}

func (v *verifier) state() *State {
	s := &State{Checkpoint: v.pred.Checkpoint, Counter: v.pred.Counter, Clock: v.qa.Clock, LastLeaf: v.pred.PreviousLeaf}
	if v.prev != nil {
		s.LastTime = v.prev.LastTime
	}
	if n := len(v.recs); n > 0 {
		s.LastLeaf = wire.FormatHash(v.leaves[n-1])
		s.LastTime = wire.FormatTime(v.recs[n-1].Time)
	}
	s.PCRs = v.pcrState()
	return s
}
