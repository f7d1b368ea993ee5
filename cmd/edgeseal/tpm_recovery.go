package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/agentd"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/recovery"
)

// cmdRecoveryKeygen writes a new operator recovery key pair: FILE (the
// private key, 0600, to be kept offline) and FILE.pub (given to every
// enrollment). It never overwrites.
func cmdRecoveryKeygen(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("tpm recovery-keygen", flag.ContinueOnError)
	out := fs.String("out", "", "private key file to write (the public key goes to FILE.pub)")
	if pos, err := parseInterleaved(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErr("tpm recovery-keygen: unexpected argument %q", pos[0])
	}
	if *out == "" {
		return usageErr("tpm recovery-keygen: --out is required")
	}
	k, err := agent.WriteRecoveryKey(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (PRIVATE: keep it offline, it opens every data key wrapped to it) and %s.pub\nrecovery key id %s\n", *out, *out, k.ID)
	return nil
}

// enrollRecovery is the recovery part of `tpm enroll`: the data key is
// wrapped to --recovery-key. Without it a real TPM is refused unless
// --no-recovery; for the simulator a key pair is made beside the trust
// file.
type enrollRecovery struct {
	pubFile    string
	noRecovery bool
}

func (r *enrollRecovery) flags(fs *flag.FlagSet) {
	fs.StringVar(&r.pubFile, "recovery-key", "", "operator recovery public key (FILE.pub of 'tpm recovery-keygen'): the data key is also wrapped to it")
	fs.BoolVar(&r.noRecovery, "no-recovery", false, "enroll without a recovery wrap: a TPM clear or board swap then loses the journal")
}

// check runs before the TPM is opened.
func (r *enrollRecovery) check(spec string) error {
	if r.pubFile != "" && r.noRecovery {
		return usageErr("tpm enroll: --recovery-key and --no-recovery exclude each other")
	}
	sp, err := tpm.ParseSpec(spec)
	if err != nil {
		return err
	}
	if sp.Kind != tpm.KindSimulator && r.pubFile == "" && !r.noRecovery {
		return usageErr("tpm enroll: --recovery-key FILE.pub is required for a real TPM (make one with 'edgeseal tpm recovery-keygen --out FILE'; without it a TPM clear or board swap loses the journal), or give --no-recovery")
	}
	if r.pubFile != "" {
		if _, err := agent.ReadRecoveryPublic(r.pubFile); err != nil {
			return err
		}
	}
	return nil
}

// apply wraps the data key once the TPM is open.
func (r *enrollRecovery) apply(ctx context.Context, t *tpm.TPM, state, device, out string, stdout io.Writer) error {
	switch {
	case r.noRecovery:
		fmt.Fprintf(stdout, "WARNING: no recovery wrap (--no-recovery): a TPM clear or board swap loses the journal\n")
		return nil
	case r.pubFile == "" && !t.Simulated():
		return errors.New("tpm enroll: no recovery key") // check refused it already
	case r.pubFile == "":
		if _, err := os.Stat(filepath.Join(state, recovery.FileName)); err == nil {
			return nil // enrolled before, wrapped before
		}
		path := trimExt(out) + ".recovery.key"
		r.pubFile = path + ".pub"
		if _, err := os.Stat(r.pubFile); errors.Is(err, os.ErrNotExist) {
			if _, err := agent.WriteRecoveryKey(path); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "simulator: made recovery key %s (and %s.pub)\n", path, path)
		}
	}
	pub, err := agent.ReadRecoveryPublic(r.pubFile)
	if err != nil {
		return err
	}
	if err := agent.WrapDataKey(ctx, t, state, device, pub); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "data key wrapped to recovery key %s in %s\n", pub.ID, filepath.Join(state, recovery.FileName))
	return nil
}

func trimExt(p string) string { return p[:len(p)-len(filepath.Ext(p))] }

// cmdRewrap wraps the data key (it must still unseal) to a new recovery
// public key, replacing the wrap: what to do when the recovery private
// key is lost or retired.
func cmdRewrap(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("tpm rewrap", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the agent's YAML config file (required)")
	pubFile := fs.String("recovery-key", "", "the new recovery public key (FILE.pub, required)")
	if pos, err := parseInterleaved(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErr("tpm rewrap: unexpected argument %q", pos[0])
	}
	if *cfgPath == "" || *pubFile == "" {
		return usageErr("tpm rewrap: --config and --recovery-key are required")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	log = atLevel(log, cfg.Log.SlogLevel())
	pub, err := agent.ReadRecoveryPublic(*pubFile)
	if err != nil {
		return err
	}
	t, err := agent.OpenTPM(ctx, cfg, simulatorFor(cfg.TPMInsecureSimulator), log)
	if err != nil {
		return agentd.StartHint(err)
	}
	defer t.Close()
	if err := agent.WrapDataKey(ctx, t, cfg.TPMStateDir, cfg.DeviceID(), pub); err != nil {
		return fmt.Errorf("tpm rewrap: %w (the data key must still unseal: rewrap before the TPM changes)", err)
	}
	fmt.Fprintf(stdout, "data key of %s wrapped to recovery key %s in %s (the previous wrap kept as %s.old)\n",
		cfg.DeviceID(), pub.ID, filepath.Join(cfg.TPMStateDir, recovery.FileName), recovery.FileName)
	return nil
}
