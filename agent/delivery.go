package agent

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
)

// DeliveryBody is the body of a `delivery.receipt` record: the archive's
// signed receipt for one bundle, summarised; the receipt's own digest ties
// the record to the exact bytes the archive signed.
type DeliveryBody struct {
	Outbox         string `json:"outbox"`         // outbox id of the bundle
	Bundle         string `json:"bundle"`         // "sha256:.." of the bundle file
	CheckpointSize uint64 `json:"checkpointSize"` // the bundle's checkpoint
	LogIndex       uint64 `json:"logIndex"`       // leaf index in the archive log
	Receipt        string `json:"receipt"`        // "sha256:.." of the receipt bytes
	RetentionUntil string `json:"retentionUntil"`
}

// DeliveryKey is the idempotency key of the `delivery.receipt` record of
// outbox entry id: one receipt record per bundle, found without a scan
// (ExportStatus reads `archived` from it).
func DeliveryKey(id string) []byte { return []byte("delivery/" + id) }

// ReadReceipts returns the archive receipts journaled in j, by outbox id.
// It reads the whole journal: for tools and audits, not a hot path.
func ReadReceipts(ctx context.Context, j *store.Journal) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := j.Records(ctx, 0, j.Size(), func(_ uint64, rec []byte) error {
		r, err := custody.ParseRecord(rec)
		if err != nil || r.Type != custody.TypeDeliveryReceipt {
			return err
		}
		var b DeliveryBody
		if err := json.Unmarshal(r.Body, &b); err != nil {
			return fmt.Errorf("agent: delivery record %d: %w", r.Seq, err)
		}
		d, err := wire.ParseHash(b.Receipt)
		if err != nil {
			return err
		}
		data, err := j.Payload(d)
		if err != nil {
			return fmt.Errorf("agent: receipt of %s: %w", b.Outbox, err)
		}
		out[b.Outbox] = data
		return nil
	})
	return out, err
}

// JournalReceipt journals the archive's receipt for outbox entry id as a
// `delivery.receipt` record and returns once it is durable. The caller (the
// sync publisher) has verified the receipt's signature; only then, and only
// after this returns nil, may it delete the outbox entry. A receipt that
// does not parse is an error and nothing is journaled.
func (c *Core) JournalReceipt(ctx context.Context, id string, receipt []byte) error {
	return c.JournalReceipts(ctx, []string{id}, [][]byte{receipt})
}

// JournalReceipts is JournalReceipt for several receipts (ids and receipts
// aligned) in one durable commit. If any receipt does not parse nothing is
// journaled. A receipt journaled before (under its entry's DeliveryKey) is
// durable already and not journaled again.
func (c *Core) JournalReceipts(ctx context.Context, ids []string, receipts [][]byte) error {
	if len(ids) != len(receipts) {
		return fmt.Errorf("agent: %d receipts for %d outbox entries", len(receipts), len(ids))
	}
	rs := make([]archivesig.ParsedReceipt, len(ids))
	for i, id := range ids {
		env, r, err := archivesig.ParseReceipt(receipts[i])
		if err != nil {
			return fmt.Errorf("agent: receipt for %s: %w", id, err)
		}
		rs[i] = archivesig.ParsedReceipt{Raw: receipts[i], Envelope: env, Receipt: r}
	}
	return c.JournalParsedReceipts(ctx, ids, rs)
}

// JournalParsedReceipts is JournalReceipts of receipts the caller parsed
// already (the sync publisher, which verified their signatures): each
// rs[i] must be what archivesig.ParseReceipt returned for rs[i].Raw.
// They are not parsed again; their archive checkpoints are witnessed as
// JournalReceipts does, and a receipt without its envelope or receipt is
// an error (nothing is journaled).
func (c *Core) JournalParsedReceipts(ctx context.Context, ids []string, rs []archivesig.ParsedReceipt) error {
	if len(ids) != len(rs) {
		return fmt.Errorf("agent: %d receipts for %d outbox entries", len(rs), len(ids))
	}
	keeps := make([][]store.Payload, len(ids))
	digests := make([]string, len(ids))
	logIndex := make([]uint64, len(ids))
	times := make([]time.Time, len(ids))
	receipts := make([][]byte, len(ids))
	parsed := make([]*archivesig.Receipt, len(ids))
	envs := make([]*dsse.Envelope, len(ids))
	for i, id := range ids {
		if rs[i].Envelope == nil || rs[i].Receipt == nil {
			return fmt.Errorf("agent: receipt for %s: not parsed", id)
		}
		receipts[i], envs[i], parsed[i] = rs[i].Raw, rs[i].Envelope, rs[i].Receipt
	}
	// The archive log is witnessed: each receipt's checkpoint must extend
	// the one accepted last (archivewitness.go).
	c.witness.mu.Lock()
	defer c.witness.mu.Unlock()
	wd, err := c.witnessReceipts(ids, receipts, parsed)
	if err != nil {
		return err
	}
	// Each receipt's record, then, for a receipt that brought a larger
	// archive checkpoint, its archive.checkpoint record (at[i] is the
	// index of receipt i's record in es).
	es := make([]store.Entry, 0, 2*len(ids))
	at := make([]int, len(ids))
	for i, id := range ids {
		receipt := receipts[i]
		env, r := envs[i], parsed[i]
		keyID := ""
		if len(env.Signatures) > 0 {
			keyID = env.Signatures[0].KeyID
		}
		sum := sha256.Sum256(receipt)
		body := DeliveryBody{
			Outbox: id, Bundle: r.BundleDigest, CheckpointSize: r.CheckpointSize,
			LogIndex: r.LogIndex, Receipt: wire.FormatHash(sum), RetentionUntil: r.RetentionUntil,
		}
		raw, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("agent: receipt for %s: %w", id, err)
		}
		actor := custody.Actor{Kind: "archive", ID: keyID, Via: "sync"}
		// The receipt's bytes are kept beside the record, addressed by
		// digest, so the site can always show what the archive signed.
		keeps[i] = []store.Payload{{Digest: sum, Data: receipt}}
		digests[i], logIndex[i] = r.BundleDigest, r.LogIndex
		at[i] = len(es)
		es = append(es, store.Entry{
			Build: func(seq uint64, prev [32]byte) ([]byte, error) {
				// The time is taken in sequence order (stamp), never
				// before the record before it.
				r := custody.Record{Seq: seq, Type: custody.TypeDeliveryReceipt, Time: c.stamp(), Device: c.device, Prev: prev, Actor: actor, Body: raw}
				times[i] = r.Time.UTC().Truncate(time.Microsecond) // as the record has it
				return r.Marshal()
			},
			Payloads: keeps[i],
			Key:      c.deliveryKey(id),
		})
		if wd.fresh[i] {
			e, err := c.checkpointEntry(r, wire.FormatHash(sum), actor)
			if err != nil {
				return fmt.Errorf("agent: receipt for %s: %w", id, err)
			}
			es = append(es, e)
		}
	}
	res, err := c.j.AppendBatch(ctx, es)
	var be *store.BatchError
	if err != nil && !errors.As(err, &be) {
		return fmt.Errorf("agent: journal receipts for %q: %w", ids, err)
	}
	var size uint64
	var failed error
	for k, e := range es {
		if be != nil && be.Errs[k] != nil {
			if _, ok := errors.AsType[*store.DuplicateError](be.Errs[k]); !ok && failed == nil {
				failed = fmt.Errorf("agent: journal receipts: %s: %w", e.Key, be.Errs[k])
			}
			continue
		}
		c.cache.add(res[k], e.Payloads)
		size = max(size, res[k].Size)
	}
	for i, id := range ids {
		if be != nil && be.Errs[at[i]] != nil {
			if dup, ok := errors.AsType[*store.DuplicateError](be.Errs[at[i]]); ok {
				// Journaled before (a crash before the outbox entry was
				// deleted, or the receipt came twice): durable already.
				c.log.Debug("receipt already journaled", "outbox", id, "seq", dup.Seq)
			}
			continue
		}
		c.log.Info("bundle delivered", "outbox", id, "bundle", digests[i], "logIndex", logIndex[i])
		c.noteDelivery(DeliveryStatus{Bundle: id, Digest: digests[i], Time: times[i], LogIndex: logIndex[i]})
	}
	if size > 0 {
		c.maybeWake(size)
	}
	if failed == nil {
		failed = c.keepWitness(wd)
	}
	return failed
}

// checkpointEntry is the archive.checkpoint record of the archive
// checkpoint receipt r brought (its bytes hash to digest), under
// CheckpointKey of its size.
func (c *Core) checkpointEntry(r *archivesig.Receipt, digest string, actor custody.Actor) (store.Entry, error) {
	cp, err := r.ArchiveRoot()
	if err != nil {
		return store.Entry{}, err
	}
	raw, err := archivesig.NewCheckpointRecord(r, digest).Marshal()
	if err != nil {
		return store.Entry{}, err
	}
	return store.Entry{
		Build: func(seq uint64, prev [32]byte) ([]byte, error) {
			rec := custody.Record{Seq: seq, Type: custody.TypeArchiveCheckpoint, Time: c.stamp(), Device: c.device, Prev: prev, Actor: actor, Body: raw}
			return rec.Marshal()
		},
		Key: CheckpointKey(cp.Size),
	}, nil
}

// delivery returns the `delivery.receipt` record journaled for outbox
// entry id, or nil when there is none.
func (c *Core) delivery(id string) (*DeliveryBody, error) {
	seq, err := c.j.Lookup(c.deliveryKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	rec, err := c.j.Record(seq)
	if err != nil {
		return nil, err
	}
	r, err := custody.ParseRecord(rec)
	if err != nil {
		return nil, err
	}
	var b DeliveryBody
	if err := json.Unmarshal(r.Body, &b); err != nil {
		return nil, fmt.Errorf("agent: delivery record %d: %w", seq, err)
	}
	return &b, nil
}
