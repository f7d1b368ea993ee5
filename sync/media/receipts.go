package media

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/sync"
)

// ReceiptFileError is a receipt or rejection file that was not taken.
type ReceiptFileError struct {
	File   string
	Reason string
	Err    error
}

func (e *ReceiptFileError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("bundles: %s: %s: %v", e.File, e.Reason, e.Err)
	}
	return fmt.Sprintf("bundles: %s: %s", e.File, e.Reason)
}

func (e *ReceiptFileError) Unwrap() error { return e.Err }

// ImportOptions are the agent's side of ImportReceipts.
type ImportOptions struct {
	Outbox Outbox
	// Journaled returns the receipts journaled so far, by outbox id
	// (agent.ReadReceipts).
	Journaled func(ctx context.Context) (map[string][]byte, error)
	// JournalReceipt journals a verified receipt for outbox entry id and
	// returns once it is durable (agent.ReceiptJournal.JournalReceipt).
	JournalReceipt func(ctx context.Context, id string, receipt []byte) error
	Ring           sync.ArchiveKeyring // the archive key and its rotations learned
	Device         string              // "<site>/<name>": replies must name it
	Out            io.Writer           // a line per reply file, and a summary
	Log            *slog.Logger
}

// Summary counts what ImportReceipts did.
type Summary struct {
	Delivered, Already, Rejected, Superseded, Bad int
	Left                                          int // bundles left in the outbox
}

// ImportReceipts takes the reply files of a receipts folder (ListReplies):
// each receipt is verified against the archive's keys, must name this
// device and a bundle in the outbox, is journaled as a delivery.receipt
// record and only then the outbox entry is deleted. A receipt for a bundle
// delivered before is a no-op. Signed rejections are reported and leave
// the entry. Only journal and outbox failures are returned; a bad file is
// counted and reported.
func ImportReceipts(ctx context.Context, receipts, rejections []string, o ImportOptions) (Summary, error) {
	imp := &receiptImporter{o: o}
	var sum Summary
	if err := imp.load(ctx); err != nil {
		return sum, err
	}
	for _, p := range receipts {
		if err := imp.receipt(ctx, p, &sum); err != nil {
			return sum, err
		}
	}
	for _, p := range rejections {
		imp.rejection(ctx, p, &sum)
	}
	sum.Left = len(imp.outbox)
	fmt.Fprintf(o.Out, "%d delivered, %d already delivered, %d rejected, %d superseded rejection(s), %d bad; %d bundle(s) left in the outbox\n",
		sum.Delivered, sum.Already, sum.Rejected, sum.Superseded, sum.Bad, sum.Left)
	return sum, nil
}

// receiptImporter matches replies to the outbox and the delivery records.
type receiptImporter struct {
	o ImportOptions

	outbox    map[[32]byte]string // bundle digest -> outbox id, pending
	delivered map[[32]byte]string // bundle digest -> outbox id, journaled
}

func (im *receiptImporter) load(ctx context.Context) error {
	im.outbox, im.delivered = map[[32]byte]string{}, map[[32]byte]string{}
	if err := im.o.Outbox.Outbox(ctx, func(id string, data []byte) error {
		im.outbox[sha256.Sum256(data)] = id
		return nil
	}); err != nil {
		return fmt.Errorf("bundles import-receipts: outbox: %w", err)
	}
	got, err := im.o.Journaled(ctx)
	if err != nil {
		return fmt.Errorf("bundles import-receipts: journaled receipts: %w", err)
	}
	for id, raw := range got {
		_, r, err := archivesig.ParseReceipt(raw)
		if err != nil {
			return fmt.Errorf("bundles import-receipts: journaled receipt of %s: %w", id, err)
		}
		d, err := wire.ParseHash(r.BundleDigest)
		if err != nil {
			return fmt.Errorf("bundles import-receipts: journaled receipt of %s: %w", id, err)
		}
		im.delivered[d] = id
	}
	return nil
}

// bad reports a reply file that was not taken.
func (im *receiptImporter) bad(sum *Summary, e *ReceiptFileError) {
	sum.Bad++
	im.o.Log.Error("reply file refused", "file", e.File, "reason", e.Reason, "err", e.Err)
	if e.Err != nil {
		fmt.Fprintf(im.o.Out, "%s  BAD: %s: %v\n", e.File, e.Reason, e.Err)
	} else {
		fmt.Fprintf(im.o.Out, "%s  BAD: %s\n", e.File, e.Reason)
	}
}

// receipt takes one receipt file. Only journal and outbox failures are
// returned (they stop the import); a bad file is counted and reported.
func (im *receiptImporter) receipt(ctx context.Context, path string, sum *Summary) error {
	name := filepath.Base(path)
	raw, err := ReadReply(path)
	if err != nil {
		im.bad(sum, &ReceiptFileError{File: name, Reason: "unreadable", Err: err})
		return nil
	}
	r, err := sync.VerifyReceiptRing(ctx, raw, im.o.Ring)
	if err != nil {
		im.bad(sum, &ReceiptFileError{File: name, Reason: "does not verify against the archive key", Err: err})
		return nil
	}
	if r.Device != im.o.Device {
		im.bad(sum, &ReceiptFileError{File: name, Reason: "for device " + r.Device + ", not " + im.o.Device})
		return nil
	}
	d, err := wire.ParseHash(r.BundleDigest)
	if err != nil {
		im.bad(sum, &ReceiptFileError{File: name, Reason: "bundle digest", Err: err})
		return nil
	}
	id, pending := im.outbox[d]
	prev, done := im.delivered[d]
	switch {
	case !pending && done:
		sum.Already++
		fmt.Fprintf(im.o.Out, "%s  %s  already delivered\n", name, prev)
		return nil
	case !pending:
		im.bad(sum, &ReceiptFileError{File: name, Reason: "names bundle " + r.BundleDigest + ", which is not in the outbox"})
		return nil
	}
	// Journaled before a crash but not yet deleted: delete only.
	if !done {
		if err := im.o.JournalReceipt(ctx, id, raw); err != nil {
			return err
		}
	}
	if err := im.o.Outbox.DeleteOutbox(ctx, id); err != nil {
		return fmt.Errorf("bundles import-receipts: delete delivered outbox entry %q: %w", id, err)
	}
	delete(im.outbox, d)
	im.delivered[d] = id
	sum.Delivered++
	fmt.Fprintf(im.o.Out, "%s  %s  delivered (archive log index %d)\n", name, id, r.LogIndex)
	return nil
}

// rejection reports one signed rejection loudly; the entry stays. A
// rejection of a bundle that has been delivered since (an earlier import
// refused it, a later one accepted it) is superseded and only noted.
func (im *receiptImporter) rejection(ctx context.Context, path string, sum *Summary) {
	name := filepath.Base(path)
	raw, err := ReadReply(path)
	if err != nil {
		im.bad(sum, &ReceiptFileError{File: name, Reason: "unreadable", Err: err})
		return
	}
	rej, err := sync.VerifyRejectionRing(ctx, raw, im.o.Ring)
	if err != nil {
		im.bad(sum, &ReceiptFileError{File: name, Reason: "rejection does not verify against the archive key", Err: err})
		return
	}
	if rej.Device != im.o.Device {
		im.bad(sum, &ReceiptFileError{File: name, Reason: "rejection for device " + rej.Device + ", not " + im.o.Device})
		return
	}
	d, err := wire.ParseHash(rej.BundleDigest)
	if err != nil {
		im.bad(sum, &ReceiptFileError{File: name, Reason: "bundle digest", Err: err})
		return
	}
	if id, done := im.delivered[d]; done {
		sum.Superseded++
		fmt.Fprintf(im.o.Out, "%s  %s  rejection superseded: delivered since\n", name, id)
		return
	}
	id, pending := im.outbox[d]
	if !pending {
		id = "(not in the outbox)"
	}
	sum.Rejected++
	im.o.Log.Error("the archive REFUSED a bundle; it stays in the outbox", "file", name, "outbox", id,
		"bundle", rej.BundleDigest, "reason", rej.Reason, "checks", rej.Checks)
	fmt.Fprintf(im.o.Out, "%s  %s  REJECTED by the archive: %s (checks: %s); kept in the outbox\n",
		name, id, rej.Reason, strings.Join(rej.Checks, ", "))
}
