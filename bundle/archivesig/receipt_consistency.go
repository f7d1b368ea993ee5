package archivesig

import (
	"bytes"
	"fmt"

	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// ErrInconsistent reports an archive checkpoint that is not an extension
// of the one a device accepted before: the archive log forked or was
// rewritten.
var ErrInconsistent = fmt.Errorf("archivesig: archive log inconsistent")

// ErrNoConsistency reports a receipt whose archive checkpoint is larger
// than the one the device accepted before but that carries no
// consistency proof from it.
var ErrNoConsistency = fmt.Errorf("archivesig: receipt has no consistency proof from the last accepted archive checkpoint")

// checkConsistencyMembers checks the form of witnessFrom and
// witnessProof against the receipt's archive checkpoint of size.
func (r *Receipt) checkConsistencyMembers(size uint64) error {
	if r.WitnessFrom == 0 && r.WitnessProof != nil {
		return wire.FormatErr("receipt", "consistency proof without witnessFrom")
	}
	if r.WitnessFrom > size {
		return wire.FormatErr("receipt", "witnessFrom %d beyond the archive checkpoint size %d", r.WitnessFrom, size)
	}
	if len(r.WitnessProof) > merkle.MaxProofLen {
		return wire.FormatErr("receipt", "consistency proof too long")
	}
	for _, h := range r.WitnessProof {
		if len(h) != 32 {
			return wire.FormatErr("receipt", "consistency proof hash of %d bytes", len(h))
		}
	}
	return nil
}

// CheckConsistency checks the receipt's archive checkpoint against last,
// the archive checkpoint the device accepted before (nil: none, and any
// checkpoint is accepted). The same size needs the same root; a smaller
// size is refused; a larger one needs witnessFrom equal to last's
// size and a consistency proof that verifies from last to it. It
// returns the receipt's archive checkpoint, the device's next last.
// ErrInconsistent means the archive log forked; ErrNoConsistency that
// the proof is missing or from another size.
func CheckConsistency(last *merkle.Checkpoint, r *Receipt) (merkle.Checkpoint, error) {
	cp, err := r.ArchiveRoot()
	if err != nil {
		return cp, err
	}
	if last == nil {
		return cp, nil
	}
	switch {
	case cp.Origin != last.Origin:
		return cp, fmt.Errorf("%w: origin %q, accepted %q", ErrInconsistent, cp.Origin, last.Origin)
	case cp.Size < last.Size:
		return cp, fmt.Errorf("%w: size %d below the accepted %d", ErrInconsistent, cp.Size, last.Size)
	case cp.Size == last.Size:
		if !bytes.Equal(cp.Root[:], last.Root[:]) {
			return cp, fmt.Errorf("%w: another root at the accepted size %d", ErrInconsistent, cp.Size)
		}
		return cp, nil
	case r.WitnessFrom != last.Size:
		return cp, fmt.Errorf("%w: from %d, accepted size %d", ErrNoConsistency, r.WitnessFrom, last.Size)
	}
	if err := merkle.VerifyConsistency(merkle.ProofHashes(r.WitnessProof), last.Size, cp.Size, last.Root, cp.Root); err != nil {
		return cp, fmt.Errorf("%w: from %d to %d: %v", ErrInconsistent, last.Size, cp.Size, err)
	}
	return cp, nil
}
