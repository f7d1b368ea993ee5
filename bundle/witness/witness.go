package witness

import (
	"crypto/ed25519"
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/merkle"
)

// MaxSightings bounds the checkpoints one run collects.
const MaxSightings = 1 << 18

// Sighting is one archive checkpoint as a device was shown it.
type Sighting struct {
	Device string `json:"device"` // the device the record or receipt names; "" for the log copy
	Source string `json:"source"` // the file it came from (and the record's seq)
	Seq    uint64 `json:"seq"`    // the record's seq in the device's journal (0 for a receipt)
	Size   uint64 `json:"size"`
	Root   [32]byte
	Note   string `json:"-"`
	// WitnessFrom and WitnessProof: the consistency proof the device was
	// given with it, from the archive checkpoint of size WitnessFrom.
	WitnessFrom  uint64   `json:"witnessFrom,omitempty"`
	WitnessProof [][]byte `json:"-"`
	fromRecord   bool
}

// Name is how reports name the sighting: size, root and who saw it.
func (s *Sighting) Name() string {
	who := s.Device
	if who == "" {
		who = "log copy"
	}
	return fmt.Sprintf("checkpoint %d %x… (%s, %s)", s.Size, s.Root[:6], who, s.Source)
}

// Collector gathers the checkpoints of one archive (origin) whose notes
// verify under one of its keys.
type Collector struct {
	origin    string
	verifiers note.Verifiers
	keys      map[string]bool
	Sightings []*Sighting
	// Foreign counts checkpoints of another origin (another archive):
	// skipped. Unsigned lists those whose note no trusted key signed.
	Foreign  int
	Unsigned []string
}

// NewCollector collects checkpoints of origin signed by one of keys.
func NewCollector(origin string, keys ...ed25519.PublicKey) (*Collector, error) {
	c := &Collector{origin: origin, keys: map[string]bool{}}
	for _, k := range keys {
		if err := c.AddKey(k); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Origin is the archive's name the collector checks.
func (c *Collector) Origin() string { return c.origin }

// AddKey trusts another key of the archive (one a trusted key's
// announcement leads to).
func (c *Collector) AddKey(k ed25519.PublicKey) error {
	if c.keys[string(k)] {
		return nil
	}
	vkey, err := note.NewEd25519VerifierKey(c.origin, k)
	if err != nil {
		return fmt.Errorf("witness: archive key: %w", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return fmt.Errorf("witness: archive key: %w", err)
	}
	c.keys[string(k)] = true
	var vs []note.Verifier
	if c.verifiers != nil {
		vs = c.verifiers.(verifierList)
	}
	c.verifiers = verifierList(append(vs, v))
	return nil
}

// verifierList is note.VerifierList that can be extended.
type verifierList []note.Verifier

func (l verifierList) Verifier(name string, hash uint32) (note.Verifier, error) {
	for _, v := range l {
		if v.Name() == name && v.KeyHash() == hash {
			return v, nil
		}
	}
	return nil, &note.UnknownVerifierError{Name: name, KeyHash: hash}
}

// add authenticates s's note and keeps it; it reports whether s was kept.
func (c *Collector) add(s *Sighting) bool {
	cp, err := archivesig.NoteCheckpoint(s.Note)
	if err != nil {
		c.Unsigned = append(c.Unsigned, fmt.Sprintf("%s: %v", s.Source, err))
		return false
	}
	if cp.Origin != c.origin {
		c.Foreign++
		return false
	}
	if c.verifiers == nil {
		c.Unsigned = append(c.Unsigned, s.Source+": no archive key")
		return false
	}
	if _, err := note.Open([]byte(s.Note), c.verifiers); err != nil {
		c.Unsigned = append(c.Unsigned, fmt.Sprintf("%s: checkpoint %d: %v", s.Source, cp.Size, err))
		return false
	}
	if len(c.Sightings) >= MaxSightings {
		c.Unsigned = append(c.Unsigned, s.Source+": too many checkpoints")
		return false
	}
	s.Size, s.Root = cp.Size, cp.Root
	c.Sightings = append(c.Sightings, s)
	return true
}

// AddRecord collects the archive.checkpoint record body of device's
// journal record seq, found in source.
func (c *Collector) AddRecord(device, source string, seq uint64, body []byte) error {
	r, err := archivesig.ParseCheckpointRecord(body)
	if err != nil {
		return err
	}
	c.add(&Sighting{Device: device, Source: fmt.Sprintf("%s seq %d", source, seq), Seq: seq, Note: r.Checkpoint,
		WitnessFrom: r.WitnessFrom, WitnessProof: r.WitnessProof, fromRecord: true})
	return nil
}

// AddReceipt collects the archive checkpoint of a receipt (parsed; its
// DSSE signature is the caller's to check, the note's is checked here).
func (c *Collector) AddReceipt(source string, r *archivesig.Receipt) {
	c.add(&Sighting{Device: r.Device, Source: source, Note: r.ArchiveCheckpoint, WitnessFrom: r.WitnessFrom, WitnessProof: r.WitnessProof})
}

// AddMirror collects the log copy's own checkpoint; it reports whether
// it verified (the copy is checked against it).
func (c *Collector) AddMirror(m *Mirror) (*Sighting, error) {
	s := &Sighting{Source: m.Dir() + "/checkpoint", Note: string(m.Note)}
	if !c.add(s) {
		return nil, fmt.Errorf("%w: %s: not a checkpoint of %s signed by a trusted archive key", ErrMirror, s.Source, c.origin)
	}
	m.SetSize(s.Size)
	return s, nil
}

// Devices lists the devices whose checkpoints were collected.
func (c *Collector) Devices() []string {
	seen := map[string]bool{}
	var ds []string
	for _, s := range c.Sightings {
		if s.Device != "" && !seen[s.Device] {
			seen[s.Device] = true
			ds = append(ds, s.Device)
		}
	}
	slices.Sort(ds)
	return ds
}

// node is a distinct checkpoint (size and root).
type node struct {
	size uint64
	root [32]byte
}

func (s *Sighting) node() node { return node{s.Size, s.Root} }

// proofHolds checks s's consistency proof from p.
func proofHolds(p, s *Sighting) error {
	return merkle.VerifyConsistency(merkle.ProofHashes(s.WitnessProof), p.Size, s.Size, p.Root, s.Root)
}
