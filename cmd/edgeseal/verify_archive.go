package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/agent/agentd"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/witness"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/sync/media"
)

// Bounds of what `verify archive` reads from folders.
const (
	maxArchiveInputs = 100000    // files taken from the inputs
	maxArchiveDepth  = 3         // folder levels below an input folder
	maxArchiveBytes  = 256 << 20 // checkpoint record bodies kept in memory
)

// repeated is a repeatable string flag.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

// archiveInputs are what `verify archive` collected from its inputs
// before it checks anything: the checkpoint records of bundles, the
// receipts, and the archive key announcements both carry.
type archiveInputs struct {
	records       []checkpointRecord
	receipts      []archiveReceipt
	announcements [][]byte
	bundles       int
	bytes         int // of records and receipts kept
	// trusts are the --trust files by device; a bundle of such a device
	// is verified on its own (verify.Verify without a state) before its
	// records count. verified and failed count and name them.
	trusts    map[string]*trustfile.Trust
	verified  int
	failed    []string
	untrusted map[string]bool // devices of bundles without a --trust
}

type checkpointRecord struct {
	device, source string
	seq            uint64
	body           []byte
}

type archiveReceipt struct {
	source string
	raw    []byte
}

// cmdVerifyArchive: `edgeseal verify archive --archive-key PUB... [--log
// DIR] INPUT...` collects the archive log checkpoints devices were shown
// (their bundles' archive.checkpoint records, receipts), keeps those the
// archive's key signed, and checks them for an archive that showed
// inconsistent logs (bundle/witness). Exit 0 nothing inconsistent, 1 an
// inconsistency, 2 usage or unreadable input.
func cmdVerifyArchive(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("verify archive", flag.ContinueOnError)
	var keyPaths repeated
	fs.Var(&keyPaths, "archive-key", "an Ed25519 public key (PEM) of the archive you trust (repeatable; required)")
	name := fs.String("archive-name", archive.DefaultName, "the archive's name (its log origin)")
	var trustPaths repeated
	fs.Var(&trustPaths, "trust", "a device's trust file (DEVICE.json, repeatable): its bundles are verified before their records count")
	logDir := fs.String("log", "", "a copy of the archive's /log/ tlog-tiles tree (checkpoint, tile/...): every checkpoint is checked against it")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	paths, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(keyPaths) == 0 || len(paths) == 0 {
		return usageErr("verify archive: want --archive-key PUB and one or more bundles, receipts or folders")
	}
	var roots []ed25519.PublicKey
	for _, p := range keyPaths {
		k, err := agentd.ReadArchiveKey(p)
		if err != nil {
			return usageErr("verify archive: --archive-key: %v", err)
		}
		roots = append(roots, k)
	}
	in := &archiveInputs{trusts: map[string]*trustfile.Trust{}, untrusted: map[string]bool{}}
	for _, p := range trustPaths {
		raw, err := readRegular(p, 64<<10)
		if err != nil {
			return usageErr("verify archive: --trust: %v", err)
		}
		tr, err := trustfile.ParseTrust(raw)
		if err != nil {
			return usageErr("verify archive: --trust %s: %v", p, err)
		}
		in.trusts[tr.DeviceName()] = tr
	}
	for _, p := range paths {
		if err := in.add(ctx, p); err != nil {
			return err
		}
	}
	c, err := witness.NewCollector(*name, roots...)
	if err != nil {
		return usageErr("verify archive: %v", err)
	}
	keys := archivesig.NewArchiveKeys(*name, roots...)
	learnKeys(keys, c, in.announcements)
	now := time.Now()
	for _, rc := range in.receipts {
		r, learned, err := keys.VerifyReceipt(rc.raw, now)
		if len(learned) > 0 {
			learnKeys(keys, c, nil)
		}
		if err != nil {
			c.Unsigned = append(c.Unsigned, fmt.Sprintf("%s: receipt: %v", rc.source, err))
			continue
		}
		c.AddReceipt(rc.source, r)
	}
	for _, r := range in.records {
		if err := c.AddRecord(r.device, r.source, r.seq, r.body); err != nil {
			c.Unsigned = append(c.Unsigned, fmt.Sprintf("%s seq %d: %v", r.source, r.seq, err))
		}
	}
	var m *witness.Mirror
	var ms *witness.Sighting
	if *logDir != "" {
		if m, err = witness.OpenMirror(*logDir); err != nil {
			return usageErr("verify archive: --log: %v", err)
		}
		defer m.Close()
		if ms, err = c.AddMirror(m); err != nil {
			return usageErr("verify archive: --log: %v", err)
		}
	}
	rep := witness.Check(c, m, ms)
	if len(in.trusts) > 0 {
		rep.Checks = append(rep.Checks, in.devicesResult())
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printArchiveReport(stdout, rep, in)
	}
	if !rep.OK() {
		var names []string
		for _, ch := range rep.Checks {
			if !ch.OK {
				names = append(names, ch.Name)
			}
		}
		return &exitError{code: 1, err: fmt.Errorf("verify archive: %s: %s failed", *name, strings.Join(names, ", "))}
	}
	return nil
}

// learnKeys follows the archive's key announcements from the keys it
// trusts (in any order given: until none is learned) and trusts each
// key learned for checkpoint notes too.
func learnKeys(keys *archivesig.ArchiveKeys, c *witness.Collector, anns [][]byte) {
	for progress := true; progress; {
		progress = false
		for _, a := range anns {
			if ok, _ := keys.Learn(a); ok {
				progress = true
			}
		}
	}
	for _, a := range keys.Chain() {
		if _, an, err := archivesig.ParseArchiveKey(a); err == nil {
			_ = c.AddKey(ed25519.PublicKey(an.NewKey))
		}
	}
}

// add takes one input: a bundle, a receipt, or a folder searched for
// both (*.bundle.tar, *.receipt.json) a few levels deep. A link or a
// special file among them is refused (exit 2), not skipped.
func (in *archiveInputs) add(ctx context.Context, p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return usageErr("verify archive: %v", err)
	}
	if !fi.IsDir() {
		if !fi.Mode().IsRegular() {
			return usageErr("verify archive: %s: not a regular file", p)
		}
		if strings.HasSuffix(p, media.BundleSuffix) || strings.HasSuffix(p, ".tar") {
			return in.addBundle(p)
		}
		return in.addReceipt(p)
	}
	files := 0
	return filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return usageErr("verify archive: %v", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			if rel, _ := filepath.Rel(p, path); rel != "." && strings.Count(rel, string(filepath.Separator)) >= maxArchiveDepth {
				return filepath.SkipDir
			}
			return nil
		}
		bundleFile, receiptFile := strings.HasSuffix(path, media.BundleSuffix), strings.HasSuffix(path, media.ReceiptSuffix)
		if !bundleFile && !receiptFile {
			return nil
		}
		if !d.Type().IsRegular() {
			return usageErr("verify archive: %s: not a regular file (a link or a special file is refused)", path)
		}
		if files++; files > maxArchiveInputs {
			return usageErr("verify archive: more than %d files in %s", maxArchiveInputs, p)
		}
		if bundleFile {
			return in.addBundle(path)
		}
		return in.addReceipt(path)
	})
}

// addBundle reads a bundle (the bundle reader's bounds) and keeps its
// archive.checkpoint records and archive key announcements.
func (in *archiveInputs) addBundle(p string) error {
	b, err := bundle.ReadFile(p)
	if err != nil {
		return usageErr("verify archive: %v", err)
	}
	in.bundles++
	var device string
	for line := range bytes.Lines(b.Files[bundle.PathRecords]) {
		r, err := custody.ParseRecord(bytes.TrimSuffix(line, []byte("\n")))
		if err != nil {
			return usageErr("verify archive: %s: %v (edgeseal verify --trust names what is wrong)", p, err)
		}
		if device == "" {
			device = r.Device
			if tr := in.trusts[device]; tr != nil {
				if rep := verify.Verify(b, tr, nil); !rep.OK() {
					in.failed = append(in.failed, fmt.Sprintf("%s: %s: %s failed (its archive checkpoints are not counted)", p, device, strings.Join(rep.Failed(), ", ")))
					return nil
				}
				in.verified++
			} else {
				in.untrusted[device] = true
			}
		}
		switch r.Type {
		case custody.TypeArchiveCheckpoint:
			if in.bytes += len(r.Body); len(in.records) >= witness.MaxSightings || in.bytes > maxArchiveBytes {
				return usageErr("verify archive: more than %d archive checkpoints or %d bytes of them", witness.MaxSightings, maxArchiveBytes)
			}
			in.records = append(in.records, checkpointRecord{device: r.Device, source: p, seq: r.Seq, body: r.Body})
		case custody.TypeArchiveKey:
			if in.bytes += len(r.Body); in.bytes > maxArchiveBytes {
				return usageErr("verify archive: more than %d bytes of archive checkpoints and keys", maxArchiveBytes)
			}
			in.announcements = append(in.announcements, r.Body)
		}
	}
	return nil
}

// addReceipt reads a receipt (at most archivesig.MaxReceiptSize) and
// keeps it and the key announcements it carries.
func (in *archiveInputs) addReceipt(p string) error {
	raw, err := fsutil.ReadRegular(p, archivesig.MaxReceiptSize)
	if err != nil {
		return usageErr("verify archive: %v", err)
	}
	_, r, err := archivesig.ParseReceipt(raw)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return usageErr("verify archive: %v", err)
		}
		return usageErr("verify archive: %s: not a receipt: %v", p, err)
	}
	if in.bytes += len(raw); len(in.receipts) >= witness.MaxSightings || in.bytes > maxArchiveBytes {
		return usageErr("verify archive: more than %d receipts or %d bytes of them", witness.MaxSightings, maxArchiveBytes)
	}
	in.receipts = append(in.receipts, archiveReceipt{source: p, raw: raw})
	in.announcements = append(in.announcements, r.KeyChain...)
	return nil
}

// devicesResult is the check devices.verified: every bundle of a device
// given with --trust verified on its own.
func (in *archiveInputs) devicesResult() witness.Result {
	res := witness.Result{Name: "devices.verified", OK: len(in.failed) == 0, Messages: in.failed}
	res.Detail = fmt.Sprintf("%d bundle(s) verified against their device's trust file", in.verified)
	if len(in.failed) > 0 {
		res.Detail = fmt.Sprintf("%d bundle(s) do not verify against their device's trust file", len(in.failed))
	}
	if n := len(in.untrusted); n > 0 {
		res.Detail += fmt.Sprintf("; %d device(s) without --trust: their records are taken as they say", n)
	}
	return res
}

// printArchiveReport prints the checks, each failure naming both
// checkpoints and the devices, the groups nothing relates, and a verdict.
func printArchiveReport(w io.Writer, rep *witness.Report, in *archiveInputs) {
	fmt.Fprintf(w, "archive %s: %d checkpoint(s), %d distinct, seen by %d device(s) %s; from %d bundle(s) and %d receipt(s)\n",
		rep.Origin, rep.Checkpoints, rep.Distinct, len(rep.Devices), strings.Join(rep.Devices, ", "), in.bundles, len(in.receipts))
	for _, c := range rep.Checks {
		status := "ok"
		switch {
		case !c.OK:
			status = "FAILED"
		case c.Skipped:
			status = "skipped"
		}
		fmt.Fprintf(w, "  %-8s %-18s %s\n", status, c.Name, c.Detail)
		for _, m := range c.Messages {
			fmt.Fprintf(w, "           - %s\n", m)
		}
	}
	if len(rep.Unrelated) > 0 {
		fmt.Fprintf(w, "not related (no proof and no log copy shows these consistent with each other; give --log DIR):\n")
		for _, u := range rep.Unrelated {
			fmt.Fprintf(w, "  - %s\n", u)
		}
	}
	if in.bundles > 0 && len(in.trusts) == 0 {
		fmt.Fprintf(w, "note: which device was shown a checkpoint is what its bundles' records say; --trust DEVICE.json verifies them\n")
	}
	if rep.OK() {
		fmt.Fprintf(w, "archive %s: no inconsistency found\n", rep.Origin)
	} else {
		fmt.Fprintf(w, "archive %s: INCONSISTENT: the archive showed inconsistent logs, or its checkpoints are not all its own\n", rep.Origin)
	}
}
