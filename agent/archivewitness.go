package agent

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// ArchiveCheckpointFile, in Options.StateDir, is the archive log
// checkpoint (its body: origin, size, root) of the newest receipt the
// agent accepted. Each later receipt's checkpoint must be consistent with
// it (archivesig.CheckConsistency); the receipts themselves, checkpoint
// included, are journaled with their delivery.receipt records.
const ArchiveCheckpointFile = "archive-checkpoint"

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
	b, err := fsutil.ReadLimited(filepath.Join(c.opts.StateDir, ArchiveCheckpointFile), 1024)
	if errors.Is(err, fs.ErrNotExist) {
		w.loaded = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("agent: archive checkpoint: %w", err)
	}
	cp, err := merkle.ParseAnyCheckpoint(b)
	if err != nil {
		return fmt.Errorf("agent: archive checkpoint: %w", err)
	}
	w.last, w.loaded = &cp, true
	return nil
}

// witnessReceipts checks the receipts' archive checkpoints, in order,
// against the one accepted last (w.mu held) and returns the newest. A
// receipt journaled before (the same bytes under its entry's delivery
// record: it came again) was witnessed then and is skipped. On
// an inconsistency it raises AlarmArchiveInconsistent and logs once; any
// failure refuses the whole batch (nothing is journaled, the bundles
// stay in the outbox).
func (c *Core) witnessReceipts(ids []string, raw [][]byte, rs []*archivesig.Receipt) (*merkle.Checkpoint, error) {
	if err := c.loadWitness(); err != nil {
		return nil, err
	}
	last := c.witness.last
	for i, r := range rs {
		if d, err := c.delivery(ids[i]); err != nil {
			return nil, fmt.Errorf("agent: receipt for %s: %w", ids[i], err)
		} else if d != nil && d.Receipt == wire.FormatHash(sha256.Sum256(raw[i])) {
			continue
		}
		cp, err := archivesig.CheckConsistency(last, r)
		if err != nil {
			if errors.Is(err, archivesig.ErrInconsistent) && cp != c.witness.alarmed {
				c.witness.alarmed = cp
				detail := fmt.Sprintf("receipt for %s: %v", ids[i], err)
				c.log.Error("archive log inconsistent; receipt refused", "outbox", ids[i], "size", cp.Size, "err", err)
				c.alarm(AlarmArchiveInconsistent, -1, detail)
			}
			return nil, fmt.Errorf("agent: receipt for %s: %w", ids[i], err)
		}
		last = &cp
	}
	return last, nil
}

// keepWitness makes cp the archive checkpoint accepted last (w.mu held),
// durable in ArchiveCheckpointFile when the core has a StateDir.
func (c *Core) keepWitness(cp *merkle.Checkpoint) error {
	if cp == nil || (c.witness.last != nil && *c.witness.last == *cp) {
		return nil
	}
	if c.opts.StateDir != "" {
		if err := fsutil.WriteFileAtomic(filepath.Join(c.opts.StateDir, ArchiveCheckpointFile), cp.Marshal(), 0o644); err != nil {
			return fmt.Errorf("agent: archive checkpoint: %w", err)
		}
	}
	c.witness.last = cp
	return nil
}
