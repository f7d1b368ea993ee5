package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Format identifiers of a pack.
const (
	Version       = 1
	IndexType     = "edgeseal.evidence-pack"
	SoftwareAgent = "edgeseal evidence/1"
	PathIndex     = "data/pack.json"
	PathProv      = "data/prov.jsonld"
	PathVerify    = "VERIFY.md"
)

// Access is one access to archived custody data, shown in the lineage
// document: who did what to which export or bundle, when.
type Access struct {
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`  // who (operator, auditor, API client)
	Action string    `json:"action"` // "read", "proof", "evidence", ...
	Target string    `json:"target"` // an export id or a bundle digest
	Detail string    `json:"detail,omitempty"`
}

// Input is what Build packs.
type Input struct {
	Proofs []*proof.Proof
	// Policies are policy.change record bodies (the signed policy
	// versions); those the exports name are packed.
	Policies [][]byte
	// Consistency proves the archive log of size old a prefix of the log
	// of size: the archive's read API has it. Offline it is nil: the pack
	// then carries no consistency proof, and Verify reports its archive
	// checkpoints as each signed but not compared.
	Consistency func(ctx context.Context, old, size uint64) ([][32]byte, error)
	Selection   string   // how the exports were chosen, in words
	Requester   string   // who builds the pack
	Accesses    []Access // earlier accesses to show in the lineage document
	Now         time.Time
	// Journal records the building of the pack as an access before it is
	// built; nil when the caller journals it elsewhere.
	Journal func(ctx context.Context, a Access) error
	// Plaintexts, when set, are the decrypted payloads of the proofs'
	// encrypted exports, in the order of Proofs (nil for an export
	// packed without its plaintext). Each must be the plaintext its
	// record names (digest and size); it is packed as "plaintext" beside
	// the export's proof.
	Plaintexts [][]byte
}

// Index is data/pack.json: what the pack holds and where.
type Index struct {
	V         int           `json:"v"`
	Type      string        `json:"type"`
	Created   string        `json:"created"`
	Selection string        `json:"selection"`
	Requester string        `json:"requester"`
	Exports   []IndexExport `json:"exports"`
	Devices   []IndexFile   `json:"devices"`
	Archive   IndexArchive  `json:"archive"`
	Policies  []IndexFile   `json:"policies"`
	// Accesses are those the lineage document shows, the building of
	// this pack last.
	Accesses []Access `json:"accesses"`
}

// IndexExport is one export's folder.
type IndexExport struct {
	Dir       string `json:"dir"`
	ExportID  string `json:"exportId"`
	Principal string `json:"principal"`
	Device    string `json:"device"`
	Seq       uint64 `json:"seq"`
	Bundle    string `json:"bundle"`
	LogIndex  uint64 `json:"logIndex"`
	LogSize   uint64 `json:"logSize"` // the archive checkpoint its receipt names
	// Plaintext is the path of the decrypted payload of an encrypted
	// export (Dir + "/plaintext"), when the pack carries it.
	Plaintext string `json:"plaintext,omitempty"`
}

// IndexFile names a file by what it is for (a device, a policy digest).
type IndexFile struct {
	Name string `json:"name"`
	File string `json:"file"`
}

// IndexArchive is the archive's key, checkpoints and consistency proofs.
type IndexArchive struct {
	Origin      string            `json:"origin"`
	KeyID       string            `json:"keyId"`
	Key         string            `json:"key"` // PEM file
	Checkpoints []IndexCheckpoint `json:"checkpoints"`
	Consistency []Consistency     `json:"consistency"`
	// KeyChain holds, when receipts or checkpoints of the pack are signed
	// by keys the archive has since rotated away from, the archive's key
	// announcements from the one retiring the oldest of them to Key,
	// oldest first; EarlierKeys are those keys' PEM files, Name the key id.
	KeyChain    [][]byte    `json:"keyChain,omitempty"`
	EarlierKeys []IndexFile `json:"earlierKeys,omitempty"`
}

// IndexCheckpoint is a signed archive checkpoint file.
type IndexCheckpoint struct {
	Size uint64 `json:"size"`
	File string `json:"file"`
	// KeyID is the earlier archive key that signed it; absent when Key
	// did.
	KeyID string `json:"keyId,omitempty"`
}

// Consistency proves the checkpoint of size From a prefix of the one of
// size To.
type Consistency struct {
	From  uint64   `json:"from"`
	To    uint64   `json:"to"`
	Proof [][]byte `json:"proof"`
}

// Pack is an evidence pack in memory: its files by slash path.
type Pack struct {
	Files map[string][]byte
}

// Bytes is the sum of the pack's file sizes.
func (p *Pack) Bytes() int64 {
	var n int64
	for _, d := range p.Files {
		n += int64(len(d))
	}
	return n
}

// Build assembles the pack of in.Proofs. It journals the access first
// (in.Journal) and fails when that fails.
func Build(ctx context.Context, in Input) (*Pack, error) {
	if len(in.Proofs) == 0 {
		return nil, errors.New("evidence: no export to pack")
	}
	now := in.Now
	if now.IsZero() {
		now = time.Now()
	}
	requester := in.Requester
	if requester == "" {
		requester = "edgeseal evidence"
	}
	self := Access{Time: now.UTC(), Actor: requester, Action: "evidence", Target: targets(in.Proofs), Detail: in.Selection}
	if in.Journal != nil {
		if err := in.Journal(ctx, self); err != nil {
			return nil, fmt.Errorf("evidence: journal the access: %w", err)
		}
	}
	p := &Pack{Files: map[string][]byte{}}
	idx := &Index{V: Version, Type: IndexType, Created: wire.FormatTime(now), Selection: in.Selection, Requester: requester,
		Devices: []IndexFile{}, Policies: []IndexFile{}, Archive: IndexArchive{Consistency: []Consistency{}}}
	notes := map[uint64][]byte{}
	noteKeys := map[uint64]string{}
	var keys []ed25519.PublicKey
	devices := map[string][]byte{}
	var exps []packedExport
	for i, pr := range in.Proofs {
		dir := fmt.Sprintf("data/exports/%03d", i+1)
		pe, err := p.addExport(dir, pr)
		if err != nil {
			return nil, fmt.Errorf("evidence: export %q: %w", pr.ExportID, err)
		}
		if in.Plaintexts != nil && i < len(in.Plaintexts) && in.Plaintexts[i] != nil {
			if err := pe.checkPlaintext(in.Plaintexts[i]); err != nil {
				return nil, fmt.Errorf("evidence: export %q: %w", pr.ExportID, err)
			}
			pe.plaintext = dir + "/" + PlaintextFile
			p.Files[pe.plaintext] = in.Plaintexts[i]
		}
		k, err := x509.ParsePKIXPublicKey(pr.ArchiveKey)
		if err != nil {
			return nil, fmt.Errorf("evidence: export %q: archive key: %w", pr.ExportID, err)
		}
		ek, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("evidence: export %q: archive key is not Ed25519", pr.ExportID)
		}
		keys = append(keys, ek)
		noteKeys[pe.cp.Size] = archivesig.ArchiveKeyID(ek)
		if t, ok := devices[pr.Device]; ok && !bytes.Equal(t, pr.Trust) {
			return nil, fmt.Errorf("evidence: device %s: proofs carry two trust files", pr.Device)
		}
		devices[pr.Device] = pr.Trust
		notes[pe.cp.Size] = []byte(pe.receipt.ArchiveCheckpoint)
		idx.Archive.Origin = pe.cp.Origin
		idx.Exports = append(idx.Exports, pe.indexEntry())
		exps = append(exps, pe)
	}
	for _, d := range sortedKeys(devices) {
		f := "data/devices/" + strings.ReplaceAll(d, "/", "_") + ".json"
		p.Files[f] = devices[d]
		idx.Devices = append(idx.Devices, IndexFile{Name: d, File: f})
	}
	akey, chain, err := packKeys(in.Proofs, keys)
	if err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	idx.Archive.Key, idx.Archive.KeyID = "data/archive/key.pem", archivesig.ArchiveKeyID(akey)
	p.Files[idx.Archive.Key] = pemKey(akey)
	idx.Archive.KeyChain = chain
	for _, k := range keys {
		id := archivesig.ArchiveKeyID(k)
		if f := earlierKeyFile(id); id != idx.Archive.KeyID && p.Files[f] == nil {
			p.Files[f] = pemKey(k)
			idx.Archive.EarlierKeys = append(idx.Archive.EarlierKeys, IndexFile{Name: id, File: f})
		}
	}
	slices.SortFunc(idx.Archive.EarlierKeys, func(a, b IndexFile) int { return strings.Compare(a.Name, b.Name) })
	sizes := sortedKeys(notes)
	for i, size := range sizes {
		f := "data/archive/checkpoints/" + strconv.FormatUint(size, 10) + ".note"
		p.Files[f] = notes[size]
		cp := IndexCheckpoint{Size: size, File: f}
		if noteKeys[size] != idx.Archive.KeyID {
			cp.KeyID = noteKeys[size]
		}
		idx.Archive.Checkpoints = append(idx.Archive.Checkpoints, cp)
		if i == 0 {
			continue
		}
		if in.Consistency == nil {
			continue // offline: Verify reports the checkpoints as not compared
		}
		cons, err := in.Consistency(ctx, sizes[i-1], size)
		if err != nil {
			return nil, fmt.Errorf("evidence: consistency %d to %d: %w", sizes[i-1], size, err)
		}
		idx.Archive.Consistency = append(idx.Archive.Consistency, Consistency{From: sizes[i-1], To: size, Proof: merkle.ProofBytes(cons)})
	}
	named := map[string]bool{}
	for _, e := range exps {
		named[e.export.Policy] = true
	}
	for _, body := range in.Policies {
		d, _, err := verify.PolicyChange(body)
		if err != nil || !named[d] {
			continue
		}
		f := "data/policies/" + strings.TrimPrefix(d, wire.HashPrefix) + ".json"
		if _, dup := p.Files[f]; dup {
			continue
		}
		p.Files[f] = body
		idx.Policies = append(idx.Policies, IndexFile{Name: d, File: f})
	}
	slices.SortFunc(idx.Policies, func(a, b IndexFile) int { return strings.Compare(a.Name, b.Name) })
	idx.Accesses = append(slices.Clone(in.Accesses), self)
	for i := range idx.Accesses {
		idx.Accesses[i].Time = idx.Accesses[i].Time.UTC().Truncate(time.Microsecond)
	}
	ix, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return nil, err
	}
	p.Files[PathIndex] = append(ix, '\n')
	p.Files[PathProv], err = provDocument(idx, exps, idx.Accesses)
	if err != nil {
		return nil, err
	}
	p.Files[PathVerify] = verifyMD(idx, exps)
	p.seal(now)
	return p, nil
}

func targets(ps []*proof.Proof) string {
	var ids []string
	for _, p := range ps {
		ids = append(ids, p.Device+":"+p.Principal+":"+p.ExportID)
	}
	return strings.Join(ids, ",")
}

func sortedKeys[K string | uint64, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// packedExport is what the lineage and VERIFY.md need of one export.
type packedExport struct {
	dir     string
	proof   *proof.Proof
	record  *custody.Record
	export  *custody.ExportBody
	cp      merkle.Checkpoint // the archive checkpoint of its receipt
	sealed  merkle.Checkpoint // the device checkpoint sealed
	receipt *archivesig.Receipt
	entry   []byte // the receipt's archive log entry
	format  int
	// plaintext is the path of the packed plaintext ("" when none).
	plaintext string
	// proofJSON is proof.json: the proof without its payload.
	proofJSON []byte
}

// indexEntry is the export's line of the index.
func (pe packedExport) indexEntry() IndexExport {
	pr := pe.proof
	return IndexExport{Dir: pe.dir, ExportID: pr.ExportID, Principal: pr.Principal, Device: pr.Device,
		Seq: pr.Records[0].Seq, Bundle: pe.receipt.BundleDigest, LogIndex: pe.receipt.LogIndex, LogSize: pe.cp.Size,
		Plaintext: pe.plaintext}
}

// addExport writes one export's folder: the proof and, for the standard
// tools, its parts as files.
func (p *Pack) addExport(dir string, pr *proof.Proof) (packedExport, error) {
	pe := packedExport{dir: dir, proof: pr}
	rec, err := custody.ParseRecord([]byte(pr.Records[0].Record))
	if err != nil {
		return pe, err
	}
	if pe.export, err = rec.ExportBody(); err != nil {
		return pe, err
	}
	pe.record = rec
	_, st, err := parseSeal(pr.Seal)
	if err != nil {
		return pe, err
	}
	pe.format = bundle.FormatOf(st.PredicateType)
	if pe.sealed, err = merkle.ParseCheckpoint([]byte(st.Predicate.Checkpoint)); err != nil {
		return pe, err
	}
	if _, pe.receipt, err = archivesig.ParseReceipt(pr.Receipt); err != nil {
		return pe, err
	}
	if pe.cp, err = pe.receipt.ArchiveRoot(); err != nil {
		return pe, err
	}
	if pe.entry, err = pe.receipt.Entry().Marshal(); err != nil {
		return pe, err
	}
	// In a pack the payload is the file beside the proof, not in it.
	detached := *pr
	detached.Payload = nil
	if pe.proofJSON, err = detached.Marshal(); err != nil {
		return pe, err
	}
	f := p.Files
	f[dir+"/proof.json"] = pe.proofJSON
	for _, name := range exportFiles(pe) {
		f[dir+"/"+name.path] = name.data
	}
	return pe, nil
}

type namedFile struct {
	path string
	data []byte
}

// exportFiles are the files of an export's folder besides proof.json: what
// VERIFY.md's commands read. Verify compares each with the proof.
func exportFiles(pe packedExport) []namedFile {
	pr := pe.proof
	out := []namedFile{
		{"record.json", []byte(pr.Records[0].Record)},
		{"checkpoint.txt", pe.sealed.Marshal()},
		{"seal.dsse.json", pr.Seal},
		{"receipt.dsse.json", pr.Receipt},
		{"archive-entry.json", pe.entry},
	}
	if pr.Payload != nil {
		out = append(out, namedFile{"payload", pr.Payload})
	}
	for _, name := range sortedKeys(pr.Files) {
		out = append(out, namedFile{name, pr.Files[name]})
	}
	return out
}

// seal writes bagit.txt, bag-info.txt and the two manifests.
func (p *Pack) seal(now time.Time) {
	var octets, n int
	var data, tags []string
	for name, d := range p.Files {
		if strings.HasPrefix(name, "data/") {
			octets += len(d)
			n++
			data = append(data, name)
		} else {
			tags = append(tags, name)
		}
	}
	p.Files["bagit.txt"] = []byte(bundle.BagItDeclaration)
	p.Files["bag-info.txt"] = fmt.Appendf(nil, "Bag-Software-Agent: %s\nBagging-Date: %s\nPayload-Oxum: %d.%d\n",
		SoftwareAgent, now.UTC().Format(time.DateOnly), octets, n)
	p.Files["manifest-sha256.txt"] = manifest(p.Files, data)
	tags = append(tags, "bagit.txt", "bag-info.txt", "manifest-sha256.txt")
	p.Files["tagmanifest-sha256.txt"] = manifest(p.Files, tags)
}

// manifest renders "<hex>  <path>\n" for names, sorted by path.
func manifest(files map[string][]byte, names []string) []byte {
	slices.Sort(names)
	sums := make([][32]byte, len(names))
	hashAll(len(names), func(i int) { sums[i] = sha256.Sum256(files[names[i]]) })
	var b bytes.Buffer
	for i, n := range names {
		b.WriteString(hex.EncodeToString(sums[i][:]))
		b.WriteString("  ")
		b.WriteString(n)
		b.WriteByte('\n')
	}
	return b.Bytes()
}
