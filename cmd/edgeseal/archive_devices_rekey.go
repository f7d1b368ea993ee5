package main

import (
	"context"
	"crypto"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/keystore"
)

// cmdArchiveRekey: `archive devices rekey SITE/NAME --key ID [--reason R]
// [--by WHO]` continues a device's history as a new epoch under its
// pending new key (Archive.Rekey). It appends the operator statement to
// the archive log, so, like import, it opens the archive's journals: the
// daemon must be stopped. The rekey's alert (device.rekey) goes to the
// log (stderr).
func cmdArchiveRekey(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	f := newArchiveFlags("archive devices rekey")
	keyID := f.fs.String("key", "", "the device's new key id, pending after its enrollment (required)")
	reason := f.fs.String("reason", "", "why: a TPM clear, a board or disk replaced")
	by := f.fs.String("by", os.Getenv("USER"), "the operator")
	opKeyFile := f.fs.String("operator-key", "", "the operator's key file: signs the rekey statement (required when the config lists operator_keys)")
	noActivation := f.fs.Bool("no-activation", false, "rekey to a key whose credential was not activated (its AK is not proven to be in the TPM of its EK)")
	pos, err := parseInterleaved(f.fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("archive devices rekey: want one SITE/NAME")
	}
	if *keyID == "" {
		return usageErr("archive devices rekey: --key is required (the pending key id `archive devices list` shows)")
	}
	if *by == "" {
		return usageErr("archive devices rekey: --by is required ($USER is not set)")
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	log = atConfigLevel(log, cfg.Log.Level)
	a, closeArchive, err := openStoppedArchive(ctx, cfg, log, "a rekey")
	if err != nil {
		return err
	}
	defer closeArchive()
	if err := rekeyActivated(a.Devices(), pos[0], *keyID, *noActivation, log); err != nil {
		return err
	}
	var op crypto.Signer
	if *opKeyFile != "" {
		k, err := keystore.LoadFile(*opKeyFile)
		if err != nil {
			return err
		}
		op = k
	}
	res, err := a.RekeySigned(ctx, pos[0], *keyID, *by, *reason, op)
	if err != nil {
		return err
	}
	st, c := res.Statement, res.Statement.Closed
	fmt.Fprintf(stdout, "%s: epoch %d (key %s) closed at checkpoint %d after %d bundle(s)", st.Device, c.Epoch, c.KeyID, c.CheckpointSize, c.Bundles)
	if c.Bundles > 0 {
		fmt.Fprintf(stdout, " (root %s, counter %d, last bundle %s)", c.CheckpointRoot, c.Counter, c.Bundle)
	}
	fmt.Fprintf(stdout, "\n%s: epoch %d opened with key %s; its bundles start at checkpoint size 0\n", st.Device, st.Epoch, st.KeyID)
	fmt.Fprintf(stdout, "operator statement at archive log index %d, by %s\n%s", res.LogIndex, st.By, res.Checkpoint)
	return nil
}

// rekeyActivated refuses, as `devices approve` does, to open an epoch for
// a key whose credential was not activated (its AK not proven to be in
// the TPM of its EK), unless the operator says --no-activation.
func rekeyActivated(d *archive.Devices, name, keyID string, noActivation bool, log *slog.Logger) error {
	list, err := d.List()
	if err != nil {
		return err
	}
	for _, dv := range list {
		if dv.Name != name {
			continue
		}
		p := dv.PendingKey(keyID)
		switch {
		case p == nil || p.Activated():
			return nil // Rekey names what is wrong with a key not pending
		case noActivation:
			log.Warn("rekey with --no-activation: the AK is not proven to be in the TPM of the EK; check the request's EK otherwise", "device", name, "key", keyID)
			return nil
		}
		return fmt.Errorf("archive devices rekey: key %s of %s was not activated: its AK is not proven to be in the TPM of its EK; "+
			"run `edgeseal agent enroll` on the device (it answers the credential challenge), or the enroll-file challenge and response, "+
			"or give --no-activation", keyID, name)
	}
	return nil
}
