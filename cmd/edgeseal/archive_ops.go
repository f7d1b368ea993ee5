package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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

func (f archiveFlags) devices() (*archive.Devices, error) {
	cfg, err := f.config()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, err
	}
	return archive.OpenDevices(filepath.Join(cfg.DataDir, "devices.json"), nil, nil)
}

// cmdArchiveDevices: devices list [--json] | approve NAME [--key ID] [--by WHO] | revoke NAME --reason R.
// They change devices.json directly, also while the daemon runs (it
// reloads the file on change).
func cmdArchiveDevices(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageErr("archive devices: want list, approve or revoke")
	}
	verb := args[0]
	f := newArchiveFlags("archive devices " + verb)
	asJSON := f.fs.Bool("json", false, "list as JSON")
	keyID := f.fs.String("key", "", "approve: the pending key id the operator checked")
	by := f.fs.String("by", os.Getenv("USER"), "approve: the approving operator")
	reason := f.fs.String("reason", "", "revoke: why (required)")
	pos, err := parseInterleaved(f.fs, args[1:])
	if err != nil {
		return err
	}
	d, err := f.devices()
	if err != nil {
		return err
	}
	switch verb {
	case "list":
		list, err := d.List()
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(list)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DEVICE\tSTATUS\tKEY\tPENDING KEY\tPCRS MATCH")
		for _, dv := range list {
			pending, match := "-", "-"
			if dv.Pending != nil {
				pending = dv.Pending.ParsedTrust().KeyID
				match = fmt.Sprint(dv.Pending.PCRsMatch())
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", dv.Name, dv.Status, orDash(dv.KeyID), pending, match)
		}
		return tw.Flush()
	case "approve", "revoke":
		if len(pos) != 1 {
			return usageErr("archive devices %s: want one SITE/NAME", verb)
		}
		var info archive.DeviceInfo
		if verb == "approve" {
			info, err = d.Approve(ctx, pos[0], *keyID, *by)
		} else {
			if *reason == "" {
				return usageErr("archive devices revoke: --reason is required")
			}
			info, err = d.Revoke(ctx, pos[0], *reason)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %s (key %s)\n", info.Name, info.Status, orDash(info.KeyID))
		return nil
	}
	return usageErr("archive devices: unknown %q", verb)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// cmdArchiveEnrollFile enrolls a device from its DEVICE.json or an
// enrollment request file; it stays pending until approved.
func cmdArchiveEnrollFile(ctx context.Context, args []string, stdout io.Writer) error {
	f := newArchiveFlags("archive enroll-file")
	pos, err := parseInterleaved(f.fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("archive enroll-file: want one DEVICE.json")
	}
	data, err := readLimited(pos[0], archive.MaxEnrollSize)
	if err != nil {
		return err
	}
	req, err := archive.ParseEnrollRequest(data)
	if err != nil {
		return err
	}
	d, err := f.devices()
	if err != nil {
		return err
	}
	info, err := d.Enroll(ctx, req)
	if err != nil {
		return err
	}
	t := req.ParsedTrust()
	fmt.Fprintf(stdout, "enrolled %s: key %s, PCRs %v (current values match: %v); status %s\n",
		info.Name, t.KeyID, t.PCRSelection.PCRs, req.PCRsMatch(), info.Status)
	if info.Pending != nil {
		fmt.Fprintf(stdout, "approve with: edgeseal archive devices approve %s --key %s\n", info.Name, t.KeyID)
	}
	return nil
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
	key, closeKey, _, err := openArchiveKey(cfg)
	if err != nil {
		return err
	}
	defer closeKey()
	objects, err := openObjects(ctx, cfg)
	if err != nil {
		return err
	}
	a, err := archive.Open(ctx, archive.Options{Dir: cfg.DataDir, Signer: key, Name: cfg.Name, Retention: cfg.Retention, Objects: objects, Logger: log})
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

// mqttTLS builds the client TLS config for an ssl:// broker: the system
// roots or the configured CA, and the archive's client certificate.
func mqttTLS(cfg *config.Config) (*tls.Config, error) {
	t := cfg.MQTT.TLS
	if t == (config.TLS{}) {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pemData, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt tls: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("mqtt tls: no certificate in %s", t.CAFile)
		}
	}
	if t.CertFile != "" {
		c, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt tls: %w", err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}
