package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/agent/doctor"
)

// defaultAgentConfig is where doctor looks without --config.
const defaultAgentConfig = "/etc/edgeseal/agent.yaml"

// cmdDoctor checks a site's agent in one command: config, TPM and keys,
// PCRs against the enrolled values, the journal and its tail, the broker
// with the configured certificates, the clock and the disk. With the
// agent stopped it opens the TPM and the journal itself; while the agent
// runs (it holds the journal's lock) it asks the agent's /v1/status over
// the socket instead. Exit 0 when nothing failed (warnings allowed), 1
// when a check failed, 2 on bad usage.
func cmdDoctor(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	fset := flag.NewFlagSet("doctor", flag.ContinueOnError)
	cfgPath := fset.String("config", defaultAgentConfig, "the agent's YAML config file")
	trust := fset.String("trust", "", "the device's enrolled DEVICE.json, to compare the TPM key and PCRs with")
	token := addTokenFlags(fset, "doctor", "an auditor's token, to ask a running agent")
	timeout := fset.Duration("timeout", 10*time.Second, "bound on each network check")
	if pos, err := parseInterleaved(fset, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErr("doctor: unexpected argument %q", pos[0])
	}
	tok, err := token.get(getenv)
	if err != nil {
		return err
	}
	opts := doctor.Options{Out: stdout, Trust: *trust, Token: tok, Timeout: *timeout}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		d := doctor.New(ctx, opts)
		d.Report(doctor.LevelFail, "config", err.Error(), "correct "+*cfgPath+" (agent/config/testdata/agent.yaml documents every key)")
		return doctorResult(stdout, d)
	}
	opts.Config, opts.Simulator = cfg, simulatorFor(cfg.TPMInsecureSimulator)
	d := doctor.New(ctx, opts)
	d.Report(doctor.LevelOK, "config", fmt.Sprintf("%s: device %s, data in %s", *cfgPath, cfg.DeviceID(), cfg.DataDir), "")

	journal := filepath.Join(cfg.DataDir, "journal")
	err = agent.CheckJournalFree(journal)
	var running *agent.RunningError
	switch {
	case errors.As(err, &running):
		d.Report(doctor.LevelOK, "agent", "running (it holds the journal): asking it over "+cfg.API.Socket, "")
		d.CheckRunning()
	case errors.Is(err, fs.ErrPermission):
		d.Report(doctor.LevelFail, "journal", err.Error(), "run doctor as root or as the agent's user (sudo -u edgeseal edgeseal doctor ...)")
		return doctorResult(stdout, d)
	case err != nil:
		d.Report(doctor.LevelFail, "journal", fmt.Sprintf("no journal at %s: %v", journal, err),
			"start the agent once (systemctl start edgeseal-agent) or correct data_dir")
		d.CheckStopped(false)
	default:
		d.Report(doctor.LevelOK, "agent", "not running: opening the TPM and the journal directly", "")
		d.CheckStopped(true)
	}
	d.CheckHost()
	return doctorResult(stdout, d)
}

// doctorResult is the command's exit: 1 when a check failed.
func doctorResult(stdout io.Writer, d *doctor.Doctor) error {
	if d.Failed() > 0 {
		return &exitError{code: 1, err: fmt.Errorf("doctor: %d check(s) failed, %d warning(s)", d.Failed(), d.Warnings())}
	}
	fmt.Fprintf(stdout, "all checks passed (%d warning(s))\n", d.Warnings())
	return nil
}
