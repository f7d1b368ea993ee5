package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/recovery"
)

// RecoverOptions are what Recover takes besides the agent's config.
type RecoverOptions struct {
	KeyFile   string          // the operator's recovery private key file (required)
	WrapFile  string          // the recovery wrap; "": recovery.FileName in the TPM state dir
	Out       string          // where the new trust file goes (a cleared or replaced TPM)
	Simulator SimulatorOpener // the in-process TPM simulator, when linked in and allowed
	Logger    *slog.Logger    // nil: discard
	Progress  io.Writer       // what Recover finds and does, for the operator (required)
}

// Recover brings a stopped device back after its TPM changed, with the
// data key from the operator's recovery wrap (`edgeseal tpm recover`):
//
//   - the same TPM whose PCRs moved (the blobs still load): the data key
//     is sealed again to the TPM as it is now (the old blob kept as
//     data-key.json.old);
//   - a cleared or replaced TPM: the old key files are retired, new keys
//     made (the recovered data key sealed under the new SRK), the trust
//     file written for the archive, and a new sealing epoch begun: the
//     outbox's undelivered bundles (signed by the lost key) are moved to
//     DATA/epoch-N-outbox/, the checkpoints forgotten, so the agent's next
//     seals cover the journal from size 0 under the new key.
//
// In both cases it journals a `key.recover` record directly (the agent is
// stopped: the journal's lock refuses a running one), which the agent
// seals before anything else it journals.
func Recover(ctx context.Context, cfg *config.Config, o RecoverOptions) error {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	stdout := o.Progress
	wrapFile := o.WrapFile
	if wrapFile == "" {
		wrapFile = filepath.Join(cfg.TPMStateDir, recovery.FileName)
	}
	key, w, priv, err := openWrap(wrapFile, o.KeyFile, cfg.DeviceID(), stdout)
	if err != nil {
		return err
	}
	j, err := openJournalRecovered(ctx, cfg, key, log)
	if err != nil {
		return err
	}
	defer j.Close()
	fmt.Fprintf(stdout, "the recovered data key opens the journal of %s (%d records)\n", cfg.DeviceID(), j.Size())

	topts := tpm.Options{StateDir: cfg.TPMStateDir, PCRs: cfg.PCRs, Logger: log.With("component", "tpm"), Simulator: o.Simulator}
	t, err := tpm.Open(ctx, cfg.TPM, topts)
	var ce *tpm.ClearedError
	var ne *tpm.NotEnrolledError
	switch {
	case err == nil:
		defer t.Close()
		if t.Identity().PCRPolicyKey != nil {
			ApplyPCRAuthorization(ctx, cfg, t, log)
		}
		return recoverReseal(ctx, t, j, key, priv.ID, cfg, o.Out, stdout)
	case errors.As(err, &ce):
		fmt.Fprintf(stdout, "%v\n", err)
	case errors.As(err, &ne) && len(ne.Missing) == 2:
		fmt.Fprintf(stdout, "%s holds no TPM keys: making new ones\n", cfg.TPMStateDir)
	default:
		return fmt.Errorf("tpm recover: %w", err)
	}
	return recoverNewTPM(ctx, j, key, w, priv.ID, cfg, topts, ce != nil, o.Out, stdout)
}

// openJournalRecovered opens the journal with the recovered key (which
// proves the key) and fails with a plain message when the agent still
// runs.
func openJournalRecovered(ctx context.Context, cfg *config.Config, key []byte, log *slog.Logger) (*store.Journal, error) {
	dir := JournalDir(cfg)
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("tpm recover: no journal: %w (is data_dir right?)", err)
	}
	j, err := OpenJournal(ctx, cfg, key, JournalOptions{Logger: log})
	switch {
	case errors.Is(err, store.ErrLocked):
		return nil, fmt.Errorf("tpm recover: %w: stop the agent first (systemctl stop edgeseal-agent)", err)
	case errors.Is(err, store.ErrEncryptionKey):
		return nil, fmt.Errorf("tpm recover: the recovered data key does not open the journal in %s: %w (the wrap belongs to another enrollment of this device?)", dir, err)
	case err != nil:
		return nil, fmt.Errorf("tpm recover: %w", err)
	}
	return j, nil
}

// newRecoveryID is a random id for one recovery (its key.recover record).
func newRecoveryID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// openWrap reads the private key and the wrap, checks the wrap is this
// device's, and opens it.
func openWrap(wrapFile, keyFile, device string, stdout io.Writer) ([]byte, *recovery.Wrap, *recovery.PrivateKey, error) {
	kb, err := ReadRecoveryFile(keyFile)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tpm recover: %w", err)
	}
	if fi, err := os.Stat(keyFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(stdout, "WARNING: %s is readable by others (mode %v): a recovery private key belongs offline, mode 0600\n", keyFile, fi.Mode().Perm())
	}
	priv, err := recovery.ParsePrivateKey(kb)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tpm recover: %s: %w", keyFile, err)
	}
	wb, err := ReadRecoveryFile(wrapFile)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tpm recover: no recovery wrap: %w", err)
	}
	w, err := recovery.Parse(wb)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tpm recover: %s: %w", wrapFile, err)
	}
	if w.Device != device {
		return nil, nil, nil, fmt.Errorf("tpm recover: %s is the wrap of device %s, not of %s", wrapFile, w.Device, device)
	}
	key, err := w.Open(priv)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tpm recover: %s: %w", wrapFile, err)
	}
	return key, w, priv, nil
}

// recoverReseal is the case of a TPM that still loads the key blobs.
func recoverReseal(ctx context.Context, t *tpm.TPM, j *store.Journal, key []byte, recoveryKeyID string, cfg *config.Config, out string, stdout io.Writer) error {
	cur, err := t.DataKey(ctx)
	var pm *tpm.PCRMismatchError
	switch {
	case err == nil && bytes.Equal(cur, key):
		return finishNewTPM(ctx, t, j, recoveryKeyID, cfg, out, stdout)
	case err == nil:
		return fmt.Errorf("tpm recover: the TPM's data key is not the one in the recovery wrap: refusing to replace it")
	case !errors.As(err, &pm):
		return fmt.Errorf("tpm recover: %w", err)
	}
	fmt.Fprintf(stdout, "the TPM is the same, PCR %v moved since the data key was sealed: sealing it again to the PCRs as they are now\n", pm.Changed())
	if err := t.ResealDataKey(ctx, key); err != nil {
		return fmt.Errorf("tpm recover: %w", err)
	}
	if got, err := t.DataKey(ctx); err != nil || !bytes.Equal(got, key) {
		return fmt.Errorf("tpm recover: the resealed data key does not unseal: %v", err)
	}
	epoch, err := j.Epoch()
	if err != nil {
		return err
	}
	id := t.Identity()
	body := KeyRecoverBody{ID: newRecoveryID(), Device: cfg.DeviceID(), Case: RecoverReseal,
		KeyID: id.KeyID, PreviousKeyID: id.KeyID, RecoveryKeyID: recoveryKeyID, Epoch: epoch, Reason: pm.Error()}
	seq, _, err := JournalKeyRecover(ctx, j, body, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "data key resealed (the old blob kept as data-key.json.old); key.recover journaled at seq %d\n", seq)
	digest := make([]byte, 32)
	if _, err := t.Sign(ctx, digest); errors.As(err, &pm) {
		fmt.Fprintf(stdout, "NOTE: the signing key %s is bound to the old PCR values too and does not sign: seals fail until it is re-bound to the new values\n", id.KeyID)
	}
	fmt.Fprintf(stdout, "next: start the agent; it seals the key.recover record with the next bundle\n")
	return nil
}

// recoverNewTPM is the case of a cleared or replaced TPM (or a state dir
// that lost its keys): new keys, new trust file, new epoch.
func recoverNewTPM(ctx context.Context, j *store.Journal, key []byte, w *recovery.Wrap, recoveryKeyID string, cfg *config.Config,
	topts tpm.Options, retire bool, out string, stdout io.Writer) error {
	prev, err := LastKeyID(j)
	if err != nil {
		return err
	}
	// The journal first: until the new keys exist the agent refuses to
	// start, so it never seals a half-switched journal; run again after a
	// crash, this finishes what is left.
	epoch, files, err := StartEpoch(ctx, j, cfg.DataDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "new sealing epoch %d: the next seals cover the journal from record 0 under the new key\n", epoch)
	if len(files) > 0 {
		fmt.Fprintf(stdout, "%d undelivered bundles of the old key moved out of the outbox to %s\n", len(files), filepath.Dir(files[0]))
	}
	// New keys keep the old keys' binding: to the operator's PCR-policy
	// key when they had one (read before the files are retired, or from
	// the newest retired set when an earlier run stopped after that).
	if p, ok := oldPCRPolicy(cfg.TPMStateDir); ok {
		topts.PCRPolicy = &p
		kid, _ := trustfile.PCRPolicyKeyID(p.Key)
		fmt.Fprintf(stdout, "the new keys are bound to the same PCR policy key %s: authorize the new TPM's PCR values with it (edgeseal tpm authorize-pcrs)\n", kid)
	}
	if retire {
		dir, err := tpm.RetireState(cfg.TPMStateDir)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "old key files moved to %s\n", dir)
	}
	topts.Create, topts.DataKey = true, key
	t, err := tpm.Open(ctx, cfg.TPM, topts)
	if err != nil {
		return fmt.Errorf("tpm recover: new keys: %w", err)
	}
	defer t.Close()
	if err := checkNewDataKey(ctx, t, key, cfg, topts.Logger, stdout); err != nil {
		return err
	}
	// The wrap still holds: same data key, same device.
	wp := filepath.Join(cfg.TPMStateDir, recovery.FileName)
	if _, err := os.Stat(wp); err != nil {
		wb, err := w.Marshal()
		if err != nil {
			return err
		}
		if err := fsutil.WriteFileAtomic(wp, wb, 0o600); err != nil {
			return err
		}
	}
	id := t.Identity()
	if err := writeRecoveredTrust(cfg, id, out); err != nil {
		return err
	}
	reason := "the TPM no longer held the keys (cleared or replaced)"
	if !retire {
		reason = "the TPM state dir held no keys"
	}
	body := KeyRecoverBody{ID: newRecoveryID(), Device: cfg.DeviceID(), Case: RecoverNewTPM,
		KeyID: id.KeyID, PreviousKeyID: prev, RecoveryKeyID: recoveryKeyID, Epoch: epoch, RetiredBundles: len(files), Reason: reason}
	seq, _, err := JournalKeyRecover(ctx, j, body, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "new signing key %s (certified by the new AK), data key sealed again; key.recover journaled at seq %d\n", id.KeyID, seq)
	fmt.Fprintf(stdout, "wrote %s: the new trust file of %s\n", out, cfg.DeviceID())
	fmt.Fprintf(stdout, "next:\n  1. give %s to the archive operator, who runs\n       edgeseal archive devices rekey %s --key %s\n"+
		"  2. start the agent: it seals the whole journal again under the new key (verify with the new trust file)\n", out, cfg.DeviceID(), id.KeyID)
	if len(files) > 0 {
		fmt.Fprintf(stdout, "  3. keep %s: those bundles are signed by the lost key (verify them with the old trust file)\n", filepath.Dir(files[0]))
	}
	return nil
}

// writeRecoveredTrust writes the device's trust file for the archive.
func writeRecoveredTrust(cfg *config.Config, id tpm.Identity, out string) error {
	trust, err := trustfile.NewTrust(cfg.Site, cfg.Device, BundleIdentity(id))
	if err != nil {
		return err
	}
	raw, err := trust.Marshal()
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(out, raw, 0o644)
}

// finishNewTPM handles a TPM that unseals the data key: nothing to
// recover, unless an earlier `tpm recover` of a cleared TPM made the new
// keys and stopped before it journaled key.recover (the journal's last
// key is not the TPM's, and a new epoch began or old key files were
// retired): then it writes the trust file and journals the record.
func finishNewTPM(ctx context.Context, t *tpm.TPM, j *store.Journal, recoveryKeyID string, cfg *config.Config, out string, stdout io.Writer) error {
	id := t.Identity()
	prev, err := LastKeyID(j)
	if err != nil {
		return err
	}
	epoch, err := j.Epoch()
	if err != nil {
		return err
	}
	retired, _ := filepath.Glob(filepath.Join(cfg.TPMStateDir, "retired-*"))
	if prev == "" || prev == id.KeyID || (epoch < 2 && len(retired) == 0) {
		fmt.Fprintf(stdout, "nothing to recover: the TPM still unseals the data key (%s)\n", cfg.TPMStateDir)
		return nil
	}
	fmt.Fprintf(stdout, "an earlier recovery made the new key %s but did not finish: finishing it\n", id.KeyID)
	if err := writeRecoveredTrust(cfg, id, out); err != nil {
		return err
	}
	body := KeyRecoverBody{ID: newRecoveryID(), Device: cfg.DeviceID(), Case: RecoverNewTPM,
		KeyID: id.KeyID, PreviousKeyID: prev, RecoveryKeyID: recoveryKeyID, Epoch: epoch, Reason: "the TPM no longer held the keys (cleared or replaced)"}
	seq, _, err := JournalKeyRecover(ctx, j, body, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "key.recover journaled at seq %d; wrote %s\nnext: the archive operator runs\n  edgeseal archive devices rekey %s --key %s\nthen start the agent\n", seq, out, cfg.DeviceID(), id.KeyID)
	return nil
}

// oldPCRPolicy is the PCR policy the device's keys were bound to: that of
// the signing key in stateDir, else of the newest retired one.
func oldPCRPolicy(stateDir string) (tpm.PCRPolicy, bool) {
	if p, _, ok, err := tpm.ReadPCRPolicy(stateDir); err == nil {
		return p, ok
	}
	retired, _ := filepath.Glob(filepath.Join(stateDir, "retired-*"))
	slices.Sort(retired)
	for i := len(retired) - 1; i >= 0; i-- {
		if p, _, ok, err := tpm.ReadPCRPolicy(retired[i]); err == nil {
			return p, ok
		}
	}
	return tpm.PCRPolicy{}, false
}

// checkNewDataKey checks that the new data key blob seals the recovered
// key. Keys bound to a PCR-policy key unseal only under an authorization
// of the PCR values: the one stored in the state dir is installed first (a
// TPM cleared on the same board shows the same values). When it does not
// hold for the new TPM, the blob this run sealed from the recovered key is
// taken as made, and the values to authorize are printed.
func checkNewDataKey(ctx context.Context, t *tpm.TPM, key []byte, cfg *config.Config, log *slog.Logger, stdout io.Writer) error {
	id := t.Identity()
	if id.PCRPolicyKey != nil {
		ApplyPCRAuthorization(ctx, cfg, t, log)
	}
	got, err := t.DataKey(ctx)
	var need *tpm.AuthorizationNeededError
	var pm *tpm.PCRMismatchError
	if id.PCRPolicyKey != nil && (errors.As(err, &need) || errors.As(err, &pm)) {
		if !bytes.Equal(t.CreatedDataKey(), key) {
			return fmt.Errorf("tpm recover: the data key blob was not made from the recovered key by this run and does not unseal: %w", err)
		}
		cur, err := t.ReadPCRs(ctx)
		if err != nil {
			return fmt.Errorf("tpm recover: %w", err)
		}
		fmt.Fprintf(stdout, "the new TPM's PCR values are not authorized yet: the new keys work once the operator authorizes them:\n"+
			"  edgeseal tpm authorize-pcrs --key PCR-KEY --device %s --pcrs %s --out pcr-authorization.json\n"+
			"  edgeseal agent authorize-pcrs --config AGENT.yaml pcr-authorization.json\n", cfg.DeviceID(), FormatPCRs(id.PCRs, cur))
		return nil
	}
	if err != nil || !bytes.Equal(got, key) {
		return fmt.Errorf("tpm recover: the new data key blob does not unseal the recovered key: %v", err)
	}
	return nil
}
