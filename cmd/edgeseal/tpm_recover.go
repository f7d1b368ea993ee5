package main

import (
	"context"
	"flag"
	"io"
	"log/slog"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/tpm/recovery"
)

// cmdRecover is `edgeseal tpm recover` (agent.Recover): it brings a
// stopped device back after its TPM changed, with the data key from the
// operator's recovery wrap:
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
func cmdRecover(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("tpm recover", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the agent's YAML config file (required)")
	keyFile := fs.String("recovery-key", "", "the operator's recovery PRIVATE key file (required)")
	wrapFile := fs.String("wrap", "", "the recovery wrap (default TPM_STATE_DIR/"+recovery.FileName+")")
	out := fs.String("out", "DEVICE.json", "where to write the new trust file (when the TPM was cleared or replaced)")
	if pos, err := parseInterleaved(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErr("tpm recover: unexpected argument %q", pos[0])
	}
	if *cfgPath == "" || *keyFile == "" {
		return usageErr("tpm recover: --config and --recovery-key are required")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	log = atLevel(log, cfg.Log.SlogLevel())
	return agent.Recover(ctx, cfg, agent.RecoverOptions{KeyFile: *keyFile, WrapFile: *wrapFile, Out: *out,
		Simulator: simulatorFor(cfg.TPMInsecureSimulator), Logger: log, Progress: stdout})
}
