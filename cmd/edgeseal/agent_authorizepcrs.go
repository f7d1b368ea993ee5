package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// cmdAgentAuthorizePCRs runs `agent authorize-pcrs --config FILE STATEMENT`:
// checks the statement against the device's PCR-policy key (from the key
// file in the TPM state directory; the TPM itself is not opened, so the
// agent may be running) and stores it there. The running agent applies
// it at its next seal attempt, once the TPM shows the authorized values.
func cmdAgentAuthorizePCRs(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("agent authorize-pcrs", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the agent's YAML config file (required)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if *cfgPath == "" || len(pos) != 1 {
		return usageErr("agent authorize-pcrs: want --config FILE and one statement file")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	raw, _, err := fsutil.ReadConfig(pos[0], trustfile.MaxPCRAuthSize)
	if err != nil {
		return err
	}
	a, err := agent.StorePCRAuthorization(cfg.TPMStateDir, cfg.DeviceID(), raw)
	if err != nil {
		return fmt.Errorf("agent authorize-pcrs: %w", err)
	}
	pcrs, values := a.PCRs()
	fmt.Fprintf(stdout, "stored in %s: pcrs %s signed %s by %s; the running agent applies it at its next seal attempt (or at its next start)\n",
		cfg.TPMStateDir, agent.FormatPCRs(pcrs, values), a.Time, a.PolicyKeyID)
	return nil
}
