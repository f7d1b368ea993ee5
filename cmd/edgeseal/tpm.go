package main

import (
	"context"
	"io"
	"log/slog"
)

// cmdTPM dispatches `edgeseal tpm SUBCOMMAND`.
func cmdTPM(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	if len(args) == 0 {
		return usageErr("tpm: want enroll, recovery-keygen, recover, rewrap, pcr-key or authorize-pcrs")
	}
	switch args[0] {
	case "enroll":
		return cmdTPMEnroll(ctx, args[1:], stdout, log)
	case "recovery-keygen":
		return cmdRecoveryKeygen(args[1:], stdout)
	case "recover":
		return cmdRecover(ctx, args[1:], stdout, log)
	case "rewrap":
		return cmdRewrap(ctx, args[1:], stdout, log)
	case "pcr-key":
		return cmdPCRKey(args[1:], stdout)
	case "authorize-pcrs":
		return cmdAuthorizePCRs(args[1:], stdout)
	}
	return usageErr("tpm: unknown subcommand %q: want enroll, recovery-keygen, recover, rewrap, pcr-key or authorize-pcrs", args[0])
}
