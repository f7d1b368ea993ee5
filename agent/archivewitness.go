package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/store"
)

// ArchiveCheckpointFile, in Options.StateDir, keeps the archive log
// checkpoint of the newest receipt the agent accepted, as JSON
// {"checkpoint":"<body: origin, size, root>","proofs":<bool>,"first":<size>};
// proofs is true once a receipt carried a consistency proof (the archive
// witnesses for its devices), after which every larger checkpoint needs
// one; first is the size of the first checkpoint the agent accepted
// (unchecked: nothing before it to check it against; absent in files of
// older agents, taken as 0). Each
// later receipt's checkpoint must be consistent with it
// (archivesig.CheckConsistency); the receipts themselves, checkpoint
// included, are journaled with their delivery.receipt records.
const ArchiveCheckpointFile = "archive-checkpoint"

// witnessFile is the JSON of ArchiveCheckpointFile.
type witnessFile struct {
	Checkpoint string `json:"checkpoint"`
	Proofs     bool   `json:"proofs"`
	First      uint64 `json:"first,omitempty"`
}

// AlarmArchiveInconsistent: a receipt's archive checkpoint is not an
// extension of the one the agent accepted before (witnessReceipts).
const AlarmArchiveInconsistent = "archive.inconsistent"

// witnessState is the archive checkpoint accepted last, loaded from
// ArchiveCheckpointFile on first use. mu is held from the check of a
// batch of receipts until its checkpoint is kept.
type witnessState struct {
	mu     sync.Mutex
	loaded bool
	last   *merkle.Checkpoint
	proofs bool // a receipt carried consistency members: they are required
	// first is the size of the first checkpoint accepted (0: unknown).
	first uint64
	// alarmed is the checkpoint last alarmed about, so a receipt sent
	// again raises and logs its alarm once.
	alarmed merkle.Checkpoint
}

// loadWitness reads ArchiveCheckpointFile once (w.mu held).
func (c *Core) loadWitness() error {
	w := &c.witness
	if w.loaded || c.opts.StateDir == "" {
		w.loaded = true
		return nil
	}
	b, err := fsutil.ReadLimited(filepath.Join(c.opts.StateDir, ArchiveCheckpointFile), 4096)
	if errors.Is(err, fs.ErrNotExist) {
		w.loaded = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("agent: archive checkpoint: %w", err)
	}
	var f witnessFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return fmt.Errorf("agent: archive checkpoint: %w", err)
	}
	cp, err := merkle.ParseAnyCheckpoint([]byte(f.Checkpoint))
	if err != nil {
		return fmt.Errorf("agent: archive checkpoint: %w", err)
	}
	w.last, w.proofs, w.first, w.loaded = &cp, f.Proofs, f.First, true
	return nil
}

// witnessReceipts checks the receipts' archive checkpoints, in order,
// against the one accepted last (w.mu held) and returns the newest,
// whether consistency proofs are required from now on and, aligned with
// rs, which receipts brought a checkpoint larger than the one accepted
// before them (each is journaled as an archive.checkpoint record). A receipt
// journaled before (the same bytes under its entry's delivery record: it
// came again) was witnessed then: it is not checked again, and its
// checkpoint is taken when larger (a crash before it was kept). Until a
// receipt carried a consistency proof (an archive that does not give
// them) a larger checkpoint without one is taken unchecked. A smaller
// checkpoint than the one accepted last is taken when it is one accepted
// before (its archive.checkpoint record, or a receipt before it in rs,
// has the same root at its size): replies can come out of order. A
// smaller checkpoint than the first one the agent accepted (taken
// unchecked, as its first) is taken unwitnessed: the agent never saw the
// log there, so nothing it accepted proves or refutes it (the reply to
// the device's first bundles was lost and a later one came first); it
// is not kept and gets no archive.checkpoint record. A
// receipt whose consistency proof is from another accepted checkpoint
// than the last one (a fresh receipt for a bundle sent again, or the
// receipt after it: the archive proves from the checkpoint of the
// device's newest receipt it gave) is taken when the proof verifies
// from that one, and its checkpoint journaled and kept when larger. On
// an inconsistency it raises AlarmArchiveInconsistent and logs once; any
// failure refuses the whole batch (nothing is journaled, the bundles
// stay in the outbox).
func (c *Core) witnessReceipts(ids []string, raw [][]byte, rs []*archivesig.Receipt) (witnessed, error) {
	if err := c.loadWitness(); err != nil {
		return witnessed{}, err
	}
	last, proofs, first := c.witness.last, c.witness.proofs, c.witness.first
	fresh := make([]bool, len(rs))
	batch := map[uint64]merkle.Checkpoint{} // accepted by receipts before this one in rs, not yet journaled
	for i, r := range rs {
		if last != nil {
			batch[last.Size] = *last
		}
		d, err := c.delivery(ids[i])
		if err != nil {
			return witnessed{}, fmt.Errorf("agent: receipt for %s: %w", ids[i], err)
		}
		if d != nil && d.Receipt == wire.FormatHash(sha256.Sum256(raw[i])) {
			if cp, err := r.ArchiveRoot(); err == nil && (last == nil || cp.Size > last.Size) {
				if last == nil && first == 0 {
					first = cp.Size
				}
				last = &cp
			}
			continue
		}
		var cp merkle.Checkpoint
		other := false // another root than the accepted one at cp's size
		if cp, err = r.ArchiveRoot(); err == nil && !proofs && r.WitnessFrom == 0 && last != nil && cp.Size > last.Size {
			last, fresh[i] = &cp, true // an archive that gives no proofs
			continue
		}
		if err == nil && last != nil && cp.Size < last.Size {
			// A receipt that comes after larger checkpoints were accepted
			// (its reply was delivered again behind newer ones, or came
			// after a receipt of the same checkpoint): consistent if it
			// is a checkpoint accepted before, kept as it was.
			had, ok := batch[cp.Size]
			if !ok {
				if had, ok, err = c.acceptedAt(cp.Size); err != nil {
					return witnessed{}, fmt.Errorf("agent: receipt for %s: %w", ids[i], err)
				}
			}
			if ok && had == cp {
				continue
			}
			// Another root at an accepted size: a fork, whatever its
			// proof (CheckConsistency below reports it).
			other = ok
		}
		refuse := func(cp merkle.Checkpoint, err error) error {
			if errors.Is(err, archivesig.ErrInconsistent) && cp != c.witness.alarmed {
				c.witness.alarmed = cp
				detail := fmt.Sprintf("receipt for %s: %v", ids[i], err)
				c.log.Error("archive log inconsistent; receipt refused", "outbox", ids[i], "size", cp.Size, "err", err)
				c.alarm(AlarmArchiveInconsistent, -1, detail)
			}
			return fmt.Errorf("agent: receipt for %s: %w", ids[i], err)
		}
		if err == nil && !other && last != nil && r.WitnessFrom > 0 && r.WitnessFrom != last.Size && cp.Size != last.Size && cp.Origin == last.Origin {
			// Proven from another checkpoint than the last: taken when
			// the device accepted that one (archive.checkpoint record,
			// or a receipt before it in rs) and the proof holds.
			from, ok := batch[r.WitnessFrom]
			if !ok {
				if from, ok, err = c.acceptedAt(r.WitnessFrom); err != nil {
					return witnessed{}, fmt.Errorf("agent: receipt for %s: %w", ids[i], err)
				}
			}
			if ok && from.Origin == cp.Origin {
				if err := merkle.VerifyConsistency(merkle.ProofHashes(r.WitnessProof), from.Size, cp.Size, from.Root, cp.Root); err != nil {
					return witnessed{}, refuse(cp, fmt.Errorf("%w: from the accepted %d to %d: %v", archivesig.ErrInconsistent, from.Size, cp.Size, err))
				}
				// Journaled (an archive.checkpoint record) and kept only
				// when larger: the records never shrink.
				proofs, batch[cp.Size] = true, cp
				if cp.Size > last.Size {
					last, fresh[i] = &cp, true
				}
				continue
			}
		}
		if err == nil && !other && last != nil && cp.Size < first && cp.Origin == last.Origin {
			// Below the first checkpoint accepted: unwitnessed, not kept.
			c.log.Info("receipt of an archive checkpoint before the first one accepted; taken unwitnessed", "outbox", ids[i], "size", cp.Size, "first", first)
			continue
		}
		cp, err = archivesig.CheckConsistency(last, r)
		if err != nil {
			return witnessed{}, refuse(cp, err)
		}
		if last == nil && first == 0 {
			first = cp.Size
		}
		fresh[i] = last == nil || cp.Size > last.Size
		last, proofs = &cp, proofs || r.WitnessFrom > 0
	}
	return witnessed{newest: last, proofs: proofs, first: first, fresh: fresh}, nil
}

// witnessed is what witnessReceipts found: the newest checkpoint,
// whether proofs are required from now on, the size of the first
// checkpoint accepted, and which receipts brought a larger checkpoint.
type witnessed struct {
	newest *merkle.Checkpoint
	proofs bool
	first  uint64
	fresh  []bool
}

// acceptedAt is the archive checkpoint of size the agent accepted before
// (its archive.checkpoint record under CheckpointKey); false when none.
func (c *Core) acceptedAt(size uint64) (merkle.Checkpoint, bool, error) {
	seq, err := c.j.Lookup(CheckpointKey(size))
	if errors.Is(err, store.ErrNotFound) {
		return merkle.Checkpoint{}, false, nil
	}
	if err != nil {
		return merkle.Checkpoint{}, false, err
	}
	raw, err := c.j.Record(seq)
	if err != nil {
		return merkle.Checkpoint{}, false, err
	}
	rec, err := custody.ParseRecord(raw)
	if err != nil {
		return merkle.Checkpoint{}, false, err
	}
	body, err := archivesig.ParseCheckpointRecord(rec.Body)
	if err != nil {
		return merkle.Checkpoint{}, false, fmt.Errorf("archive.checkpoint record %d: %w", seq, err)
	}
	had, err := body.Root()
	if err != nil {
		return merkle.Checkpoint{}, false, fmt.Errorf("archive.checkpoint record %d: %w", seq, err)
	}
	return had, had.Size == size, nil
}

// CheckpointKey is the idempotency key of the archive.checkpoint record
// of the archive log checkpoint of size: one record per accepted size
// (another root at a size accepted before is a fork, refused).
func CheckpointKey(size uint64) []byte { return fmt.Appendf(nil, "archive.checkpoint/%d", size) }

// keepWitness makes cp the archive checkpoint accepted last (w.mu held),
// durable in ArchiveCheckpointFile when the core has a StateDir.
func (c *Core) keepWitness(wd witnessed) error {
	w, cp := &c.witness, wd.newest
	if cp == nil || (w.last != nil && *w.last == *cp && w.proofs == wd.proofs && w.first == wd.first) {
		return nil
	}
	if c.opts.StateDir != "" {
		b, err := json.Marshal(witnessFile{Checkpoint: string(cp.Marshal()), Proofs: wd.proofs, First: wd.first})
		if err != nil {
			return fmt.Errorf("agent: archive checkpoint: %w", err)
		}
		if err := fsutil.WriteFileAtomic(filepath.Join(c.opts.StateDir, ArchiveCheckpointFile), append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("agent: archive checkpoint: %w", err)
		}
	}
	w.last, w.proofs, w.first = cp, wd.proofs, wd.first
	return nil
}
