package archive

import (
	"fmt"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// CheckDuplicate names a bundle for a checkpoint of the device the archive
// already holds another bundle of: same device, epoch, checkpoint size and
// root, other bytes. A verified bundle's bytes are unique for its
// checkpoint (bundle format 2), so such a bundle is a malleated copy (or
// a legacy format 1 bundle edited where format 1 did not seal): it is
// refused, and the rejection names the digest of the bundle that was
// archived. The same bytes again are a redelivery and get the stored
// receipt (Archive.known).
const CheckDuplicate = "archive.duplicate"

// duplicateOf puts CheckDuplicate first in fails when the statement's
// checkpoint is one the device's epoch has accepted as another bundle
// (a device-signed one also fails CheckReplay). a.mu held.
func duplicateOf(ds *devState, digest [32]byte, p *bundle.SealPredicate, fails []failure) []failure {
	cp, err := merkle.ParseCheckpoint([]byte(p.Checkpoint))
	if err != nil {
		return fails // Verify names it
	}
	first, ok := ds.cpBundle[cp.Size]
	if !ok || first == digest || ds.cps[cp.Size] != cp.Root {
		return fails
	}
	dup := failure{check: CheckDuplicate, reason: fmt.Sprintf(
		"checkpoint %d (root %s) was archived as bundle %s; these are other bytes for it (a malleated duplicate)",
		cp.Size, wire.FormatHash(cp.Root), wire.FormatHash(first))}
	return append([]failure{dup}, fails...)
}

// rememberBundle records which bundle an accepted checkpoint came in.
// a.mu held.
func (ds *devState) rememberBundle(size uint64, digest [32]byte) {
	if ds.cpBundle == nil {
		ds.cpBundle = map[uint64][32]byte{}
	}
	ds.cpBundle[size] = digest
}
