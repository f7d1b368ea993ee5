package agent

import (
	"context"
	"fmt"

	"github.com/edgeseal/edgeseal/store"
)

// ReceiptJournal journals archive receipts into a stopped agent's journal
// without opening a core: `edgeseal bundles import-receipts` brings the
// receipts of bundles carried to the archive on removable media. Opening a
// core would journal an `agent.start` record and adopt outbox bundles; an
// import must change nothing but the delivery records, so a repeated import
// is a no-op. The records are written by Core.JournalReceipt itself, the
// code path the sync publisher uses.
type ReceiptJournal struct {
	c *Core
}

// NewReceiptJournal journals receipts into j as the device of opts (Site,
// Device, Logger, Now and StateDir are used). The caller holds j exclusively: the
// agent is stopped.
func NewReceiptJournal(opts Options, j *store.Journal) (*ReceiptJournal, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	c := &Core{opts: opts, log: opts.Logger, j: j, device: opts.Site + "/" + opts.Device, wake: make(chan struct{}, 1)}
	// Receipts are journaled under the journal's sealing epoch, as the
	// core does (EpochDeliveryKey): outbox ids restart in a new epoch.
	var err error
	if c.epoch, err = j.Epoch(); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return &ReceiptJournal{c: c}, nil
}

// JournalReceipt is Core.JournalReceipt: it journals the archive's receipt
// for outbox entry id as a `delivery.receipt` record and returns once it is
// durable. Verify the receipt first; delete the outbox entry only after
// this returns nil.
func (r *ReceiptJournal) JournalReceipt(ctx context.Context, id string, receipt []byte) error {
	return r.c.JournalReceipt(ctx, id, receipt)
}

// SetAlarmSink is Core.SetAlarmSink: where the alarms an import raises
// (archive.inconsistent) go.
func (r *ReceiptJournal) SetAlarmSink(fn AlarmSink) { r.c.SetAlarmSink(fn) }

// UseContentKey is Core.UseContentKey: the key in use before an import,
// so that an announcement a receipt carries is taken only when newer.
func (r *ReceiptJournal) UseContentKey(k *ContentKey) bool { return r.c.UseContentKey(k) }

// LearnContentKey is Core.LearnContentKey: a stopped agent learns the
// archive's newer content key from imported receipts as the running one
// does (journaled, kept in ContentKeyFile when Options.StateDir is set).
func (r *ReceiptJournal) LearnContentKey(ctx context.Context, raw []byte, keys ContentKeyVerifier) (bool, error) {
	return r.c.LearnContentKey(ctx, raw, keys)
}
