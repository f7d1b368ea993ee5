package archive

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// ErrGone reports a stored bundle whose payloads were purged (retention):
// the bytes a proof needs are no longer served.
var ErrGone = errors.New("archive: purged")

// ExportProof is the single-export proof of an index entry, built with
// bundle/proof from the stored bundle, its stored receipt, the device's
// approved trust file (DEVICE.json) and the archive key, and the
// policy.change record bodies of that bundle (for evidence packs).
// ErrNotFound when the bundle is not accepted or the device has no
// approved trust file; ErrGone when the stored bundle was purged.
func (a *Archive) ExportProof(ctx context.Context, e *ExportEntry) (*proof.Proof, [][]byte, error) {
	src, err := a.proofSource(ctx, e)
	if err != nil {
		return nil, nil, err
	}
	p, err := src.build(e)
	if err != nil {
		return nil, nil, err
	}
	return p, src.policies, nil
}

// ExportProofs are the proofs of entries, in order, as ExportProof builds
// them, each stored bundle read once; and the policy.change bodies of
// those bundles.
func (a *Archive) ExportProofs(ctx context.Context, es []*ExportEntry) ([]*proof.Proof, [][]byte, error) {
	srcs := map[string]*bundleSource{}
	var out []*proof.Proof
	var policies [][]byte
	for _, e := range es {
		src, ok := srcs[e.Bundle]
		if !ok {
			var err error
			if src, err = a.proofSource(ctx, e); err != nil {
				return nil, nil, err
			}
			srcs[e.Bundle] = src
			policies = append(policies, src.policies...)
		}
		p, err := src.build(e)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, p)
	}
	return out, policies, nil
}

// bundleSource is what the proofs of one stored bundle's exports are
// built from.
type bundleSource struct {
	raw, receipt, trust []byte
	key                 ed25519.PublicKey
	chain               [][]byte // announcements from key's retirement on
	policies, auths     [][]byte
}

func (s *bundleSource) build(e *ExportEntry) (*proof.Proof, error) {
	p, err := proof.Build(proof.Input{Bundle: s.raw, ExportID: e.Export, Principal: e.Principal, Trust: s.trust,
		Receipt: s.receipt, ArchiveKey: s.key, ArchiveKeyChain: s.chain, PCRAuthorizations: s.auths})
	if err != nil {
		return nil, fmt.Errorf("archive: proof of %s %.100q: %w", e.Device, e.Export, err)
	}
	return p, nil
}

// proofSource reads the stored bundle of e, its receipt and the device's
// trust file.
func (a *Archive) proofSource(ctx context.Context, e *ExportEntry) (*bundleSource, error) {
	bd, err := wire.ParseHash(e.Bundle)
	if err != nil {
		return nil, fmt.Errorf("archive: proof: %w", err)
	}
	rc, err := a.Receipt(bd)
	if err != nil {
		return nil, err
	}
	raw, err := a.Objects().Get(ctx, bd)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("archive: proof: bundle %s: %w", e.Bundle, ErrGone)
	}
	if err != nil {
		return nil, fmt.Errorf("archive: proof: %w", err)
	}
	a.devices.mu.Lock()
	var trust []byte
	if err := a.devices.refresh(); err == nil {
		if dv, ok := a.devices.devs[e.Device]; ok && len(dv.info.Trust) > 0 {
			trust = bytes.Clone(dv.info.Trust)
		}
	}
	a.devices.mu.Unlock()
	if trust == nil {
		return nil, fmt.Errorf("archive: proof: device %s has no approved trust file: %w", e.Device, ErrNotFound)
	}
	b, err := bundle.ReadBytes(raw, a.BundleLimits())
	if err != nil {
		return nil, fmt.Errorf("archive: proof: %w", err)
	}
	src := &bundleSource{raw: raw, receipt: rc, trust: trust}
	src.key, src.chain = a.signingKeyOf(rc)
	recs, err := b.Records()
	if err != nil {
		return nil, fmt.Errorf("archive: proof: %w", err)
	}
	src.policies, src.auths = evidence.RecordBodies(recs)
	return src, nil
}

// LogConsistency is the RFC 6962 consistency proof of the archive log
// from size old to size (0 < old <= size <= the log's size).
func (a *Archive) LogConsistency(ctx context.Context, old, size uint64) ([][32]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if old == 0 || old > size || size > a.LogSize() {
		return nil, fmt.Errorf("archive: consistency %d to %d of a log of %d: %w", old, size, a.LogSize(), ErrNotFound)
	}
	p, err := a.log.consistencyProof(ctx, old, size)
	if err != nil {
		return nil, fmt.Errorf("archive: consistency: %w", err)
	}
	return p, nil
}

// HeldBundles are the digests of the bundles legal-hold case caseID holds
// now (by the hold statements of the archive log), in log order.
func (a *Archive) HeldBundles(ctx context.Context, caseID string) ([]string, error) {
	ls, err := a.readLogState(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range ls.order {
		for _, c := range ls.holds[d] {
			if c == caseID {
				out = append(out, wire.FormatHash(d))
				break
			}
		}
	}
	return out, nil
}
