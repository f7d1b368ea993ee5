package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/archived"
	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/archive/keystore"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// signedDevices builds the statement of `archive devices VERB` and
// signs it (signedDeviceAction).
func signedDevices(ctx context.Context, cfg *config.Config, d *archive.Devices, verb string, pos []string, keyID, by, reason string, noActivation bool, keyFile string, stdout io.Writer, log *slog.Logger) error {
	if by == "" {
		return usageErr("archive devices %s: --by is required ($USER is not set)", verb)
	}
	if len(pos) == 0 {
		return usageErr("archive devices %s: want SITE/NAME", verb)
	}
	if verb == "approve" && noActivation {
		log.Warn("approving with --no-activation: the AK is not proven to be in the TPM of the EK; check the request's EK otherwise", "device", pos[0], "key", keyID)
	}
	s := &archive.OperatorStatement{By: by, Reason: reason, Device: pos[0]}
	switch verb {
	case "approve":
		s.Type, s.KeyID, s.NoActivation = archive.StatementDeviceApprove, keyID, noActivation
	case "revoke":
		s.Type = archive.StatementDeviceRevoke
	default:
		if len(pos) != 2 || reason == "" {
			return usageErr("archive devices revoke-key: want SITE/NAME KEYID and --reason")
		}
		s.Type, s.KeyID = archive.StatementDeviceRevokeKey, pos[1]
	}
	return signedDeviceAction(ctx, cfg, d, s, keyFile, stdout, log)
}

// signedDeviceAction is `archive devices approve|revoke|revoke-key` on an
// archive whose config lists operator_keys: the command signs a device
// statement with --operator-key and queues it in the archive's pending
// folder (archive.QueueStatement). A running daemon takes it before its
// next bundle; when the daemon is stopped the command opens the archive,
// which takes it at once.
func signedDeviceAction(ctx context.Context, cfg *config.Config, d *archive.Devices, s *archive.OperatorStatement, keyFile string, stdout io.Writer, log *slog.Logger) error {
	if keyFile == "" {
		return usageErr("archive devices %s: --operator-key FILE is required (the config lists operator_keys)", verbOf(s.Type))
	}
	op, err := keystore.LoadFile(keyFile)
	if err != nil {
		return err
	}
	pub, ok := op.Public().(ed25519.PublicKey)
	if !ok {
		return fmt.Errorf("archive devices %s: %s is not an Ed25519 key", verbOf(s.Type), keyFile)
	}
	keys, err := archived.OperatorKeys(cfg)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(keys, func(k ed25519.PublicKey) bool { return k.Equal(pub) }) {
		return fmt.Errorf("archive devices %s: key %s is not one of the config's operator_keys", verbOf(s.Type), archive.KeyID(pub))
	}
	if s.Type == archive.StatementDeviceApprove {
		list, err := d.List()
		if err != nil {
			return err
		}
		i := slices.IndexFunc(list, func(dv archive.DeviceInfo) bool { return dv.Name == s.Device })
		if i < 0 || list[i].PendingKey(s.KeyID) == nil {
			return fmt.Errorf("archive devices approve: %s has no pending key %s", s.Device, s.KeyID)
		}
		trust := list[i].PendingKey(s.KeyID).Request.Trust
		s.TrustDigest, s.TrustFile = archive.TrustDigest(trust), archive.CompactTrust(trust)
	}
	s.Time = wire.FormatTime(time.Now())
	rec, err := archive.SignOperatorStatement(s, op)
	if err != nil {
		return err
	}
	a, closeAll, err := openStoppedArchive(ctx, cfg, log, "taking the statement at once")
	if err == nil {
		defer closeAll()
		res, err := a.DeviceStatement(ctx, rec)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %s signed by %s (key %s), logged at archive log index %d\n%s", s.Type, s.Device, s.By, s.Key, res.LogIndex, res.Checkpoint)
		return nil
	}
	log.Debug("archive not opened: the daemon runs", "err", err)
	sq, err := archived.OpenSharedState(ctx, cfg)
	if err != nil {
		return err
	}
	if sq != nil {
		defer sq.Close()
		id, err := sq.Statements().Queue(ctx, rec)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %s signed by %s (key %s), queued in the shared database as statement %s: the first replica to look logs it before its next bundle\n", s.Type, s.Device, s.By, s.Key, id)
		return nil
	}
	path, err := archive.QueueStatement(cfg.DataDir, rec)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s %s signed by %s (key %s), queued as %s: the running archive logs it before its next bundle\n", s.Type, s.Device, s.By, s.Key, path)
	return nil
}

// verbOf names the command of a device statement type.
func verbOf(typ string) string {
	switch typ {
	case archive.StatementDeviceApprove:
		return "approve"
	case archive.StatementDeviceRevoke:
		return "revoke"
	}
	return "revoke-key"
}

// listFromLog is `archive devices list` on an archive whose config lists
// operator_keys: the device states are the archive log's. With the
// daemon stopped the command opens the archive, which derives them from
// its log (and writes devices.json anew from them); while it runs, the
// command reads devices.json, the cache the daemon keeps of its log.
func listFromLog(ctx context.Context, cfg *config.Config, d *archive.Devices, log *slog.Logger) ([]archive.DeviceInfo, error) {
	a, closeAll, err := openStoppedArchive(ctx, cfg, log, "reading the device states from the archive log")
	if err != nil {
		log.Info("listing devices.json, the cache the running archive keeps of its log's device states", "reason", err)
		return d.List()
	}
	defer closeAll()
	return a.Devices().List()
}
