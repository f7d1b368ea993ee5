// Command edgeseal is the chain of custody for no-code app exports: the agent
// core, the offline verifier, TPM enrollment and a self-contained demo.
//
//	edgeseal agent --config FILE
//	edgeseal agent enroll --config FILE [--out REQUEST.json] [--note TEXT] [--no-mqtt] [--timeout D]
//	edgeseal agent rotate-key --config FILE --reason TEXT
//	edgeseal agent enroll --config FILE --answer CHALLENGE.json [--out RESPONSE.json]
//	edgeseal export [flags] FILE|-
//	edgeseal verify BUNDLE|DIR... --trust DEVICE.json [--chain | --each] [--previous PREV] [--quiet] [--json]
//	edgeseal tpm enroll --tpm SPEC --state DIR --site S --device D [--out DEVICE.json] [--recovery-key FILE.pub | --no-recovery]
//	    [--pcr-policy-key FILE.pub | --pcr-policy=pcr]
//	edgeseal tpm recovery-keygen --out FILE
//	edgeseal tpm recover --config FILE --recovery-key FILE [--out DEVICE.json]
//	edgeseal tpm rewrap --config FILE --recovery-key NEW.pub
//	edgeseal tpm pcr-key new --out FILE
//	edgeseal tpm authorize-pcrs --key FILE --device S/D (--pcrs 0=HEX,... | --from-quote FILE) [--out FILE]
//	edgeseal agent authorize-pcrs --config FILE STATEMENT
//	edgeseal agent tls-cert --out-dir DIR [--host H,...] [--days N]
//	edgeseal demo [--dir DIR]
//	edgeseal doctor [--config FILE] [--trust DEVICE.json] [--token-file FILE]
//	edgeseal archive --config FILE
//	edgeseal archive devices list|approve|revoke|revoke-key|rekey ...
//	edgeseal archive enroll-file REQUEST.json [--challenge FILE] | --response RESPONSE.json
//	edgeseal archive import DIR
//	edgeseal archive key show|rotate|import-pkcs11 ...
//	edgeseal archive content-key new|rotate|show|restore ...
//	edgeseal verify receipt --archive-key PUB RECEIPT...
//	edgeseal bundles export --config FILE --to DIR
//	edgeseal bundles import-receipts --config FILE [--archive-key FILE] DIR
//	edgeseal service install|uninstall|start|stop|status --kind agent|archive
//	edgeseal version | --version
//	edgeseal help [COMMAND...] (or COMMAND --help)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// version is stamped by the build with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal cancels ctx (a daemon shuts down in order); after it
	// the signals kill again, so a second one ends a command blocked where
	// ctx does not reach (an open of a FIFO, a stuck read).
	go func() { <-ctx.Done(); stop() }()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	err := run(ctx, os.Args[1:], os.Stdout, log)
	if err == nil {
		return
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	fmt.Fprintln(os.Stderr, "edgeseal:", err)
	if code == 2 {
		fmt.Fprint(os.Stderr, usageFor(os.Args[1:]))
	}
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) (err error) {
	if len(args) == 0 {
		return usageErr("no command")
	}
	if helpBeforeRun(args, stdout) {
		return nil
	}
	defer func() { err = helpAfterRun(err, args, stdout) }()
	switch args[0] {
	case "agent":
		return cmdAgent(ctx, args[1:], stdout, log)
	case "export":
		return cmdExport(ctx, args[1:], os.Stdin, stdout, os.Getenv)
	case "verify":
		return cmdVerify(ctx, args[1:], stdout)
	case "proof":
		return cmdProof(ctx, args[1:], stdout)
	case "evidence":
		return cmdEvidence(ctx, args[1:], stdout)
	case "tpm":
		return cmdTPM(ctx, args[1:], stdout, log)
	case "archive":
		return cmdArchive(ctx, args[1:], stdout, log)
	case "bundles":
		return cmdBundles(ctx, args[1:], stdout, log)
	case "service":
		return cmdService(ctx, args[1:], stdout, log)
	case "demo":
		return cmdDemo(ctx, args[1:], stdout, log)
	case "policy":
		return cmdPolicy(ctx, args[1:], stdout)
	case "doctor":
		return cmdDoctor(ctx, args[1:], stdout, os.Getenv)
	case "version", "--version":
		fmt.Fprintln(stdout, "edgeseal", version)
		return nil
	case "help", "-h", "--help":
		if len(args) == 2 && args[0] == "help" && args[1] == "--man" {
			return cmdMan(ctx, stdout) // edgeseal(1), for the packages
		}
		if len(args) > 1 && !isHelpArg(args[1]) {
			return run(ctx, append(args[1:len(args):len(args)], "--help"), stdout, log)
		}
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usageErr("unknown command %q", args[0])
}
