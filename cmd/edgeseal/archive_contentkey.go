package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/archived"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm/recovery"
)

// cmdArchiveContentKey: content-key new [--generate-wrap-key] | rotate |
// show [--out FILE] [--escrow RECOVERY.key.pub] | restore --seq N
// --escrow-file FILE --recovery-key RECOVERY.key.
func cmdArchiveContentKey(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	if len(args) == 0 {
		return usageErr("archive content-key: want new, rotate or show")
	}
	verb := args[0]
	f := newArchiveFlags("archive content-key " + verb)
	out := f.fs.String("out", "", "also write the announcement agents are given (encryption.content_key) to this file")
	escrow := f.fs.String("escrow", "", "new, rotate: wrap the new private key to this offline recovery public key (edgeseal tpm recovery-keygen)")
	escrowFile := f.fs.String("escrow-file", "", "restore: the <seq>.escrow.json to restore")
	recKey := f.fs.String("recovery-key", "", "restore: the recovery private key")
	seq := f.fs.Uint64("seq", 0, "restore: the content key's seq (the escrow file's name)")
	genWrap := f.fs.Bool("generate-wrap-key", false, "new: first create content_key_wrap's AES key in the PKCS#11 token")
	wait := f.fs.Duration("wait", time.Minute, "rotate while the archive daemon runs: how long to wait for it to take the rotation")
	pos, err := parseInterleaved(f.fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("archive content-key %s: unexpected argument %q", verb, pos[0])
	}
	if verb != "new" && verb != "rotate" && verb != "show" && verb != "restore" {
		return usageErr("archive content-key: unknown %q: want new, rotate, show or restore", verb)
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	log = atConfigLevel(log, cfg.Log.Level)
	if verb == "restore" {
		if *escrowFile == "" || *recKey == "" || *seq == 0 {
			return usageErr("archive content-key restore: --seq, --escrow-file and --recovery-key are required")
		}
		esc, err := fsutil.ReadLimited(*escrowFile, 8<<10)
		if err != nil {
			return err
		}
		rb, err := fsutil.ReadLimited(*recKey, 8<<10)
		if err != nil {
			return err
		}
		rk, err := recovery.ParsePrivateKey(rb)
		if err != nil {
			return err
		}
		// Restored into the stopped archive, and logged in its signed log.
		a, closeAll, err := openStoppedArchive(ctx, cfg, log, "a content key restore")
		if err != nil {
			return err
		}
		defer closeAll()
		id, err := a.RestoreContentKey(ctx, *seq, esc, rk)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "content key %d restored: %s in %s/%s/%d.key (logged in the archive log)\n", *seq, id, cfg.DataDir, archive.ContentKeyDir, *seq)
		return nil
	}
	if *genWrap {
		if verb != "new" {
			return usageErr("archive content-key %s: --generate-wrap-key goes with new", verb)
		}
		if err := archived.GenerateContentKeyWrap(cfg); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrap key created in the token: %s\n", cfg.ContentKeyWrap)
	}
	var recPub *recovery.PublicKey
	if *escrow != "" {
		b, err := fsutil.ReadLimited(*escrow, 8<<10)
		if err != nil {
			return err
		}
		if recPub, err = recovery.ParsePublicKey(b); err != nil {
			return err
		}
	}
	a, closeAll, err := openStoppedArchive(ctx, cfg, log, "a content key operation")
	if verb == "rotate" && errors.Is(err, store.ErrLocked) {
		if recPub != nil {
			return usageErr("archive content-key rotate --escrow: the archive daemon runs; rotate without --escrow (the daemon takes it), then escrow the new key with the daemon stopped, or stop it and rotate with --escrow")
		}
		return rotateRunning(ctx, cfg.DataDir, *out, *wait, stdout)
	}
	if err != nil {
		return err
	}
	defer closeAll()
	cur, err := a.ContentKeyAnnouncement()
	switch {
	case err != nil && !errors.Is(err, archive.ErrNoContentKey):
		return err
	case verb == "new" && err == nil:
		return usageErr("archive content-key new: the archive has a content key already: rotate it")
	case verb != "new" && err != nil:
		return usageErr("archive content-key %s: the archive has no content key yet: edgeseal archive content-key new", verb)
	}
	raw := cur
	if verb != "show" {
		if raw, err = a.NewContentKey(ctx); err != nil {
			return err
		}
	}
	_, an, err := archivesig.ParseContentKey(raw)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "content key %d: %s (kem 0x%04x, kdf 0x%04x, aead 0x%04x) since %s\nannouncement: %s/%s/%d.json\n",
		an.Seq, an.KeyID, an.KEM, an.KDF, an.AEAD, an.Time, cfg.DataDir, archive.ContentKeyDir, an.Seq)
	if *out != "" {
		if err := fsutil.WriteFileAtomic(*out, raw, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "written to %s: give it to every agent as encryption.content_key\n", *out)
	}
	if verb == "show" {
		return nil
	}
	if verb == "rotate" {
		fmt.Fprintf(stdout, "agents learn the new key from the receipts of their next bundles (no config change needed)\n")
	}
	fmt.Fprintf(stdout, "the private key is %s/%s/%d.key (0600); keep every old key for decryption\n", cfg.DataDir, archive.ContentKeyDir, an.Seq)
	if recPub == nil {
		fmt.Fprintf(stdout, "NOT ESCROWED: run again with --escrow RECOVERY.key.pub on the next rotation, or copy the key file offline now\n")
		return nil
	}
	p, err := a.EscrowContentKey(ctx, an.Seq, recPub)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "escrowed to recovery key %s: %s (copy it offline beside the recovery key)\n", recPub.ID, p)
	return nil
}

// rotateRunning rotates the content key of the running archive daemon
// at dataDir: it queues the request (archive.RequestContentKeyRotation)
// and waits up to wait for the daemon's answer, the new announcement.
func rotateRunning(ctx context.Context, dataDir, out string, wait time.Duration, stdout io.Writer) error {
	id, err := archive.RequestContentKeyRotation(dataDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "the archive daemon runs: rotation %s queued in %s\n", id, archive.ContentKeyRequestDir(dataDir))
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	raw, err := archive.WaitContentKeyRotation(wctx, dataDir, id, 100*time.Millisecond)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("archive content-key rotate: no answer from the daemon within %s: the request stays queued (it is taken at the daemon's next start otherwise)", wait)
	}
	if err != nil {
		return err
	}
	_, an, err := archivesig.ParseContentKey(raw)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "content key %d: %s (kem 0x%04x, kdf 0x%04x, aead 0x%04x) since %s, taken by the running daemon\nannouncement: %s/%s/%d.json\n",
		an.Seq, an.KeyID, an.KEM, an.KDF, an.AEAD, an.Time, dataDir, archive.ContentKeyDir, an.Seq)
	if out != "" {
		if err := fsutil.WriteFileAtomic(out, raw, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "written to %s: give it to every agent as encryption.content_key\n", out)
	}
	fmt.Fprintf(stdout, "agents learn the new key from the receipts of their next bundles (no config change needed)\n")
	fmt.Fprintf(stdout, "NOT ESCROWED: escrow it with the daemon stopped (content-key rotate --escrow on the next rotation), or copy %s/%s/%d.key* offline now\n", dataDir, archive.ContentKeyDir, an.Seq)
	return nil
}
