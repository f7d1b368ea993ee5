package main

import (
	"bytes"
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
	"github.com/edgeseal/edgeseal/internal/fsutil"
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
	k, err := writeRecoveryKey(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (PRIVATE: keep it offline, it opens every data key wrapped to it) and %s.pub\nrecovery key id %s\n", *out, *out, k.ID)
	return nil
}

// writeRecoveryKey makes a recovery key pair and writes it to path and
// path.pub, refusing to replace either.
func writeRecoveryKey(path string) (*recovery.PrivateKey, error) {
	for _, p := range []string{path, path + ".pub"} {
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("tpm recovery-keygen: %s exists: not overwriting a recovery key", p)
		}
	}
	k, err := recovery.GenerateKey()
	if err != nil {
		return nil, err
	}
	priv, err := k.MarshalPEM()
	if err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(path, priv, 0o600); err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(path+".pub", k.Public().MarshalPEM(), 0o644); err != nil {
		return nil, err
	}
	return k, nil
}

// readRecoveryPublic reads a recovery public key file.
func readRecoveryPublic(path string) (*recovery.PublicKey, error) {
	b, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	k, err := recovery.ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 64<<10))
}

// writeWrap wraps the TPM's data key for device to pub and stores the wrap
// in the state dir (the previous one, if any, kept as .old). A data key
// the TPM has just created is wrapped as created: keys bound to a
// PCR-policy key unseal only once an authorization is installed.
func writeWrap(ctx context.Context, t *tpm.TPM, state, device string, pub *recovery.PublicKey) error {
	key := t.CreatedDataKey()
	if key == nil {
		var err error
		if key, err = t.DataKey(ctx); err != nil {
			return fmt.Errorf("recovery wrap: %w", err)
		}
	}
	return writeWrapKey(state, device, pub, key)
}

func writeWrapKey(state, device string, pub *recovery.PublicKey, key []byte) error {
	w, err := recovery.Seal(pub, device, key)
	if err != nil {
		return err
	}
	b, err := w.Marshal()
	if err != nil {
		return err
	}
	p := filepath.Join(state, recovery.FileName)
	if old, err := os.ReadFile(p); err == nil && !bytes.Equal(old, b) {
		if err := fsutil.WriteFileAtomic(p+".old", old, 0o600); err != nil {
			return err
		}
	}
	return fsutil.WriteFileAtomic(p, b, 0o600)
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
		if _, err := readRecoveryPublic(r.pubFile); err != nil {
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
			if _, err := writeRecoveryKey(path); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "simulator: made recovery key %s (and %s.pub)\n", path, path)
		}
	}
	pub, err := readRecoveryPublic(r.pubFile)
	if err != nil {
		return err
	}
	if err := writeWrap(ctx, t, state, device, pub); err != nil {
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
	pub, err := readRecoveryPublic(*pubFile)
	if err != nil {
		return err
	}
	t, err := agent.OpenTPM(ctx, cfg, simulatorFor(cfg.TPMInsecureSimulator), log)
	if err != nil {
		return agentd.StartHint(err)
	}
	defer t.Close()
	if err := writeWrap(ctx, t, cfg.TPMStateDir, cfg.DeviceID(), pub); err != nil {
		return fmt.Errorf("tpm rewrap: %w (the data key must still unseal: rewrap before the TPM changes)", err)
	}
	fmt.Fprintf(stdout, "data key of %s wrapped to recovery key %s in %s (the previous wrap kept as %s.old)\n",
		cfg.DeviceID(), pub.ID, filepath.Join(cfg.TPMStateDir, recovery.FileName), recovery.FileName)
	return nil
}

// demoRecoveryKey is the demo's operator recovery key, in the demo dir.
const demoRecoveryKey = "recovery.key"

// demoRecoveryWrap makes the demo's recovery key pair in dir (once) and
// wraps the data key to it, as an operator's enrollment would.
func demoRecoveryWrap(ctx context.Context, t *tpm.TPM, state, device, dir string) error {
	path := filepath.Join(dir, demoRecoveryKey)
	if _, err := os.Stat(path + ".pub"); errors.Is(err, os.ErrNotExist) {
		if _, err := writeRecoveryKey(path); err != nil {
			return err
		}
	}
	pub, err := readRecoveryPublic(path + ".pub")
	if err != nil {
		return err
	}
	return writeWrap(ctx, t, state, device, pub)
}
