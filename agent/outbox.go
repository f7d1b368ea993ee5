package agent

import (
	"context"
	"crypto/sha256"
	"fmt"
)

// DefaultOutboxQuota is the outbox size above which the agent raises its
// over-quota alarm when Options.OutboxQuota is not set: 1 GiB, about two
// weeks of a busy site's bundles (see docs/development.md, "Outbox quota").
const DefaultOutboxQuota = 1 << 30

// OutboxUsage is the outbox's size against its quota.
type OutboxUsage struct {
	Bundles   int
	Bytes     int64
	Quota     int64
	OverQuota bool
}

// Outbox calls fn for each outbox entry in id order (the sync publisher's
// queue; with DeleteOutbox, Core satisfies sync.Outbox).
func (c *Core) Outbox(ctx context.Context, fn func(id string, data []byte) error) error {
	return c.j.Outbox(ctx, fn)
}

// OutboxIDs calls fn with each outbox id in id order, without reading
// the bundles (with OutboxGet, Core satisfies sync.OutboxLister: the
// publisher reads only the bundles it sends).
func (c *Core) OutboxIDs(ctx context.Context, fn func(id string) error) error {
	return c.j.OutboxIDs(ctx, fn)
}

// OutboxGet reads outbox entry id; ok is false when it is gone.
func (c *Core) OutboxGet(ctx context.Context, id string) ([]byte, bool, error) {
	return c.j.OutboxGet(ctx, id)
}

// OutboxGetDigest is OutboxGet with the bundle's SHA-256 (Core satisfies
// sync.OutboxDigester): the digest taken when this process sealed the
// bundle, so the publisher need not hash it again for each send; for a
// bundle sealed before a restart it is computed from the bytes read. The
// bundle is read into *buf (store.Journal.OutboxGetInto; nil: a fresh
// slice).
func (c *Core) OutboxGetDigest(ctx context.Context, id string, buf *[]byte) ([]byte, [32]byte, bool, error) {
	data, ok, err := c.j.OutboxGetInto(ctx, id, buf)
	if err != nil || !ok {
		return nil, [32]byte{}, ok, err
	}
	c.sentMu.Lock()
	d, known := c.digests[id]
	c.sentMu.Unlock()
	if !known {
		d = sha256.Sum256(data)
	}
	return data, d, true, nil
}

// sealedDigest records the digest of a bundle this process put in the
// outbox (OutboxGetDigest).
func (c *Core) sealedDigest(id string, d [32]byte) {
	c.sentMu.Lock()
	defer c.sentMu.Unlock()
	if c.digests == nil {
		c.digests = map[string][32]byte{}
	}
	c.digests[id] = d
}

// DeleteOutbox removes a delivered outbox entry (after its receipt is
// journaled) and re-checks the quota, so the recovery is logged as soon
// as the outbox drains below it.
func (c *Core) DeleteOutbox(ctx context.Context, id string) error {
	return c.DeleteOutboxes(ctx, []string{id})
}

// DeleteOutboxes deletes delivered outbox entries with one durable step
// (store.Journal.DeleteOutboxes). The quota is measured again only while
// the outbox is over it: a deletion cannot cross it upwards.
func (c *Core) DeleteOutboxes(ctx context.Context, ids []string) error {
	// On an error some entries may be gone and keep their marks: the
	// publisher deletes them again later (absent ids are no-ops).
	if err := c.j.DeleteOutboxes(ctx, ids); err != nil {
		return err
	}
	c.sentMu.Lock()
	for _, id := range ids {
		delete(c.sent, id)
		delete(c.digests, id)
	}
	c.sentMu.Unlock()
	if c.overQuota.Load() {
		if _, err := c.CheckOutbox(ctx); err != nil {
			c.log.Warn("outbox quota check failed", "err", err)
		}
	}
	return nil
}

// MarkSent records that the broker acknowledged every frame of outbox
// entry id (a PUBACK: sent, not yet delivered). It is kept in memory
// only: after a restart the publisher sends every unreceipted bundle
// again, and the export reads `sealed` until it has. A PUBACK that comes
// after the receipt was journaled is ignored (the mark would never be
// cleared).
func (c *Core) MarkSent(id string) {
	c.sentMu.Lock() // held across the check: DeleteOutbox clears after it
	defer c.sentMu.Unlock()
	if d, err := c.delivery(id); d != nil || err != nil {
		return
	}
	c.sent[id] = true
}

func (c *Core) isSent(id string) bool {
	c.sentMu.Lock()
	defer c.sentMu.Unlock()
	return c.sent[id]
}

// CheckOutbox measures the outbox against the quota and logs once when it
// crosses above (error level) and once when it is back below. Crossing
// the quota stops nothing: exports are still journaled and sealed (the
// journal is the record of custody); the alarm says bundles are not
// reaching the archive.
func (c *Core) CheckOutbox(ctx context.Context) (OutboxUsage, error) {
	n, size, err := c.j.OutboxSize(ctx)
	if err != nil {
		return OutboxUsage{}, fmt.Errorf("agent: outbox: %w", err)
	}
	u := OutboxUsage{Bundles: n, Bytes: size, Quota: c.opts.OutboxQuota, OverQuota: size > c.opts.OutboxQuota}
	if was := c.overQuota.Swap(u.OverQuota); was != u.OverQuota {
		if u.OverQuota {
			c.log.Error("OUTBOX OVER QUOTA: bundles are not reaching the archive; exports are still journaled and sealed",
				"outboxBytes", u.Bytes, "outboxQuota", u.Quota, "bundles", u.Bundles)
			c.alarm(AlarmOutboxQuota, -1, fmt.Sprintf("outbox %d bytes in %d bundles, over its quota of %d bytes", u.Bytes, u.Bundles, u.Quota))
		} else {
			c.log.Warn("outbox back under its quota", "outboxBytes", u.Bytes, "outboxQuota", u.Quota, "bundles", u.Bundles)
		}
	}
	return u, nil
}
