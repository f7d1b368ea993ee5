package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/edgeseal/edgeseal/agent/agentd"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/sync"
	"github.com/edgeseal/edgeseal/tpm"
)

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
func cmdAgentEnroll(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) (err error) {
	fs := flag.NewFlagSet("agent enroll", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the agent's YAML config file (required)")
	out := fs.String("out", "", "also write the request to this file (for 'archive enroll-file'); with --answer, where to write the response")
	note := fs.String("note", "", "a note for the operator who approves (at most 1024 bytes)")
	noMQTT := fs.Bool("no-mqtt", false, "do not send over MQTT even if sync.broker is configured")
	timeout := fs.Duration("timeout", enrollTimeout, "how long to wait for the archive's answer")
	answer := fs.String("answer", "", "answer the archive's credential challenge file (from 'archive enroll-file') instead of enrolling")
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
	log = atLevel(log, cfg.Log.SlogLevel())
	send := cfg.Sync.Broker != "" && !*noMQTT && *answer == ""
	if !send && *out == "" && *answer == "" {
		return usageErr("agent enroll: no sync.broker in the config (or --no-mqtt): give --out FILE")
	}
	t, err := tpm.Open(ctx, cfg.TPM, tpm.Options{StateDir: cfg.TPMStateDir, PCRs: cfg.PCRs, Logger: log.With("component", "tpm"), Simulator: simulatorFor(cfg.TPMInsecureSimulator)})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := t.Close(); err == nil {
			err = cerr
		}
	}()
	if *answer != "" {
		return answerChallengeFile(ctx, t, cfg.Site, cfg.Device, *answer, *out, stdout)
	}
	raw, req, err := agentd.EnrollRequest(ctx, t, cfg.Site, cfg.Device, *note)
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
	opts, err := agentd.EnrollOptions(cfg, raw, *timeout, log)
	if err != nil {
		return err
	}
	ack, _, err := sync.Enroll(ctx, opts)
	if err != nil {
		return fmt.Errorf("agent enroll: %w", err)
	}
	if ack.Status == sync.EnrollPending && ack.Challenge != "" {
		if ack, err = activateOverMQTT(ctx, t, opts, ack, stdout); err != nil {
			return err
		}
	}
	switch ack.Status {
	case sync.EnrollRefused:
		return fmt.Errorf("agent enroll: the archive REFUSED the enrollment: %s", ack.Reason)
	case sync.EnrollApproved:
		fmt.Fprintf(stdout, "archive: %s is enrolled and approved with key %s\n", ack.Device, ack.KeyID)
	case sync.EnrollPending:
		if ack.Reason != "" { // a new key of a device approved before: approve or rekey
			fmt.Fprintf(stdout, "archive: enrollment of %s received at %s, pending; %s\n", ack.Device, ack.Time, ack.Reason)
			break
		}
		fallthrough
	default:
		fmt.Fprintf(stdout, "archive: enrollment of %s received at %s, pending approval; an operator runs: edgeseal archive devices approve %s --key %s\n",
			ack.Device, ack.Time, ack.Device, ack.KeyID)
	}
	return nil
}
