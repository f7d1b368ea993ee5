package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/archived"
	"github.com/edgeseal/edgeseal/archive/config"
)

// archiveFlags are the flags every operator command takes.
type archiveFlags struct {
	fs      *flag.FlagSet
	cfgPath *string
	dataDir *string
}

func newArchiveFlags(name string) archiveFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	return archiveFlags{fs: fs,
		cfgPath: fs.String("config", defaultArchiveConfig, "the archive's YAML config file"),
		dataDir: fs.String("data-dir", "", "the archive's data directory (instead of the config's)"),
	}
}

// config returns the archive config (--data-dir alone needs no file).
func (f archiveFlags) config() (*config.Config, error) {
	if *f.dataDir != "" {
		c := config.Default()
		c.DataDir = *f.dataDir
		c.KeyFile = filepath.Join(c.DataDir, "archive.key")
		return c, nil
	}
	return config.Load(*f.cfgPath)
}

func (f archiveFlags) devices(log *slog.Logger) (*archive.Devices, error) {
	cfg, err := f.config()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, err
	}
	d, err := archive.OpenDevices(filepath.Join(cfg.DataDir, "devices.json"), log, nil)
	if err != nil {
		return nil, err
	}
	roots, err := archived.LoadEKRoots(cfg)
	if err != nil {
		return nil, err
	}
	d.SetEKRoots(roots)
	d.OnEvict(func(_ context.Context, e archive.Evicted) {
		log.Warn("ALERT "+archive.KindEnrollmentEvicted, "severity", archive.SeverityWarning, "device", e.Device,
			"reasons", []string{"pending key " + e.KeyID + " (received " + e.ReceivedAt + ") dropped: too many pending requests " + e.Reason})
	})
	return d, nil
}

// cmdArchiveDevices: devices list [--json] | approve NAME --key ID [--by WHO] [--no-activation]
// | revoke NAME --reason R | revoke-key NAME KEYID --reason R [--by WHO]
// (rekey is archive_rekey.go: it opens the archive's journals). They
// change devices.json directly, also while the daemon runs (it reloads
// the file on change).
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
	if verb == "approve" && *keyID == "" {
		return usageErr("archive devices approve: --key is required (the pending key id that `archive devices list` shows and that you checked)")
	}
	if verb == "revoke" && *reason == "" {
		return usageErr("archive devices revoke: --reason is required")
	}
	d, err := f.devices(log)
	if err != nil {
		return err
	}
	if verb == "list" {
		list, err := d.List()
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

func readLimited(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}

// cmdArchiveImport takes bundles brought on removable media through the
// same verification as MQTT and writes the answers to DIR/receipts/. It
// opens the archive's journals, so the daemon must not run meanwhile.
func cmdArchiveImport(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	f := newArchiveFlags("archive import")
	pos, err := parseInterleaved(f.fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("archive import: want one DIR")
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	key, closeKey, _, err := archived.OpenKey(cfg)
	if err != nil {
		return err
	}
	defer closeKey()
	a, err := archived.Open(ctx, cfg, key, log)
	if err != nil {
		return fmt.Errorf("%w (an import needs the archive daemon stopped)", err)
	}
	defer a.Close()
	res, err := a.ImportDir(ctx, pos[0])
	var accepted, refused int
	for _, im := range res {
		status := "accepted"
		if !im.Accepted {
			status, refused = "REFUSED: "+im.Err.Error(), refused+1
		} else {
			accepted++
		}
		fmt.Fprintf(stdout, "%s  %s  %s\n", im.File, im.Device, status)
	}
	fmt.Fprintf(stdout, "%d accepted, %d refused; answers in %s\n", accepted, refused, filepath.Join(pos[0], archive.ReceiptsDir))
	if err != nil {
		return err
	}
	if refused > 0 {
		return &exitError{code: 1, err: errors.New("some bundles were refused (quarantined; see the rejections)")}
	}
	return nil
}
