package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/sync"
	"github.com/edgeseal/edgeseal/tpm"
)

// Removable media: `bundles export` writes the outbox to a
// folder, `archive import` answers it in FOLDER/receipts, and
// `bundles import-receipts` brings the answers back.

// MediaIndexFile is the index `bundles export` writes beside the bundles.
const MediaIndexFile = "index.json"

// mediaBundleSuffix names an exported bundle: <outbox id>.bundle.tar.
const mediaBundleSuffix = ".bundle.tar"

// MediaIndex is DIR/index.json: what the folder carries, for the archive's
// operator and for checks; the bundles themselves are self-describing.
type MediaIndex struct {
	Format   string        `json:"format"` // "edgeseal-media/v1"
	Device   string        `json:"device"` // "<site>/<name>"
	Exported time.Time     `json:"exported"`
	Bundles  []MediaBundle `json:"bundles"` // in outbox (checkpoint) order
}

// MediaBundle is one exported bundle.
type MediaBundle struct {
	ID             string `json:"id"`             // outbox id
	File           string `json:"file"`           // file name in the folder
	Bundle         string `json:"bundle"`         // "sha256:.." of the file
	Size           int64  `json:"size"`           // bytes
	CheckpointSize uint64 `json:"checkpointSize"` // the bundle's checkpoint
}

const mediaFormat = "edgeseal-media/v1"

// AgentRunningError: the agent daemon holds the journal.
type AgentRunningError struct{ Journal string }

func (e *AgentRunningError) Error() string {
	return fmt.Sprintf("bundles: the journal %s is locked by a running agent: stop the agent first (systemctl stop edgeseal-agent)", e.Journal)
}

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

// cmdBundles dispatches `bundles export` and `bundles import-receipts`.
func cmdBundles(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	if len(args) == 0 {
		return usageErr("bundles: want export or import-receipts")
	}
	switch args[0] {
	case "export":
		return cmdBundlesExport(ctx, args[1:], stdout, log)
	case "import-receipts":
		return cmdBundlesImportReceipts(ctx, args[1:], stdout, log)
	}
	return usageErr("bundles: unknown %q: want export or import-receipts", args[0])
}

// openStoppedJournal opens the journal of a stopped agent as the daemon
// does: the TPM, the stored PCR authorization (keys bound to a PCR-policy
// key), its data key, the journal. The TPM is closed again before
// it returns; close closes the journal.
func openStoppedJournal(ctx context.Context, cfg *config.Config, log *slog.Logger) (*store.Journal, error) {
	dir := filepath.Join(cfg.DataDir, "journal")
	if err := checkJournalFree(dir); err != nil {
		return nil, err
	}
	t, err := tpm.Open(ctx, cfg.TPM, tpm.Options{StateDir: cfg.TPMStateDir, PCRs: cfg.PCRs, Logger: log.With("component", "tpm"), Simulator: simulatorFor(cfg.TPMInsecureSimulator)})
	if err != nil {
		return nil, err
	}
	if t.Identity().PCRPolicyKey != nil {
		loadPCRAuthorization(ctx, cfg, t, log)
	}
	key, err := t.DataKey(ctx)
	if cerr := t.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("bundles: data key: %w", err)
	}
	j, err := store.Open(ctx, store.Options{Dir: dir, EncryptionKey: key, Logger: log.With("component", "store")})
	if err != nil {
		if isLocked(err) {
			return nil, &AgentRunningError{Journal: dir}
		}
		return nil, err
	}
	return j, nil
}

// isLocked reports Badger's directory lock error (a running agent), for
// the platforms checkJournalFree cannot probe.
func isLocked(err error) bool {
	return strings.Contains(err.Error(), "Cannot acquire directory lock")
}

func loadAgentConfig(fs *flag.FlagSet, cfgPath string) (*config.Config, error) {
	if cfgPath == "" {
		return nil, usageErr("%s: --config is required", fs.Name())
	}
	return config.Load(cfgPath)
}

// cmdBundlesExport writes every pending outbox bundle to DIR and the index
// last. It deletes nothing: the outbox is emptied by import-receipts.
func cmdBundlesExport(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) (err error) {
	fs := flag.NewFlagSet("bundles export", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the agent's YAML config file (required)")
	to := fs.String("to", "", "the folder to write the bundles to (required; created)")
	if pos, err := parseInterleaved(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErr("bundles export: unexpected argument %q", pos[0])
	}
	if *to == "" {
		return usageErr("bundles export: --to DIR is required")
	}
	cfg, err := loadAgentConfig(fs, *cfgPath)
	if err != nil {
		return err
	}
	log = log.With("device", cfg.DeviceID())
	if err := os.MkdirAll(*to, 0o755); err != nil {
		return fmt.Errorf("bundles export: %w", err)
	}
	j, err := openStoppedJournal(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := j.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	idx := MediaIndex{Format: mediaFormat, Device: cfg.DeviceID(), Exported: time.Now().UTC(), Bundles: []MediaBundle{}}
	var total int64
	err = j.Outbox(ctx, func(id string, data []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !sync.ValidID(id) || strings.ContainsAny(id, `/\`) || strings.HasPrefix(id, ".") {
			return fmt.Errorf("bundles export: outbox id %q is not a file name", id)
		}
		name := id + mediaBundleSuffix
		if err := fsutil.WriteFileAtomic(filepath.Join(*to, name), data, 0o644); err != nil {
			return fmt.Errorf("bundles export: %w", err)
		}
		cpSize, _ := strconv.ParseUint(id, 10, 64) // agent.OutboxID: the checkpoint size
		idx.Bundles = append(idx.Bundles, MediaBundle{ID: id, File: name, Bundle: wire.FormatHash(sha256.Sum256(data)),
			Size: int64(len(data)), CheckpointSize: cpSize})
		total += int64(len(data))
		fmt.Fprintf(stdout, "%s  %s  %d bytes\n", name, wire.FormatHash(sha256.Sum256(data)), len(data))
		return nil
	})
	if err != nil {
		return fmt.Errorf("bundles export: %w", err)
	}
	raw, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return fmt.Errorf("bundles export: index: %w", err)
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(*to, MediaIndexFile), append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("bundles export: %w", err)
	}
	log.Info("bundles exported to removable media", "dir", *to, "bundles", len(idx.Bundles), "bytes", total)
	fmt.Fprintf(stdout, "%d bundle(s), %d bytes, exported to %s; the outbox keeps them until their receipts are imported\n",
		len(idx.Bundles), total, *to)
	return nil
}

// importSummary counts what import-receipts did.
type importSummary struct {
	delivered, already, rejected, superseded, bad int
}

// cmdBundlesImportReceipts takes DIR/receipts/*.receipt.json: each is
// verified against the archive key, must name this device and a bundle in
// the outbox, is journaled as a delivery.receipt record and only then the
// outbox entry is deleted. A receipt for a bundle delivered before is a
// no-op. Signed rejections are reported and leave the entry.
func cmdBundlesImportReceipts(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) (err error) {
	fs := flag.NewFlagSet("bundles import-receipts", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the agent's YAML config file (required)")
	keyPath := fs.String("archive-key", "", "the archive's Ed25519 public key (PEM); default: the config's sync.archive_key")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("bundles import-receipts: want one DIR")
	}
	cfg, err := loadAgentConfig(fs, *cfgPath)
	if err != nil {
		return err
	}
	if *keyPath == "" {
		*keyPath = cfg.Sync.ArchiveKey
	}
	if *keyPath == "" {
		return usageErr("bundles import-receipts: the archive key is required: --archive-key FILE or sync.archive_key in the config")
	}
	pub, err := readEd25519Public(*keyPath)
	if err != nil {
		return err
	}
	log = log.With("device", cfg.DeviceID())
	rdir := filepath.Join(pos[0], archive.ReceiptsDir)
	receipts, rejections, err := listReplies(rdir)
	if err != nil {
		return err
	}
	j, err := openStoppedJournal(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := j.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	rj, err := agent.NewReceiptJournal(agent.Options{Site: cfg.Site, Device: cfg.Device, Logger: log.With("component", "core")}, j)
	if err != nil {
		return err
	}
	ring, err := importArchiveKeys(cfg, rj, pub)
	if err != nil {
		return err
	}
	imp := &receiptImporter{j: j, rj: rj, ring: ring, device: cfg.DeviceID(), log: log, out: stdout}
	if err := imp.load(ctx); err != nil {
		return err
	}
	var sum importSummary
	for _, p := range receipts {
		if err := imp.receipt(ctx, p, &sum); err != nil {
			return err
		}
	}
	for _, p := range rejections {
		imp.rejection(ctx, p, &sum)
	}
	left := len(imp.outbox)
	fmt.Fprintf(stdout, "%d delivered, %d already delivered, %d rejected, %d superseded rejection(s), %d bad; %d bundle(s) left in the outbox\n",
		sum.delivered, sum.already, sum.rejected, sum.superseded, sum.bad, left)
	if sum.rejected+sum.bad > 0 {
		return &exitError{code: 1, err: fmt.Errorf("bundles import-receipts: %d rejected, %d bad (entries kept in the outbox)", sum.rejected, sum.bad)}
	}
	return nil
}

// listReplies returns the receipt and rejection files of dir, sorted.
func listReplies(dir string) (receipts, rejections []string, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("bundles import-receipts: %w", err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		switch {
		case strings.HasSuffix(e.Name(), ".receipt.json"):
			receipts = append(receipts, filepath.Join(dir, e.Name()))
		case strings.HasSuffix(e.Name(), ".rejection.json"):
			rejections = append(rejections, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(receipts)
	slices.Sort(rejections)
	return receipts, rejections, nil
}

// receiptImporter matches replies to the outbox and the delivery records.
type receiptImporter struct {
	j      *store.Journal
	rj     *agent.ReceiptJournal
	ring   sync.ArchiveKeyring // the archive key and its rotations learned
	device string
	log    *slog.Logger
	out    io.Writer

	outbox    map[[32]byte]string // bundle digest -> outbox id, pending
	delivered map[[32]byte]string // bundle digest -> outbox id, journaled
}

func (im *receiptImporter) load(ctx context.Context) error {
	im.outbox, im.delivered = map[[32]byte]string{}, map[[32]byte]string{}
	if err := im.j.Outbox(ctx, func(id string, data []byte) error {
		im.outbox[sha256.Sum256(data)] = id
		return nil
	}); err != nil {
		return fmt.Errorf("bundles import-receipts: outbox: %w", err)
	}
	got, err := agent.ReadReceipts(ctx, im.j)
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
func (im *receiptImporter) bad(sum *importSummary, e *ReceiptFileError) {
	sum.bad++
	im.log.Error("reply file refused", "file", e.File, "reason", e.Reason, "err", e.Err)
	if e.Err != nil {
		fmt.Fprintf(im.out, "%s  BAD: %s: %v\n", e.File, e.Reason, e.Err)
	} else {
		fmt.Fprintf(im.out, "%s  BAD: %s\n", e.File, e.Reason)
	}
}

// receipt takes one receipt file. Only journal and outbox failures are
// returned (they stop the import); a bad file is counted and reported.
func (im *receiptImporter) receipt(ctx context.Context, path string, sum *importSummary) error {
	name := filepath.Base(path)
	raw, err := readLimited(path, archivesig.MaxReceiptSize)
	if err != nil {
		im.bad(sum, &ReceiptFileError{File: name, Reason: "unreadable", Err: err})
		return nil
	}
	r, err := sync.VerifyReceiptRing(ctx, raw, im.ring)
	if err != nil {
		im.bad(sum, &ReceiptFileError{File: name, Reason: "does not verify against the archive key", Err: err})
		return nil
	}
	if r.Device != im.device {
		im.bad(sum, &ReceiptFileError{File: name, Reason: "for device " + r.Device + ", not " + im.device})
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
		sum.already++
		fmt.Fprintf(im.out, "%s  %s  already delivered\n", name, prev)
		return nil
	case !pending:
		im.bad(sum, &ReceiptFileError{File: name, Reason: "names bundle " + r.BundleDigest + ", which is not in the outbox"})
		return nil
	}
	// Journaled before a crash but not yet deleted: delete only.
	if !done {
		if err := im.rj.JournalReceipt(ctx, id, raw); err != nil {
			return err
		}
	}
	if err := im.j.DeleteOutbox(ctx, id); err != nil {
		return fmt.Errorf("bundles import-receipts: delete delivered outbox entry %q: %w", id, err)
	}
	delete(im.outbox, d)
	im.delivered[d] = id
	sum.delivered++
	fmt.Fprintf(im.out, "%s  %s  delivered (archive log index %d)\n", name, id, r.LogIndex)
	return nil
}

// rejection reports one signed rejection loudly; the entry stays. A
// rejection of a bundle that has been delivered since (an earlier import
// refused it, a later one accepted it) is superseded and only noted.
func (im *receiptImporter) rejection(ctx context.Context, path string, sum *importSummary) {
	name := filepath.Base(path)
	raw, err := readLimited(path, archivesig.MaxReceiptSize)
	if err != nil {
		im.bad(sum, &ReceiptFileError{File: name, Reason: "unreadable", Err: err})
		return
	}
	rej, err := sync.VerifyRejectionRing(ctx, raw, im.ring)
	if err != nil {
		im.bad(sum, &ReceiptFileError{File: name, Reason: "rejection does not verify against the archive key", Err: err})
		return
	}
	if rej.Device != im.device {
		im.bad(sum, &ReceiptFileError{File: name, Reason: "rejection for device " + rej.Device + ", not " + im.device})
		return
	}
	d, err := wire.ParseHash(rej.BundleDigest)
	if err != nil {
		im.bad(sum, &ReceiptFileError{File: name, Reason: "bundle digest", Err: err})
		return
	}
	if id, done := im.delivered[d]; done {
		sum.superseded++
		fmt.Fprintf(im.out, "%s  %s  rejection superseded: delivered since\n", name, id)
		return
	}
	id, pending := im.outbox[d]
	if !pending {
		id = "(not in the outbox)"
	}
	sum.rejected++
	im.log.Error("the archive REFUSED a bundle; it stays in the outbox", "file", name, "outbox", id,
		"bundle", rej.BundleDigest, "reason", rej.Reason, "checks", rej.Checks)
	fmt.Fprintf(im.out, "%s  %s  REJECTED by the archive: %s (checks: %s); kept in the outbox\n",
		name, id, rej.Reason, strings.Join(rej.Checks, ", "))
}
