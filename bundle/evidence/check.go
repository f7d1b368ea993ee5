package evidence

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/internal/strict"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Check names of a pack, stable: tools and tests match on them. Each
// export's proof is reported apart with the checks of bundle/proof.
const (
	CheckBagIt       = "pack.bagit"
	CheckIndex       = "pack.index"
	CheckFiles       = "pack.files"
	CheckCheckpoints = "archive.checkpoints"
	CheckConsistency = "archive.consistency"
	CheckPolicies    = "pack.policies"
	CheckProv        = "pack.prov"
	CheckVerifyMD    = "pack.verifymd"
	CheckPlaintext   = "pack.plaintext"
)

// CheckNames lists the pack-level checks Verify runs, in order.
var CheckNames = []string{CheckBagIt, CheckIndex, CheckFiles, CheckCheckpoints, CheckConsistency, CheckPolicies, CheckProv, CheckVerifyMD, CheckPlaintext}

// Report is the outcome of Verify: the pack-level checks and each
// export's proof report.
type Report struct {
	Checks  []verify.Check `json:"checks"`
	Exports []ExportReport `json:"exports"`
}

// ExportReport is one export's proof checks.
type ExportReport struct {
	Dir      string         `json:"dir"`
	ExportID string         `json:"exportId"`
	Report   *verify.Report `json:"report"`
}

// OK reports whether every check of the pack and of every proof passed.
func (r *Report) OK() bool {
	if len(r.Checks) == 0 || len(r.Exports) == 0 {
		return false
	}
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	for _, e := range r.Exports {
		if !e.Report.OK() {
			return false
		}
	}
	return true
}

// Failed names the failed checks: pack checks by name, proof checks as
// "<dir>: <check>".
func (r *Report) Failed() []string {
	var out []string
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c.Name)
		}
	}
	for _, e := range r.Exports {
		for _, n := range e.Report.Failed() {
			out = append(out, e.Dir+": "+n)
		}
	}
	return out
}

type packChecker struct {
	p     *Pack
	opts  proof.Options
	idx   *Index
	exps  []packedExport
	akey  ed25519.PublicKey
	notes map[string]string
	// notCompared: the consistency check had nothing to compare.
	notCompared bool
}

// Verify checks a pack whole (see CheckNames) and every proof in it with
// opts (the trust files and archive key an auditor pins).
func Verify(p *Pack, opts proof.Options) *Report {
	c := &packChecker{p: p, opts: opts, notes: map[string]string{}}
	rep := &Report{}
	idxErr := c.readIndex()
	if c.idx != nil {
		for _, e := range c.idx.Exports {
			er := ExportReport{Dir: e.Dir, ExportID: e.ExportID}
			pr, err := proof.Parse(p.Files[e.Dir+"/proof.json"])
			if err == nil && pr.Payload == nil {
				pr.Payload = p.Files[e.Dir+"/payload"] // nil when absent (purged)
			}
			if err != nil {
				er.Report = &verify.Report{Checks: []verify.Check{{Name: "proof.parse", Detail: err.Error()}}}
			} else {
				o := opts
				if o.Trust == nil {
					o.Trust = c.deviceTrust(e.Device)
				}
				if o.ArchiveKey == nil && c.akey != nil {
					o.ArchiveKey = c.akey
				}
				er.Report = proof.Verify(pr, o)
				c.noteUnpinned(er.Report, opts)
				if pe, err := (&Pack{Files: map[string][]byte{}}).addExport(e.Dir, pr); err == nil {
					pe.plaintext = e.Plaintext
					c.exps = append(c.exps, pe)
				}
			}
			rep.Exports = append(rep.Exports, er)
		}
	}
	for _, run := range []struct {
		name string
		fn   func() error
	}{
		{CheckBagIt, c.bagit},
		{CheckIndex, func() error { return idxErr }},
		{CheckFiles, c.files},
		{CheckCheckpoints, c.checkpoints},
		{CheckConsistency, c.consistency},
		{CheckPolicies, c.policies},
		{CheckProv, c.prov},
		{CheckVerifyMD, c.verifyMD},
		{CheckPlaintext, c.plaintexts},
	} {
		err := run.fn()
		ch := verify.Check{Name: run.name, OK: err == nil, Detail: c.notes[run.name]}
		if err != nil {
			ch.Detail = err.Error()
		}
		ch.NotCompared = run.name == CheckConsistency && c.notCompared
		rep.Checks = append(rep.Checks, ch)
	}
	return rep
}

// noteUnpinned says, on an export's trust.device and receipt.signature,
// that the trust file or archive key it was checked against is the pack's
// own: without --trust or --archive-key a pack vouches for itself.
func (c *packChecker) noteUnpinned(r *verify.Report, opts proof.Options) {
	for i := range r.Checks {
		ch := &r.Checks[i]
		if !ch.OK || ch.Skipped {
			continue
		}
		switch {
		case ch.Name == proof.CheckTrust && opts.Trust == nil:
			ch.Detail = "trust file carried by the pack, not pinned (give --trust to pin it)"
		case ch.Name == proof.CheckReceiptSignature && opts.ArchiveKey == nil && c.akey != nil:
			ch.Detail = "archive key " + archivesig.ArchiveKeyID(c.akey) + " carried by the pack, not pinned (give --archive-key to pin it)"
		}
	}
}

func (c *packChecker) deviceTrust(device string) []byte {
	for _, d := range c.idx.Devices {
		if d.Name == device {
			if t, ok := c.p.Files[d.File]; ok {
				return t
			}
		}
	}
	return nil
}

func (c *packChecker) needIndex() error {
	if c.idx == nil {
		return errors.New("not run: data/pack.json did not parse")
	}
	return nil
}

// bagit: the declaration, bag-info, and both manifests complete and right.
func (c *packChecker) bagit() error {
	f := c.p.Files
	var errs []string
	if !bytes.Equal(f["bagit.txt"], []byte(bundle.BagItDeclaration)) {
		errs = append(errs, "bagit.txt is not the BagIt 1.0 declaration")
	}
	var octets, n int
	data := map[string]bool{}
	tags := map[string]bool{}
	for name, d := range f {
		switch {
		case strings.HasPrefix(name, "data/"):
			octets += len(d)
			n++
			data[name] = true
		case name != "tagmanifest-sha256.txt":
			tags[name] = true
		}
	}
	info := string(f["bag-info.txt"])
	if !strings.HasPrefix(info, "Bag-Software-Agent: "+SoftwareAgent+"\n") || !strings.HasSuffix(info, fmt.Sprintf("\nPayload-Oxum: %d.%d\n", octets, n)) {
		errs = append(errs, "bag-info.txt: not an edgeseal pack's, or its Payload-Oxum is not the data's")
	}
	for _, m := range []struct {
		file  string
		names map[string]bool
	}{{"manifest-sha256.txt", data}, {"tagmanifest-sha256.txt", tags}} {
		listed := 0
		_, err := bundle.ScanManifest(f[m.file], func(name []byte, sum *[32]byte) {
			d, ok := f[string(name)]
			switch {
			case !m.names[string(name)] || !ok:
				errs = append(errs, fmt.Sprintf("%s lists %.100q, not a file it covers", m.file, name))
			case sha256.Sum256(d) != *sum:
				errs = append(errs, fmt.Sprintf("%s: %s changed", m.file, name))
			default:
				listed++
			}
		})
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", m.file, err))
		} else if listed != len(m.names) {
			errs = append(errs, fmt.Sprintf("%s lists %d of %d files", m.file, listed, len(m.names)))
		}
	}
	return joinErrs(errs)
}

// readIndex parses data/pack.json and checks that what it names is there.
func (c *packChecker) readIndex() error {
	raw, ok := c.p.Files[PathIndex]
	if !ok {
		return errors.New("no " + PathIndex)
	}
	idx, err := ParseIndex(raw)
	if err != nil {
		return err
	}
	c.idx = idx
	var errs []string
	errs = append(errs, exactIndex(idx, raw)...)
	if blk, rest := pem.Decode(c.p.Files[idx.Archive.Key]); blk == nil || blk.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
		errs = append(errs, idx.Archive.Key+": not one PUBLIC KEY block")
	} else if k, err := x509.ParsePKIXPublicKey(blk.Bytes); err != nil {
		errs = append(errs, idx.Archive.Key+": "+err.Error())
	} else if ek, ok := k.(ed25519.PublicKey); !ok || archivesig.ArchiveKeyID(ek) != idx.Archive.KeyID {
		errs = append(errs, idx.Archive.Key+" is not the Ed25519 key "+idx.Archive.KeyID)
	} else {
		c.akey = ek
	}
	errs = append(errs, exactKeys(c.p, idx)...)
	for _, d := range idx.Devices {
		if _, ok := c.p.Files[d.File]; !ok {
			errs = append(errs, d.File+" missing")
		}
	}
	return joinErrs(errs)
}

// ParseIndex reads data/pack.json strictly: unknown members refused, the
// version and type, at least one export, relative paths.
func ParseIndex(b []byte) (*Index, error) {
	if len(b) > 64<<20 {
		return nil, fmt.Errorf("evidence: pack.json: %w", wire.ErrTooLarge)
	}
	var idx Index
	if err := strict.Unmarshal(b, &idx); err != nil {
		return nil, wire.WrapFormat("evidence", "pack.json", err)
	}
	if idx.V != Version || idx.Type != IndexType || len(idx.Exports) == 0 {
		return nil, wire.FormatErr("evidence", "pack.json: version %d, type %.40q, %d exports", idx.V, idx.Type, len(idx.Exports))
	}
	paths := []string{idx.Archive.Key}
	for i, e := range idx.Exports {
		if e.Dir != fmt.Sprintf("data/exports/%03d", i+1) {
			return nil, wire.FormatErr("evidence", "pack.json: export %d in %.80q", i+1, e.Dir)
		}
	}
	for _, d := range idx.Devices {
		paths = append(paths, d.File)
	}
	for _, k := range idx.Archive.EarlierKeys {
		paths = append(paths, k.File)
	}
	if len(idx.Archive.KeyChain) > archivesig.MaxKeyChainFileLen || len(idx.Archive.EarlierKeys) > archivesig.MaxKeyChainFileLen {
		return nil, wire.FormatErr("evidence", "pack.json: key chain of %d announcements, %d earlier keys", len(idx.Archive.KeyChain), len(idx.Archive.EarlierKeys))
	}
	for _, cp := range idx.Archive.Checkpoints {
		paths = append(paths, cp.File)
	}
	for _, p := range idx.Policies {
		paths = append(paths, p.File)
	}
	for _, p := range paths {
		if !validPath(p) || !strings.HasPrefix(p, "data/") {
			return nil, wire.FormatErr("evidence", "pack.json: path %.80q", p)
		}
	}
	return &idx, nil
}

// files: every file of the pack is accounted for, and each export's
// folder holds exactly its proof and the proof's parts.
func (c *packChecker) files() error {
	if err := c.needIndex(); err != nil {
		return err
	}
	want := map[string][]byte{}
	for _, e := range c.exps {
		want[e.dir+"/proof.json"] = e.proofJSON
		for _, nf := range exportFiles(e) {
			want[e.dir+"/"+nf.path] = nf.data
		}
		if t := c.deviceTrust(e.proof.Device); !bytes.Equal(t, e.proof.Trust) {
			want["trust of "+e.proof.Device] = e.proof.Trust
		}
	}
	if len(c.exps) != len(c.idx.Exports) {
		return errors.New("not every export's proof parsed")
	}
	var errs []string
	for i, e := range c.exps {
		if c.idx.Exports[i] != e.indexEntry() {
			errs = append(errs, fmt.Sprintf("%s: its line in %s is not its proof's", e.dir, PathIndex))
		}
	}
	for name, d := range want {
		if got, ok := c.p.Files[name]; !ok || !bytes.Equal(got, d) {
			errs = append(errs, name+" is not the proof's")
		}
	}
	known := map[string]bool{PathIndex: true, PathProv: true, PathVerify: true, c.idx.Archive.Key: true,
		"bagit.txt": true, "bag-info.txt": true, "manifest-sha256.txt": true, "tagmanifest-sha256.txt": true}
	for _, d := range c.idx.Devices {
		known[d.File] = true
	}
	for _, k := range c.idx.Archive.EarlierKeys {
		known[k.File] = true
	}
	for _, cp := range c.idx.Archive.Checkpoints {
		known[cp.File] = true
	}
	for _, p := range c.idx.Policies {
		known[p.File] = true
	}
	for _, e := range c.exps {
		if e.plaintext != "" {
			known[e.plaintext] = true // pack.plaintext checks it
		}
	}
	for name := range c.p.Files {
		if _, ok := want[name]; !ok && !known[name] {
			errs = append(errs, name+" is not part of the pack")
		}
	}
	slices.Sort(errs)
	return joinErrs(errs)
}

// checkpoints: each archive checkpoint is signed by the archive key, or
// by an earlier key the pack's key chain leads from to it and that could
// sign a checkpoint of that size, and is the one the receipts naming its
// size carry, signed by the key of their proofs.
func (c *packChecker) checkpoints() error {
	if err := c.needIndex(); err != nil {
		return err
	}
	if c.akey == nil {
		return errors.New("not run: no archive key")
	}
	keys, err := c.archiveKeys()
	if err != nil {
		return err
	}
	var errs []string
	notes := map[uint64][]byte{}
	signer := map[uint64]ed25519.PublicKey{}
	earlier := 0
	for i, cp := range c.idx.Archive.Checkpoints {
		if i > 0 && cp.Size <= c.idx.Archive.Checkpoints[i-1].Size {
			errs = append(errs, "checkpoints not in size order")
		}
		raw := c.p.Files[cp.File]
		body, _, _ := bytes.Cut(raw, []byte("\n\n"))
		parsed, err := merkle.ParseAnyCheckpoint(append(body, '\n'))
		if err != nil || parsed.Size != cp.Size || parsed.Origin != c.idx.Archive.Origin || cp.File != "data/archive/checkpoints/"+strconv.FormatUint(cp.Size, 10)+".note" {
			errs = append(errs, cp.File+": not the archive's checkpoint of that size")
			continue
		}
		key := c.akey
		if cp.KeyID != "" {
			earlier++
			if cp.KeyID == c.idx.Archive.KeyID {
				errs = append(errs, cp.File+": keyId names the pack's key (it is absent then)")
				continue
			}
			if key, err = keys.Key(cp.KeyID, max(cp.Size, 1)-1, time.Now()); err != nil {
				errs = append(errs, fmt.Sprintf("%s: signed by %s, not a key the pack's key chain leads from for a log of %d: %v", cp.File, cp.KeyID, cp.Size, err))
				continue
			}
		}
		if err := proof.VerifyNote(raw, parsed.Origin, key); err != nil {
			errs = append(errs, cp.File+": "+err.Error())
		}
		notes[cp.Size], signer[cp.Size] = raw, key
	}
	if c.opts.ArchiveKey == nil {
		c.notes[CheckCheckpoints] = "archive key " + archivesig.ArchiveKeyID(c.akey) + " carried by the pack, not pinned (give --archive-key to pin it)"
	}
	if earlier > 0 {
		c.notes[CheckCheckpoints] = strings.TrimPrefix(c.notes[CheckCheckpoints]+fmt.Sprintf("; %d checkpoint(s) signed by earlier archive keys, vouched for by the key chain (%d announcements) to %s",
			earlier, len(c.idx.Archive.KeyChain), c.idx.Archive.KeyID), "; ")
	}
	for _, e := range c.exps {
		if !bytes.Equal(notes[e.cp.Size], []byte(e.receipt.ArchiveCheckpoint)) {
			errs = append(errs, fmt.Sprintf("%s: its receipt's archive checkpoint %d is not in the pack", e.dir, e.cp.Size))
		}
		if k, err := x509.ParsePKIXPublicKey(e.proof.ArchiveKey); err != nil || signer[e.cp.Size] == nil || !signer[e.cp.Size].Equal(k) {
			errs = append(errs, e.dir+": its proof names another archive key than its checkpoint's")
		}
	}
	return joinErrs(errs)
}

// consistency: each checkpoint is a prefix of the next.
func (c *packChecker) consistency() error {
	if err := c.needIndex(); err != nil {
		return err
	}
	cps := c.idx.Archive.Checkpoints
	if len(cps) > 1 && len(c.idx.Archive.Consistency) == 0 {
		c.notes[CheckConsistency] = fmt.Sprintf("not compared: %d archive checkpoints, each signed, without consistency proofs (a pack built offline)", len(cps))
		c.notCompared = true
		return nil
	}
	if len(c.idx.Archive.Consistency) != max(0, len(cps)-1) {
		return fmt.Errorf("%d consistency proofs for %d checkpoints", len(c.idx.Archive.Consistency), len(cps))
	}
	var errs []string
	for i, cons := range c.idx.Archive.Consistency {
		from, to := cps[i], cps[i+1]
		if cons.From != from.Size || cons.To != to.Size {
			errs = append(errs, fmt.Sprintf("proof %d is from %d to %d, not %d to %d", i, cons.From, cons.To, from.Size, to.Size))
			continue
		}
		a, err1 := noteCheckpoint(c.p.Files[from.File])
		b, err2 := noteCheckpoint(c.p.Files[to.File])
		if err := errors.Join(err1, err2); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		for _, h := range cons.Proof {
			if len(h) != 32 {
				errs = append(errs, "a consistency hash is not 32 bytes")
			}
		}
		if len(errs) > 0 {
			continue
		}
		if err := merkle.VerifyConsistency(merkle.ProofHashes(cons.Proof), a.Size, b.Size, a.Root, b.Root); err != nil {
			errs = append(errs, fmt.Sprintf("archive checkpoint %d is not a prefix of %d: %v", a.Size, b.Size, err))
		}
	}
	if len(cps) == 1 {
		c.notes[CheckConsistency] = "one archive checkpoint: nothing to compare"
	}
	return joinErrs(errs)
}

func noteCheckpoint(raw []byte) (merkle.Checkpoint, error) {
	body, _, _ := bytes.Cut(raw, []byte("\n\n"))
	return merkle.ParseAnyCheckpoint(append(slices.Clone(body), '\n'))
}

// policies: each policy file is a signed policy.change body whose digest
// names it; exports naming a policy not in the pack are noted.
func (c *packChecker) policies() error {
	if err := c.needIndex(); err != nil {
		return err
	}
	var errs []string
	have := map[string]bool{}
	for _, p := range c.idx.Policies {
		body := c.p.Files[p.File]
		d, _, err := verify.PolicyChange(body)
		switch {
		case err != nil:
			errs = append(errs, p.File+": "+err.Error())
		case !canonical(body):
			errs = append(errs, p.File+": not canonical JSON (the body of its policy.change record)")
		case d != p.Name || p.File != "data/policies/"+strings.TrimPrefix(d, wire.HashPrefix)+".json":
			errs = append(errs, p.File+" is policy "+d)
		default:
			have[d] = true
		}
	}
	var missing []string
	for _, e := range c.exps {
		if !have[e.export.Policy] && !slices.Contains(missing, e.export.Policy) {
			missing = append(missing, e.export.Policy)
		}
	}
	if len(missing) > 0 {
		c.notes[CheckPolicies] = "no signed policy.change in the bundles given for " + strings.Join(missing, ", ")
	}
	return joinErrs(errs)
}

// prov: the lineage document is JSON-LD with the PROV-O context, names
// every export's activity, and is the one this implementation writes for
// the proofs and the accesses of the index.
func (c *packChecker) prov() error {
	if err := c.needIndex(); err != nil {
		return err
	}
	if len(c.exps) == len(c.idx.Exports) {
		want, err := provDocument(c.idx, c.exps, c.idx.Accesses)
		if err != nil {
			return err
		}
		if !bytes.Equal(want, c.p.Files[PathProv]) {
			return fmt.Errorf("%s is not the lineage of the pack's proofs and accesses", PathProv)
		}
	}
	var doc struct {
		Context map[string]any   `json:"@context"`
		Graph   []map[string]any `json:"@graph"`
	}
	if err := json.Unmarshal(c.p.Files[PathProv], &doc); err != nil {
		return fmt.Errorf("%s: %w", PathProv, err)
	}
	if doc.Context["prov"] != provContext {
		return fmt.Errorf("%s: no PROV-O context", PathProv)
	}
	ids := map[string]bool{}
	for _, n := range doc.Graph {
		if id, ok := n["@id"].(string); ok {
			ids[id] = true
		}
	}
	for _, e := range c.idx.Exports {
		if !ids[urn("export", e.Device, e.Principal, e.ExportID)] {
			return fmt.Errorf("%s does not name export %q", PathProv, e.ExportID)
		}
	}
	return nil
}

// verifyMD: VERIFY.md is the recipe this implementation writes for the
// pack, so the commands an auditor runs are the ones documented.
func (c *packChecker) verifyMD() error {
	if err := c.needIndex(); err != nil {
		return err
	}
	if len(c.exps) != len(c.idx.Exports) {
		return errors.New("not run: not every proof parsed")
	}
	if !bytes.Equal(c.p.Files[PathVerify], verifyMD(c.idx, c.exps)) {
		return errors.New(PathVerify + " is not the recipe for this pack's files")
	}
	return nil
}

func joinErrs(errs []string) error {
	if len(errs) == 0 {
		return nil
	}
	if len(errs) > 20 {
		errs = append(errs[:20], fmt.Sprintf("and %d more", len(errs)-20))
	}
	return errors.New(strings.Join(errs, "; "))
}
