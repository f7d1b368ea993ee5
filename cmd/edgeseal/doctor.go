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

	"github.com/edgeseal/edgeseal/agent/config"
)

// defaultAgentConfig is where doctor looks without --config.
const defaultAgentConfig = "/etc/edgeseal/agent.yaml"

// Check levels, as printed.
const (
	levelOK   = "ok"
	levelWarn = "warn"
	levelFail = "FAIL"
)

// doctor runs the checks of `edgeseal doctor` and prints one line each.
type doctor struct {
	ctx     context.Context
	out     io.Writer
	cfg     *config.Config
	trust   string // --trust DEVICE.json, "" for none
	token   string // auditor token for a running agent's /v1/status
	timeout time.Duration
	now     func() time.Time
	fails   int
	warns   int
	// lastRecord is the time of the journal's last record, when known.
	lastRecord time.Time
}

// report prints one check: "LEVEL  NAME: MSG", and "  fix: FIX" when
// there is something to do.
func (d *doctor) report(level, name, msg, fix string) {
	switch level {
	case levelFail:
		d.fails++
	case levelWarn:
		d.warns++
	}
	fmt.Fprintf(d.out, "%-4s  %-8s %s\n", level, name+":", msg)
	if fix != "" && level != levelOK {
		fmt.Fprintf(d.out, "      %-8s fix: %s\n", "", fix)
	}
}

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
	d := &doctor{ctx: ctx, out: stdout, trust: *trust, token: tok, timeout: *timeout, now: time.Now}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		d.report(levelFail, "config", err.Error(), "correct "+*cfgPath+" (agent/config/testdata/agent.yaml documents every key)")
		return d.result()
	}
	d.cfg = cfg
	d.report(levelOK, "config", fmt.Sprintf("%s: device %s, data in %s", *cfgPath, cfg.DeviceID(), cfg.DataDir), "")

	journal := filepath.Join(cfg.DataDir, "journal")
	err = checkJournalFree(journal)
	var running *agentRunningError
	switch {
	case errors.As(err, &running):
		d.report(levelOK, "agent", "running (it holds the journal): asking it over "+cfg.API.Socket, "")
		d.viaAgent()
	case errors.Is(err, fs.ErrPermission):
		d.report(levelFail, "journal", err.Error(), "run doctor as root or as the agent's user (sudo -u edgeseal edgeseal doctor ...)")
		return d.result()
	case err != nil:
		d.report(levelFail, "journal", fmt.Sprintf("no journal at %s: %v", journal, err),
			"start the agent once (systemctl start edgeseal-agent) or correct data_dir")
		d.checkTPM(nil)
	default:
		d.report(levelOK, "agent", "not running: opening the TPM and the journal directly", "")
		d.checkTPM(d.checkJournal)
	}
	d.checkBroker()
	d.checkClock()
	d.checkDisk()
	return d.result()
}

// result is the command's exit: 1 when a check failed.
func (d *doctor) result() error {
	if d.fails > 0 {
		return &exitError{code: 1, err: fmt.Errorf("doctor: %d check(s) failed, %d warning(s)", d.fails, d.warns)}
	}
	fmt.Fprintf(d.out, "all checks passed (%d warning(s))\n", d.warns)
	return nil
}
