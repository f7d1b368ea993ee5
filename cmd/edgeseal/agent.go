package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/pprof"

	"github.com/edgeseal/edgeseal/agent/agentd"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/internal/daemonlog"
	"github.com/edgeseal/edgeseal/internal/sdnotify"
)

// cmdAgent dispatches `edgeseal agent ...`: the daemon, or one of the
// commands on the agent's TPM state and stopped journal.
func cmdAgent(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	if len(args) > 0 {
		switch args[0] {
		case "enroll":
			return cmdAgentEnroll(ctx, args[1:], stdout, log)
		case "rotate-key":
			return cmdAgentRotateKey(ctx, args[1:], stdout, log)
		case "authorize-pcrs":
			return cmdAgentAuthorizePCRs(args[1:], stdout)
		case "tls-cert":
			return cmdAgentTLSCert(args[1:], stdout)
		}
	}
	return cmdAgentDaemon(ctx, args)
}

// cmdAgentDaemon is `edgeseal agent --config FILE`: the daemon (agentd.Run)
// until ctx is done (SIGTERM or SIGINT), with the process's memory limit,
// logger, profiles and systemd notifications.
func cmdAgentDaemon(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the agent's YAML config file (required)")
	if pos, err := parseInterleaved(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErr("agent: unexpected argument %q", pos[0])
	}
	if *cfgPath == "" {
		return usageErr("agent: --config is required")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(agentd.MemoryLimit)
	}
	log := daemonlog.New(cfg.Log.Format, cfg.Log.SlogLevel(), os.Getenv).With("device", cfg.DeviceID())
	// EDGESEAL_CPUPROFILE=FILE writes a CPU profile of the agent's whole
	// run to FILE (for profiling; written on a clean stop).
	if path := os.Getenv("EDGESEAL_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("agent: cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("agent: cpu profile: %w", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	// EDGESEAL_MEMPROFILE=FILE writes a heap profile (allocations since
	// the start included) to FILE on a clean stop.
	if path := os.Getenv("EDGESEAL_MEMPROFILE"); path != "" {
		defer func() {
			if f, err := os.Create(path); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	return agentd.Run(sdnotify.NewContext(ctx, sdnotify.New(os.Getenv, log.With("component", "sdnotify"))), cfg,
		agentd.Options{Logger: log, Simulator: simulatorFor(cfg.TPMInsecureSimulator)})
}
