package archive

import (
	"fmt"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// A refused bundle leaves the device's chain where it was, so each later
// bundle, which extends the refused one, fails with a gap that is only a
// consequence. The archive remembers (in memory) the device's last refused
// bundle, signed by the device, and a gap right after it says so and
// names the first cause, which carries over a run of such gaps.

// refusal is a device's last refused device-signed bundle.
type refusal struct {
	digest string // "sha256:..."
	size   uint64 // its checkpoint's size
	cause  string // "check: reason" of the refusal that started the run
}

// resetBackReason is what CheckClock says when the TPM's reset or restart
// count went back: the TPM is not the one that sealed the accepted bundles
// as it was (replaced, cleared) or a simulator that lost its state.
func resetBackReason(reset, restart, lastReset, lastRestart uint32) string {
	return fmt.Sprintf("TPM reset/restart %d/%d below the last accepted %d/%d: the TPM's reset count went back, "+
		"so the device's TPM was replaced or cleared, or it is a simulator that lost its state",
		reset, restart, lastReset, lastRestart)
}

// gapReason is what CheckGap says of a bundle starting at start when the
// last accepted ends at end, after the refusal r (nil: none known).
func gapReason(start, end uint64, r *refusal) string {
	s := fmt.Sprintf("bundle starts at size %d, the last accepted ends at %d", start, end)
	if r != nil && r.size == start {
		s += fmt.Sprintf(": a consequence of refused bundle %s (size %d); first cause: %s", r.digest, r.size, r.cause)
	}
	return s
}

// refusalOf is the refusal to remember for a device-signed bundle refused
// with fails and rep's failed checks, after the earlier refusal r.
func refusalOf(digest [32]byte, p *bundle.SealPredicate, fails []failure, rep *verify.Report, r *refusal) *refusal {
	cp, err := merkle.ParseCheckpoint([]byte(p.Checkpoint))
	if err != nil {
		return r
	}
	out := &refusal{digest: wire.FormatHash(digest), size: cp.Size}
	if prev, err := merkle.ParseCheckpoint([]byte(p.PreviousCheckpoint)); r != nil && err == nil && prev.Size == r.size {
		out.cause = r.cause // a gap after r, and whatever else, is r's doing
		return out
	}
	for _, f := range fails {
		out.cause = f.check + ": " + f.reason
		return out
	}
	if rep != nil {
		for _, c := range rep.Checks {
			if !c.OK {
				out.cause = c.Name + ": " + c.Detail
				return out
			}
		}
	}
	return r
}
