package archive

import (
	"context"
	"fmt"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/merkle"
)

// Devices witness the archive log: each receipt carries a consistency
// proof from the archive checkpoint of the device's previous receipt
// (the one of its accepted bundles with the highest log index), which
// the agent accepted and checks the new checkpoint against
// (archivesig.CheckConsistency).

// previousReceiptSize is the archive checkpoint size of the device's
// previous receipt (its chain state, loaded when its bundle was
// admitted); 0 when the device had none.
func (a *Archive) previousReceiptSize(device string) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.chains[device].ReceiptSize, nil
}

// addConsistency sets r's consistency members: the proof from the
// archive log of size from (the device's previous receipt; 0: none) to
// size, the receipt's checkpoint.
func (a *Archive) addConsistency(ctx context.Context, r *archivesig.Receipt, from, size uint64) error {
	if from == 0 || from > size {
		return nil
	}
	proof, err := a.log.consistencyProof(ctx, from, size)
	if err != nil {
		return fmt.Errorf("archive: consistency proof from %d to %d: %w", from, size, err)
	}
	r.WitnessFrom, r.WitnessProof = from, nil
	if len(proof) > 0 {
		r.WitnessProof = merkle.ProofBytes(proof)
	}
	return nil
}
