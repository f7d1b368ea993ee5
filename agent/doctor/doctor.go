package doctor

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/tpm"
)

// Check levels, as printed.
const (
	LevelOK   = "ok"
	LevelWarn = "warn"
	LevelFail = "FAIL"
)

// Options configure a Doctor.
type Options struct {
	Out    io.Writer
	Config *config.Config // the agent's config; nil allows Report only
	// Trust is the device's enrolled DEVICE.json to compare the TPM's key
	// and PCRs with, "" for none.
	Trust string
	// Token is an auditor's token for a running agent's /v1/status.
	Token   string
	Timeout time.Duration // bound on each network check
	Now     func() time.Time
	// Simulator opens the in-process TPM simulator (tpm.Options.Simulator).
	Simulator func(dir string) (tpm.Transport, error)
}

// Doctor runs the checks and prints one line each to Options.Out.
type Doctor struct {
	ctx     context.Context
	out     io.Writer
	cfg     *config.Config
	trust   string
	token   string
	timeout time.Duration
	now     func() time.Time
	sim     func(dir string) (tpm.Transport, error)
	fails   int
	warns   int
	// lastRecord is the time of the journal's last record, when known.
	lastRecord time.Time
}

// New is a Doctor whose checks run under ctx.
func New(ctx context.Context, o Options) *Doctor {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	return &Doctor{ctx: ctx, out: o.Out, cfg: o.Config, trust: o.Trust, token: o.Token, timeout: o.Timeout, now: now, sim: o.Simulator}
}

// Report prints one check: "LEVEL  NAME: MSG", and "  fix: FIX" when
// there is something to do, and counts failures and warnings.
func (d *Doctor) Report(level, name, msg, fix string) {
	switch level {
	case LevelFail:
		d.fails++
	case LevelWarn:
		d.warns++
	}
	fmt.Fprintf(d.out, "%-4s  %-8s %s\n", level, name+":", msg)
	if fix != "" && level != LevelOK {
		fmt.Fprintf(d.out, "      %-8s fix: %s\n", "", fix)
	}
}

// Failed is how many checks failed so far.
func (d *Doctor) Failed() int { return d.fails }

// Warnings is how many checks warned so far.
func (d *Doctor) Warnings() int { return d.warns }

// CheckStopped checks a stopped agent: the TPM, its keys and PCRs, and,
// with journal, the journal opened with the unsealed data key.
func (d *Doctor) CheckStopped(journal bool) {
	if journal {
		d.checkTPM(d.checkJournal)
		return
	}
	d.checkTPM(nil)
}

// CheckRunning asks the running agent's /v1/status over its socket.
func (d *Doctor) CheckRunning() { d.viaAgent() }

// CheckHost checks what does not depend on the agent running: the broker
// with the configured certificates, the clock and the disk.
func (d *Doctor) CheckHost() {
	d.checkBroker()
	d.checkClock()
	d.checkDisk()
}
