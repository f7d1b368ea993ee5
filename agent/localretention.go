package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
)

// Local retention (config retention.local_payloads): the payload bytes of
// an export leave the journal once the export is older than the local
// retention and the bundle that sealed it was receipted by the archive.
// The record and its leaf stay; the archive keeps the bytes.
//
// Crash safety: the retention.purge record naming the digests is journaled
// (durable) first, the bytes deleted after. A purge record whose bytes are
// still present at the next start is finished then (PurgeLocal's first
// pass reads the journal from its start), unless an export journaled after
// the record stored the same bytes again.

// localRetention is the purge pass's cursor: records before it hold no
// export whose payload is left to purge.
type localRetention struct {
	mu     sync.Mutex
	cursor uint64
}

type exportDigest struct{ id, digest string }

// LocalPurge is what one pass of PurgeLocal did.
type LocalPurge struct {
	Seq      uint64   // of the retention.purge record; 0 when none
	Payloads []string // digests purged
	Exports  []string // export ids whose payloads these were
	Resumed  int      // payloads of an earlier purge record finished now
}

// MaxPurgePayloads bounds the digests of one retention.purge record (a
// record is at most 1 MiB); a pass with more purges them in later passes.
const MaxPurgePayloads = 4096

// LocalRetentionReason is the reason a retention.purge record of the
// local retention carries.
func LocalRetentionReason(keep time.Duration) string {
	return "local retention " + keep.String() + ": delivered and receipted by the archive"
}

// PurgeLocal purges the payloads of exports journaled at least keep ago
// whose bundle the archive receipted. A digest another export still needs
// (younger, or not yet receipted) is kept. It journals one
// retention.purge record for the digests it deletes.
func (c *Core) PurgeLocal(ctx context.Context, keep time.Duration) (*LocalPurge, error) {
	if keep <= 0 {
		return nil, errors.New("agent: local retention: keep must be > 0")
	}
	c.ret.mu.Lock()
	defer c.ret.mu.Unlock()
	cutoff := c.opts.Now().Add(-keep)
	size := c.j.Size()
	var (
		cand      []string
		candSet   = map[string]bool{}
		exports   []exportDigest
		needed    = map[string]bool{}
		pending   = map[string]bool{} // purged by a record, not re-stored since
		receipted = map[uint64]bool{}
		stop      = size
		stopped   bool
	)
	isReceipted := func(seq uint64) (bool, error) {
		first, _, err := c.j.NextCheckpoint(seq)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if r, ok := receipted[first]; ok {
			return r, nil
		}
		d, err := c.delivery(OutboxID(first))
		if err != nil {
			return false, err
		}
		receipted[first] = d != nil
		return d != nil, nil
	}
	err := c.j.Records(ctx, c.ret.cursor, size, func(seq uint64, raw []byte) error {
		r, err := custody.ParseRecord(raw)
		if err != nil {
			return err
		}
		switch r.Type {
		case custody.TypeRetentionPurge:
			var p custody.PurgeBody
			if err := json.Unmarshal(r.Body, &p); err != nil {
				return err
			}
			for _, d := range p.Payloads {
				pending[d] = true
			}
		case custody.TypeExport:
			b, err := r.ExportBody()
			if err != nil {
				return err
			}
			d := b.Payload.Digest
			if b.PayloadCipher != nil {
				d = b.PayloadCipher.Digest // the journal keeps the ciphertext only
			}
			delete(pending, d) // stored again by this export
			if !stopped {
				ok := !r.Time.After(cutoff) && (candSet[d] || len(cand) < MaxPurgePayloads)
				if ok {
					if ok, err = isReceipted(seq); err != nil {
						return err
					}
				}
				if !ok {
					stopped, stop = true, seq
				}
			}
			if stopped {
				needed[d] = true
				return nil
			}
			exports = append(exports, exportDigest{b.ExportID, d})
			if !candSet[d] {
				candSet[d] = true
				cand = append(cand, d)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("agent: local retention: %w", err)
	}
	out := &LocalPurge{}
	// Finish the purge records whose bytes are still here (a crash
	// between the record and the deletion).
	for d := range pending {
		h, err := wire.ParseHash(d)
		if err != nil {
			continue
		}
		present, _, err := c.j.PayloadState(h)
		if err != nil {
			return nil, fmt.Errorf("agent: local retention: %w", err)
		}
		if present && !needed[d] {
			if err := c.j.PurgePayload(ctx, h); err != nil {
				return nil, fmt.Errorf("agent: local retention: %w", err)
			}
			out.Resumed++
		}
	}
	var purge [][32]byte
	for _, d := range cand {
		if needed[d] || pending[d] {
			continue
		}
		h, err := wire.ParseHash(d)
		if err != nil {
			return nil, err
		}
		present, _, err := c.j.PayloadState(h)
		if err != nil {
			return nil, fmt.Errorf("agent: local retention: %w", err)
		}
		if present {
			purge = append(purge, h)
			out.Payloads = append(out.Payloads, d)
		}
	}
	if len(purge) > 0 {
		body := custody.PurgeBody{Payloads: slices.Clone(out.Payloads), Reason: LocalRetentionReason(keep)}
		a, err := c.j.Append(ctx, c.entry(custody.TypeRetentionPurge, custody.Actor{Kind: "agent", ID: "retention", Via: "local"}, body))
		if err != nil {
			return nil, fmt.Errorf("agent: journal retention.purge: %w", err)
		}
		c.cache.add(a, nil)
		c.maybeWake(a.Size)
		out.Seq = a.Seq
		for _, h := range purge {
			if err := c.j.PurgePayload(ctx, h); err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("agent: local retention: %w", err)
			}
		}
		done := map[string]bool{}
		for _, d := range out.Payloads {
			done[d] = true
		}
		for _, e := range exports {
			if done[e.digest] {
				out.Exports = append(out.Exports, e.id)
			}
		}
		c.log.Info("local retention: payloads purged", "payloads", len(purge), "exports", len(exports), "seq", a.Seq, "keep", keep)
	}
	c.ret.cursor = stop
	return out, nil
}
