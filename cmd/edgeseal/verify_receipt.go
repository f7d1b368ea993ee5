package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/edgeseal/edgeseal/agent/agentd"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// cmdVerifyReceipt: `edgeseal verify receipt --archive-key PUB
// [--archive-name N] RECEIPT...` checks archive receipts offline against
// the archive key the verifier trusts, following the key rotations the
// receipts carry (docs/archive-keys.md), in the order given. Exit 0 all
// verified, 1 one did not, 2 usage or unreadable input.
func cmdVerifyReceipt(_ context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("verify receipt", flag.ContinueOnError)
	keyPath := fs.String("archive-key", "", "the archive's Ed25519 public key (PEM) you trust (required)")
	name := fs.String("archive-name", archive.DefaultName, "the archive's name (its log origin)")
	paths, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if *keyPath == "" || len(paths) == 0 {
		return usageErr("verify receipt: want --archive-key PUB and one or more receipt files")
	}
	root, err := agentd.ReadArchiveKey(*keyPath)
	if err != nil {
		return usageErr("verify receipt: --archive-key: %v", err)
	}
	keys := archivesig.NewArchiveKeys(*name, root)
	failed := 0
	for _, p := range paths {
		raw, err := fsutil.ReadRegular(p, archivesig.MaxReceiptSize)
		if err != nil {
			return usageErr("verify receipt: %v", err)
		}
		r, learned, err := keys.VerifyReceipt(raw, time.Now())
		for _, a := range learned {
			if _, an, perr := archivesig.ParseArchiveKey(a); perr == nil {
				fmt.Fprintf(stdout, "%s: archive key rotated %s -> %s at %s (overlap until %s)\n", p, an.OldKeyID, an.NewKeyID, an.Time, an.OverlapUntil)
			}
		}
		if err != nil {
			failed++
			fmt.Fprintf(stdout, "%s: NOT VERIFIED: %v\n", p, err)
			continue
		}
		env, _, _ := archivesig.ParseReceipt(raw)
		fmt.Fprintf(stdout, "%s: verified: bundle %s of %s, archive log index %d, signed by %s\n", p, r.BundleDigest, r.Device, r.LogIndex, env.Signatures[0].KeyID)
	}
	if failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("verify receipt: %d of %d receipts not verified", failed, len(paths))}
	}
	return nil
}
