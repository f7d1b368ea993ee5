package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"text/tabwriter"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// cmdArchiveDevices: devices list [--json] | approve NAME --key ID [--by WHO] [--no-activation]
// | revoke NAME --reason R | revoke-key NAME KEYID --reason R [--by WHO]
// (rekey is archive_rekey.go: it opens the archive's journals). Without
// operator_keys they change devices.json directly, also while the daemon
// runs (it reloads the file on change); with operator_keys they sign a
// device statement (archive_devices_signed.go) and list shows the device
// states of the archive log.
func cmdArchiveDevices(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	if len(args) == 0 {
		return usageErr("archive devices: want list, approve, revoke, revoke-key or rekey")
	}
	verb := args[0]
	f := newArchiveFlags("archive devices " + verb)
	asJSON := f.fs.Bool("json", false, "list as JSON")
	keyID := f.fs.String("key", "", "approve: the pending key id the operator checked (required)")
	by := f.fs.String("by", os.Getenv("USER"), "approve, revoke-key: the operator")
	noActivation := f.fs.Bool("no-activation", false, "approve: approve a request whose credential was not activated (its AK is not proven to be in the TPM of its EK)")
	reason := f.fs.String("reason", "", "revoke, revoke-key: why (required)")
	opKeyFile := f.fs.String("operator-key", "", "approve, revoke, revoke-key: the operator's key file, signs the statement (required when the config lists operator_keys)")
	pos, err := parseInterleaved(f.fs, args[1:])
	if err != nil {
		return err
	}
	switch verb {
	case "list", "approve", "revoke", "revoke-key":
	default:
		return usageErr("archive devices: unknown %q", verb)
	}
	if verb != "list" && verb != "revoke-key" && len(pos) != 1 {
		return usageErr("archive devices %s: want one SITE/NAME", verb)
	}
	if verb != "list" && len(pos) > 0 {
		if err := wire.CheckDevice(pos[0]); err != nil {
			return usageErr("archive devices %s: %v", verb, err)
		}
	}
	if verb == "approve" && *keyID == "" {
		return usageErr("archive devices approve: --key is required (the pending key id that `archive devices list` shows and that you checked)")
	}
	if verb == "revoke" && *reason == "" {
		return usageErr("archive devices revoke: --reason is required")
	}
	// Refused before devices.json.lock is made in a folder that is not
	// an archive's (a typo of --data-dir, a config naming the wrong one).
	if err := f.checkDataDir("archive devices " + verb); err != nil {
		return err
	}
	d, done, err := f.devices(ctx, log)
	if err != nil {
		return err
	}
	defer done()
	if verb != "list" {
		cfg, err := f.config()
		if err != nil {
			return err
		}
		log = atConfigLevel(log, cfg.Log.Level)
		if len(cfg.OperatorKeys) > 0 {
			return signedDevices(ctx, cfg, d, verb, pos, *keyID, *by, *reason, *noActivation, *opKeyFile, stdout, log)
		}
	}
	if verb == "list" {
		list, err := d.List()
		if cfg, cerr := f.config(); cerr == nil && len(cfg.OperatorKeys) > 0 {
			list, err = listFromLog(ctx, cfg, d, atConfigLevel(log, cfg.Log.Level))
		}
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(list)
		}
		return printDevices(stdout, list)
	}
	if verb == "revoke-key" {
		return revokeKey(ctx, d, pos, *reason, *by, stdout)
	}
	var info archive.DeviceInfo
	if verb == "approve" {
		if *noActivation {
			log.Warn("approving with --no-activation: the AK is not proven to be in the TPM of the EK; check the request's EK otherwise", "device", pos[0], "key", *keyID)
		}
		info, err = d.ApproveEnrollment(ctx, pos[0], archive.Approval{KeyID: *keyID, By: *by, NoActivation: *noActivation})
	} else {
		info, err = d.Revoke(ctx, pos[0], *reason)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s %s (key %s)\n", info.Name, info.Status, orDash(info.KeyID))
	return nil
}

// printDevices lists the devices, a line for each pending request and
// closed epoch under the device's.
func printDevices(stdout io.Writer, list []archive.DeviceInfo) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tSTATUS\tEPOCH\tKEY\tPENDING KEY\tPCRS MATCH\tACTIVATED")
	for _, dv := range list {
		pending, match, activated := "-", "-", "-"
		if len(dv.Requests) > 0 {
			p := dv.Requests[len(dv.Requests)-1]
			pending, match, activated = p.KeyID(), fmt.Sprint(p.Request.PCRsMatch()), activatedText(p)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", dv.Name, dv.Status, dv.CurrentEpoch(), orDash(dv.KeyID), pending, match, activated)
		for k := len(dv.Requests) - 2; k >= 0; k-- { // the older ones, newest first
			p := dv.Requests[k]
			fmt.Fprintf(tw, "  pending\t\t\t\t%s\t%v\t%s\n", p.KeyID(), p.Request.PCRsMatch(), activatedText(p))
		}
		for _, ep := range dv.Epochs {
			fmt.Fprintf(tw, "  closed\t\t%d\t%s\tat checkpoint %d, %d bundle(s), %s by %s\t\t\n", ep.Epoch, ep.KeyID, ep.CheckpointSize, ep.Bundles, ep.ClosedAt, ep.ClosedBy)
		}
	}
	return tw.Flush()
}

func activatedText(p archive.PendingEnrollment) string {
	switch {
	case p.Activated():
		return "yes"
	case p.Challenge != "":
		return "challenged"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// revokeKey is `edgeseal archive devices revoke-key SITE/NAME KEYID
// --reason R`: bundles sealed by that signing key are refused from now
// on; the device and its other keys stay approved.
func revokeKey(ctx context.Context, d *archive.Devices, pos []string, reason, by string, stdout io.Writer) error {
	if len(pos) != 2 {
		return usageErr("archive devices revoke-key: want SITE/NAME KEYID")
	}
	if reason == "" {
		return usageErr("archive devices revoke-key: --reason is required")
	}
	info, err := d.RevokeKey(ctx, pos[0], pos[1], reason, by)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s key %s revoked (%d revoked keys); device %s\n", info.Name, pos[1], len(info.RevokedKeys), info.Status)
	return nil
}
