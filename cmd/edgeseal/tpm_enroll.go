package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/agentd"
	"github.com/edgeseal/edgeseal/agent/policy/signed"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/tpm"
)

// openTPM opens the TPM named by spec with key blobs in state, creating
// the keys when state has none (enrollment is the only place that does).
func openTPM(ctx context.Context, spec, state string, insecureSim bool, policy *tpm.PCRPolicy, log *slog.Logger) (*tpm.TPM, error) {
	return tpm.Open(ctx, spec, tpm.Options{StateDir: state, Logger: log, Simulator: simulatorFor(insecureSim), Create: true, PCRPolicy: policy})
}

// cmdTPMEnroll is `edgeseal tpm enroll`: it creates (or loads) the
// device's TPM keys and writes the trust file that 'edgeseal verify' and
// the archive trust: EK, AK, the signing key,
// its certification by the AK and the golden PCR values. The data key is
// also wrapped to the operator's recovery key (enrollRecovery).
func cmdTPMEnroll(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
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
	policyAdmins := fs.String("policy-admins", "", "pin this policy admin set (ADMINS.json) in the trust file: verifiers then want every policy.change signed by it")
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
	var admins *signed.Admins
	if *policyAdmins != "" {
		a, err := signed.ReadAdmins(*policyAdmins)
		if err != nil {
			return err
		}
		admins = a
	}
	policy, err := enrollPolicy(*spec, *site+"/"+*device, *pcrKey, *pcrPolicy)
	if err != nil {
		return err
	}
	t, err := openTPM(ctx, *spec, *state, *insecureSim, policy, log)
	if err != nil {
		return agentd.StartHint(err)
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
	if admins != nil {
		trust.PolicyAdmins = admins.Digest()
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
			kid, *site, *device, agent.FormatPCRs(pcrs, values))
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
		k, err := agent.ReadPCRPolicyPublic(keyPath)
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
