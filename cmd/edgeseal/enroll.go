package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
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
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/sync"
	"github.com/edgeseal/edgeseal/tpm"
)

// openTPM opens the TPM named by spec with key blobs in state, creating
// the keys when state has none (enrollment is the only place that does).
func openTPM(ctx context.Context, spec, state string, insecureSim bool, policy *tpm.PCRPolicy, log *slog.Logger) (*tpm.TPM, error) {
	return tpm.Open(ctx, spec, tpm.Options{StateDir: state, Logger: log, Simulator: simulatorFor(insecureSim), Create: true, PCRPolicy: policy})
}

// cmdEnroll creates (or loads) the device's TPM keys and writes the trust
// file that 'edgeseal verify' and the archive trust: EK, AK, the signing key,
// its certification by the AK and the golden PCR values. The data key is
// also wrapped to the operator's recovery key (enrollRecovery).
func cmdEnroll(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("tpm enroll", flag.ContinueOnError)
	spec := fs.String("tpm", "device:/dev/tpmrm0", "TPM: device:PATH, swtpm:HOST:PORT or simulator:DIR")
	insecureSim := fs.Bool("insecure-simulator", false, "allow a simulator:DIR TPM (the in-process simulator: INSECURE, tests and demos only)")
	state := fs.String("state", "/var/lib/edgeseal/tpm", "directory of the TPM key blobs")
	site := fs.String("site", "", "site name")
	device := fs.String("device", "", "device name within the site")
	out := fs.String("out", "DEVICE.json", "where to write the trust file")
	var rec enrollRecovery
	rec.flags(fs)
	pcrKey := fs.String("pcr-policy-key", "", "bind the keys to this PCR-policy public key (FILE.pub of 'tpm pcr-key new')")
	pcrPolicy := fs.String("pcr-policy", "", "'pcr': bind the keys to the current PCR values (legacy; a firmware update then needs new keys)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *site == "" || *device == "" {
		return usageErr("tpm enroll: --site and --device are required")
	}
	if err := rec.check(*spec); err != nil {
		return err
	}
	policy, err := enrollPolicy(*spec, *site+"/"+*device, *pcrKey, *pcrPolicy)
	if err != nil {
		return err
	}
	t, err := openTPM(ctx, *spec, *state, *insecureSim, policy, log)
	if err != nil {
		return startHint(err)
	}
	defer t.Close()
	if err := checkEnrolledPolicy(t.Identity(), policy, *state); err != nil {
		return err
	}
	if err := rec.apply(ctx, t, *state, *site+"/"+*device, *out, stdout); err != nil {
		return err
	}
	trust, err := trustfile.NewTrust(*site, *device, agent.BundleIdentity(t.Identity()))
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
	if policy != nil {
		pcrs, values := trust.PCRs()
		kid, _ := trustfile.PCRPolicyKeyID(policy.Key)
		fmt.Fprintf(stdout, "keys bound to PCR policy key %s; they work once the operator authorizes the current values:\n"+
			"  edgeseal tpm authorize-pcrs --key PCR-KEY --device %s/%s --pcrs %s --out pcr-authorization.json\n"+
			"  edgeseal agent authorize-pcrs --config AGENT.yaml pcr-authorization.json\n",
			kid, *site, *device, formatPCRList(pcrs, values))
	}
	return nil
}

// enrollPolicy decides how `tpm enroll` binds new keys: to the PCR-policy
// key given, or to fixed PCR values with --pcr-policy=pcr. On a real TPM
// one of the two is required, so that nobody enrolls keys a firmware
// update would lock by accident; the simulator (tests, demos) defaults to
// fixed values.
func enrollPolicy(spec, device, keyPath, mode string) (*tpm.PCRPolicy, error) {
	switch {
	case mode != "" && mode != "pcr":
		return nil, usageErr("tpm enroll: --pcr-policy %q: the only value is 'pcr'", mode)
	case mode != "" && keyPath != "":
		return nil, usageErr("tpm enroll: --pcr-policy-key and --pcr-policy=pcr exclude each other")
	case keyPath != "":
		k, err := readPCRPolicyPublic(keyPath)
		if err != nil {
			return nil, usageErr("tpm enroll: --pcr-policy-key: %v", err)
		}
		return &tpm.PCRPolicy{Key: k, Ref: trustfile.PCRPolicyRef(device)}, nil
	case mode == "pcr":
		return nil, nil
	}
	if sp, err := tpm.ParseSpec(spec); err == nil && sp.Kind == tpm.KindSimulator {
		return nil, nil
	}
	return nil, usageErr("tpm enroll: give --pcr-policy-key PCR-KEY.pub (keys survive firmware updates through signed authorizations) or --pcr-policy=pcr (legacy: keys bound to today's PCR values)")
}

// checkEnrolledPolicy refuses when the keys in the state dir (made by an
// earlier enroll) are not bound the way this enroll asks: enroll creates
// keys only when absent.
func checkEnrolledPolicy(id tpm.Identity, policy *tpm.PCRPolicy, state string) error {
	if policy == nil {
		return nil
	}
	want, err := x509.MarshalPKIXPublicKey(policy.Key)
	if err != nil {
		return err
	}
	if !bytes.Equal(id.PCRPolicyKey, want) || !bytes.Equal(id.PCRPolicyRef, policy.Ref) {
		return fmt.Errorf("tpm enroll: the keys in %s were enrolled before and are not bound to this PCR policy key and device; enroll creates keys only when absent", state)
	}
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
	raw, req, err := enrollRequest(ctx, t, cfg.Site, cfg.Device, *note)
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
	opts := sync.EnrollOptions{
		Broker: cfg.Sync.Broker, Site: cfg.Site, Device: cfg.Device, TLS: tc,
		ArchiveKey: key, Request: raw, Timeout: *timeout, Logger: log.With("component", "sync"),
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

// enrollRequest reads the TPM's identity and current PCR values into an
// enrollment request, and checks it the way the archive will.
func enrollRequest(ctx context.Context, t *tpm.TPM, site, device, note string) ([]byte, *archive.EnrollRequest, error) {
	trust, err := trustfile.NewTrust(site, device, agent.BundleIdentity(t.Identity()))
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
