package main

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/sync"
	"github.com/edgeseal/edgeseal/tpm"
)

// openTPM opens the TPM named by spec with key blobs in state.
func openTPM(ctx context.Context, spec, state string, log *slog.Logger) (*tpm.TPM, error) {
	return tpm.Open(ctx, spec, tpm.Options{StateDir: state, Logger: log, Simulator: simulatorOpener})
}

// cmdEnroll creates (or loads) the device's TPM keys and writes the trust
// file that 'edgeseal verify' and the archive trust: EK, AK, the signing key,
// its certification by the AK and the golden PCR values.
func cmdEnroll(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("tpm enroll", flag.ContinueOnError)
	spec := fs.String("tpm", "device:/dev/tpmrm0", "TPM: device:PATH, swtpm:HOST:PORT or simulator:DIR")
	state := fs.String("state", "/var/lib/edgeseal/tpm", "directory of the TPM key blobs")
	site := fs.String("site", "", "site name")
	device := fs.String("device", "", "device name within the site")
	out := fs.String("out", "DEVICE.json", "where to write the trust file")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *site == "" || *device == "" {
		return usageErr("tpm enroll: --site and --device are required")
	}
	t, err := openTPM(ctx, *spec, *state, log)
	if err != nil {
		return err
	}
	defer t.Close()
	trust, err := bundle.NewTrust(*site, *device, agent.BundleIdentity(t.Identity()))
	if err != nil {
		return err
	}
	data, err := trust.Marshal()
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(*out, data, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: device %s/%s, key %s, PCRs %v\n", *out, *site, *device, trust.KeyID, trust.PCRSelection.PCRs)
	return nil
}

// enrollTimeout is how long `agent enroll` waits for the archive's answer
// by default.
const enrollTimeout = 30 * time.Second

// cmdAgentEnroll builds the device's enrollment request from the agent's
// config and TPM (the trust of `tpm enroll` and the PCR values read now),
// writes it to --out when given (for `archive enroll-file`), and sends it
// over MQTT when the config has a broker: published at QoS 1 on
// edgeseal/v1/<site>/<device>/enroll, answered by the archive with a
// signed acknowledgement on .../enroll/reply. Run it while the agent is
// stopped (it opens the same TPM state).
func cmdAgentEnroll(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("agent enroll", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the agent's YAML config file (required)")
	out := fs.String("out", "", "also write the request to this file (for 'archive enroll-file')")
	note := fs.String("note", "", "a note for the operator who approves (at most 1024 bytes)")
	noMQTT := fs.Bool("no-mqtt", false, "do not send over MQTT even if sync.broker is configured")
	timeout := fs.Duration("timeout", enrollTimeout, "how long to wait for the archive's answer")
	if pos, err := parseInterleaved(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErr("agent enroll: unexpected argument %q", pos[0])
	}
	if *cfgPath == "" {
		return usageErr("agent enroll: --config is required")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	send := cfg.Sync.Broker != "" && !*noMQTT
	if !send && *out == "" {
		return usageErr("agent enroll: no sync.broker in the config (or --no-mqtt): give --out FILE")
	}
	t, err := tpm.Open(ctx, cfg.TPM, tpm.Options{StateDir: cfg.TPMStateDir, PCRs: cfg.PCRs, Logger: log.With("component", "tpm"), Simulator: simulatorOpener})
	if err != nil {
		return err
	}
	raw, req, err := enrollRequest(ctx, t, cfg.Site, cfg.Device, *note)
	if cerr := t.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	trust := req.ParsedTrust()
	fmt.Fprintf(stdout, "device %s, key %s, PCRs %v (current values match the key's policy: %v)\n",
		trust.DeviceName(), trust.KeyID, trust.PCRSelection.PCRs, req.PCRsMatch())
	if *out != "" {
		if err := fsutil.WriteFileAtomic(*out, raw, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", *out)
	}
	if !send {
		return nil
	}
	key, err := readEd25519Public(cfg.Sync.ArchiveKey)
	if err != nil {
		return err
	}
	if key, err = currentArchiveKey(cfg, key); err != nil {
		return err
	}
	var tc *tls.Config
	if cfg.Sync.CA != "" || cfg.Sync.Cert != "" {
		if tc, err = syncTLS(cfg.Sync); err != nil {
			return err
		}
	}
	ack, _, err := sync.Enroll(ctx, sync.EnrollOptions{
		Broker: cfg.Sync.Broker, Site: cfg.Site, Device: cfg.Device, TLS: tc,
		ArchiveKey: key, Request: raw, Timeout: *timeout, Logger: log.With("component", "sync"),
	})
	if err != nil {
		return fmt.Errorf("agent enroll: %w", err)
	}
	switch ack.Status {
	case sync.EnrollRefused:
		return fmt.Errorf("agent enroll: the archive REFUSED the enrollment: %s", ack.Reason)
	case sync.EnrollApproved:
		fmt.Fprintf(stdout, "archive: %s is enrolled and approved with key %s\n", ack.Device, ack.KeyID)
	default:
		fmt.Fprintf(stdout, "archive: enrollment of %s received at %s, pending approval; an operator runs: edgeseal archive devices approve %s --key %s\n",
			ack.Device, ack.Time, ack.Device, ack.KeyID)
	}
	return nil
}

// enrollRequest reads the TPM's identity and current PCR values into an
// enrollment request, and checks it the way the archive will.
func enrollRequest(ctx context.Context, t *tpm.TPM, site, device, note string) ([]byte, *archive.EnrollRequest, error) {
	trust, err := bundle.NewTrust(site, device, agent.BundleIdentity(t.Identity()))
	if err != nil {
		return nil, nil, err
	}
	tb, err := trust.Marshal()
	if err != nil {
		return nil, nil, err
	}
	cur, err := t.ReadPCRs(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("agent enroll: read PCRs: %w", err)
	}
	pcrs, _ := trust.PCRs()
	vals := make(map[string]string, len(pcrs))
	for _, p := range pcrs {
		vals[strconv.Itoa(p)] = hex.EncodeToString(cur[p])
	}
	r := &archive.EnrollRequest{Version: archive.EnrollVersion, Trust: tb, PCRValues: vals, Note: note}
	raw, err := r.Marshal()
	if err != nil {
		return nil, nil, err
	}
	req, err := archive.ParseEnrollRequest(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("agent enroll: %w", err)
	}
	return raw, req, nil
}
