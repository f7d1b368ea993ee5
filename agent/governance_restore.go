package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/edgeseal/edgeseal/agent/policy/signed"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// PolicyChangesFile, in Options.StateDir, lists the journal sequence
// numbers of the last policy.change records (at most maxPolicyIndex), so
// that a start compares the policy it puts in force with the one in force
// before it without reading the whole journal. It is only an index: each
// record it names is read from the journal and must be a policy.change
// that verifies, or it is skipped.
const PolicyChangesFile = "policy-changes.json"

const (
	// maxPolicyIndex bounds the policy.change records the index keeps
	// (and so the versions whose destinations count as seen at a start).
	maxPolicyIndex = 64
	// maxPolicyIndexFile bounds the index file read at start.
	maxPolicyIndexFile = 8 << 10
	// maxGovernanceScan bounds the records read back from the end of the
	// journal when the index is missing (a journal older than it).
	maxGovernanceScan = 20000
)

// policyIndex is the content of PolicyChangesFile.
type policyIndex struct {
	Seqs []uint64 `json:"seqs"` // ascending
}

// restoreGovernance loads the policies put in force before this start:
// the last one becomes the document the next policy is compared with,
// and the destinations of all of them count as seen, so a schema altered
// or a destination added while the agent was stopped raises its alert at
// the start. The index (PolicyChangesFile) names the records; when it is
// missing, unusable or names no valid policy.change, the journal's last
// records are searched instead. Called once, with c.gov.mu held, before
// the first comparison.
func (c *Core) restoreGovernance(ctx context.Context) {
	g := &c.gov
	g.restored = true
	seqs, err := c.indexedPolicyChanges()
	if err != nil {
		c.log.Warn("governance: the policy index is unusable; searching the journal", "err", err)
	}
	if c.loadPolicyChanges(seqs) == 0 {
		if seqs, err = c.scanPolicyChanges(ctx); err != nil {
			c.log.Warn("governance: cannot read the policies in force before this start; comparing from this start on", "err", err)
			return
		}
		c.loadPolicyChanges(seqs)
	}
}

// loadPolicyChanges puts the policy.change records seqs (ascending) in
// g.prev, g.seen and g.index and returns how many were valid. Called with
// c.gov.mu held.
func (c *Core) loadPolicyChanges(seqs []uint64) int {
	g := &c.gov
	n := 0
	for _, seq := range seqs {
		doc, err := c.policyChangeAt(seq)
		if err != nil {
			c.log.Warn("governance: the policy index names a record that is not a valid policy.change; skipped", "seq", seq, "err", err)
			continue
		}
		n++
		g.index = append(g.index, seq)
		g.prev = doc
		if g.seen == nil {
			g.seen = map[string]bool{}
		}
		ds, _ := signed.Destinations(doc)
		for _, d := range ds {
			g.seen[d] = true
		}
	}
	return n
}

// indexedPolicyChanges are the seqs PolicyChangesFile names, ascending,
// below the journal's size (none without the file).
func (c *Core) indexedPolicyChanges() ([]uint64, error) {
	if c.opts.StateDir == "" {
		return nil, nil
	}
	b, found, err := c.readStateFile(PolicyChangesFile, maxPolicyIndexFile)
	if err != nil || !found {
		return nil, err
	}
	var ix policyIndex
	if err := json.Unmarshal(b, &ix); err != nil {
		return nil, fmt.Errorf("agent: policy index %s: %w", PolicyChangesFile, err)
	}
	size := c.j.Size()
	var out []uint64
	for _, s := range ix.Seqs {
		if s < size && (len(out) == 0 || s > out[len(out)-1]) {
			out = append(out, s)
		}
	}
	return out[max(0, len(out)-maxPolicyIndex):], nil
}

// scanPolicyChanges are the seqs of the last policy.change records among
// the journal's last maxGovernanceScan records (none when the journal
// never ran signed).
func (c *Core) scanPolicyChanges(ctx context.Context) ([]uint64, error) {
	since, signedBefore, err := c.SignedSince()
	if err != nil || !signedBefore {
		return nil, err
	}
	size := c.j.Size()
	from := since
	if size > maxGovernanceScan {
		from = max(from, size-maxGovernanceScan)
	}
	var out []uint64
	err = c.j.Records(ctx, from, size, func(seq uint64, raw []byte) error {
		if r, err := custody.ParseRecord(raw); err == nil && r.Type == custody.TypePolicyChange {
			out = append(out, seq)
		}
		return nil
	})
	return out[max(0, len(out)-maxPolicyIndex):], err
}

// policyChangeAt is the signed document of the policy.change record seq.
func (c *Core) policyChangeAt(seq uint64) (*signed.Document, error) {
	raw, err := c.j.Record(seq)
	if err != nil {
		return nil, err
	}
	r, err := custody.ParseRecord(raw)
	if err != nil {
		return nil, err
	}
	if r.Type != custody.TypePolicyChange {
		return nil, fmt.Errorf("agent: record %d is %s", seq, r.Type)
	}
	_, s, err := signed.ParseChangeBody(r.Body)
	if err != nil {
		return nil, err
	}
	return s.Document, nil
}

// indexPolicyChange adds the policy.change record seq to the index and
// writes PolicyChangesFile (a failure is logged: the next start then
// compares with fewer versions). Called with c.gov.mu held.
func (c *Core) indexPolicyChange(seq uint64) {
	g := &c.gov
	g.index = append(g.index, seq)
	if n := len(g.index); n > maxPolicyIndex {
		g.index = slices.Delete(g.index, 0, n-maxPolicyIndex)
	}
	if c.opts.StateDir == "" {
		return
	}
	b, err := json.Marshal(policyIndex{Seqs: g.index})
	if err == nil {
		err = fsutil.WriteFileAtomic(filepath.Join(c.opts.StateDir, PolicyChangesFile), b, 0o600)
	}
	if err != nil {
		c.log.Warn("governance: cannot write the policy index; the next start compares with fewer versions", "err", err)
	}
}
