package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/archived"
	"github.com/edgeseal/edgeseal/archive/keystore"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// cmdArchiveOperator: `archive operator keygen --out FILE` writes a new
// operator key (PKCS#8 PEM, 0600) and FILE.pub, the public key the
// archive config lists under operator_keys.
func cmdArchiveOperator(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "keygen" {
		return usageErr("archive operator: want keygen --out FILE")
	}
	f := newArchiveFlags("archive operator keygen")
	out := f.fs.String("out", "", "the operator key file to write (required; FILE.pub beside it)")
	if pos, err := parseInterleaved(f.fs, args[1:]); err != nil {
		return err
	} else if len(pos) > 0 || *out == "" {
		return usageErr("archive operator keygen: want --out FILE")
	}
	if _, err := os.Stat(*out); err == nil {
		return fmt.Errorf("archive operator keygen: %s exists", *out)
	}
	k, err := keystore.Generate()
	if err != nil {
		return err
	}
	if err := keystore.WriteFile(*out, k); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "operator key %s written to %s; list %s.pub under operator_keys in the archive config\n",
		archive.KeyID(k.Public().(ed25519.PublicKey)), *out, *out)
	return nil
}

// openForOperator opens the archive (the daemon stopped: its journals
// are locked while it runs) and the operator's key.
func openForOperator(ctx context.Context, f archiveFlags, keyFile string, log *slog.Logger) (*archive.Archive, ed25519.PrivateKey, func(), error) {
	if keyFile == "" {
		return nil, nil, nil, usageErr("--key OPERATOR.key is required")
	}
	op, err := keystore.LoadFile(keyFile)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg, err := f.config()
	if err != nil {
		return nil, nil, nil, err
	}
	log = atConfigLevel(log, cfg.Log.Level)
	key, closeKey, _, err := archived.OpenKey(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	a, closeArchive, err := archived.Open(ctx, cfg, key, nil, log)
	if err != nil {
		closeKey()
		return nil, nil, nil, fmt.Errorf("%w (an operator statement needs the archive daemon stopped)", err)
	}
	return a, op, func() { _ = closeArchive(); closeKey() }, nil
}

// cmdArchiveHold: `archive hold set|release (--device S/D | --export ID |
// --bundle sha256:..) --case ID --key OPERATOR.key [--by WHO] [--reason R]`
// logs a signed legal hold statement and sets or clears the object
// store's legal hold of the bundles it names (Archive.Hold).
func cmdArchiveHold(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	if len(args) == 0 || (args[0] != "set" && args[0] != "release") {
		return usageErr("archive hold: want set or release")
	}
	release := args[0] == "release"
	f := newArchiveFlags("archive hold " + args[0])
	var t archive.HoldTarget
	f.fs.StringVar(&t.Device, "device", "", "every bundle of the device SITE/NAME, also those it sends later (until released)")
	f.fs.StringVar(&t.Export, "export", "", "the bundles holding the export ID")
	f.fs.StringVar(&t.Bundle, "bundle", "", "one bundle, sha256:..")
	caseID := f.fs.String("case", "", "the case the hold is for (required)")
	keyFile := f.fs.String("key", "", "the operator's key file (required)")
	by := f.fs.String("by", os.Getenv("USER"), "the operator")
	reason := f.fs.String("reason", "", "free text")
	if pos, err := parseInterleaved(f.fs, args[1:]); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErr("archive hold: unexpected argument %q", pos[0])
	}
	if n := len(slices.DeleteFunc([]string{t.Device, t.Export, t.Bundle}, func(s string) bool { return s == "" })); n != 1 {
		return usageErr("archive hold: want one of --device, --export, --bundle")
	}
	if *caseID == "" || *by == "" {
		return usageErr("archive hold: --case and --by are required")
	}
	a, op, closeAll, err := openForOperator(ctx, f, *keyFile, log)
	if err != nil {
		return err
	}
	defer closeAll()
	res, err := a.Hold(ctx, t, *caseID, *by, *reason, op, release)
	if err != nil {
		return err
	}
	s := res.Statement
	fmt.Fprintf(stdout, "%s case %s on %d bundle(s):\n", s.Type, s.Case, len(s.Objects))
	for _, o := range s.Objects {
		fmt.Fprintln(stdout, "  "+o)
	}
	if t.Device != "" && !release {
		fmt.Fprintf(stdout, "and every bundle %s sends until the case is released\n", t.Device)
	}
	fmt.Fprintf(stdout, "operator statement at archive log index %d, by %s (key %s)\n%s", res.LogIndex, s.By, s.Key, res.Checkpoint)
	return nil
}

// cmdArchivePurge: `archive purge --key OPERATOR.key [--bundle sha256:..]...
// [--dry-run] [--by WHO] [--reason R]` deletes the payload bytes of the
// bundles past their retain-until and not held, and logs the signed
// retention.purge statement (Archive.Purge).
func cmdArchivePurge(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	f := newArchiveFlags("archive purge")
	keyFile := f.fs.String("key", "", "the operator's key file (required)")
	by := f.fs.String("by", os.Getenv("USER"), "the operator")
	reason := f.fs.String("reason", "", "free text")
	dry := f.fs.Bool("dry-run", false, "list what would be purged, change nothing")
	stmtOut := f.fs.String("statement-out", "", "write the signed retention.purge statement (the archive log record) here, for `edgeseal verify --purged`")
	var bundles []string
	f.fs.Func("bundle", "purge only this bundle (sha256:..; repeatable): refused unless past its retain-until and not held", func(s string) error {
		bundles = append(bundles, s)
		return nil
	})
	if pos, err := parseInterleaved(f.fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErr("archive purge: unexpected argument %q", pos[0])
	}
	if *by == "" {
		return usageErr("archive purge: --by is required ($USER is not set)")
	}
	a, op, closeAll, err := openForOperator(ctx, f, *keyFile, log)
	if err != nil {
		return err
	}
	defer closeAll()
	res, err := a.Purge(ctx, op, archive.PurgeOptions{By: *by, Reason: *reason, Bundles: bundles, DryRun: *dry})
	if err != nil {
		return err
	}
	verb := "purged"
	if *dry {
		verb = "would purge"
	}
	for _, p := range res.Purged {
		fmt.Fprintf(stdout, "%s %s (class %s, retained until %s): %d payload(s); skeleton %s\n", verb, p.Bundle, p.Class, p.RetainUntil, len(p.Payloads), p.Skeleton)
	}
	kept := make([]string, 0, len(res.Retained))
	for b := range res.Retained {
		kept = append(kept, b)
	}
	slices.Sort(kept)
	for _, b := range kept {
		fmt.Fprintf(stdout, "kept %s: %s\n", b, res.Retained[b])
	}
	if res.Logged != nil && *stmtOut != "" {
		rec, err := res.Logged.Statement.Marshal()
		if err != nil {
			return err
		}
		if err := fsutil.WriteFileAtomic(*stmtOut, rec, 0o644); err != nil {
			return err
		}
	}
	if res.Logged != nil {
		fmt.Fprintf(stdout, "retention.purge statement at archive log index %d, by %s (key %s)\n%s", res.Logged.LogIndex, *by, res.Logged.Statement.Key, res.Logged.Checkpoint)
	}
	return nil
}
