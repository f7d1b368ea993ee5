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
//	edgeseal demo [--dir DIR]
//	edgeseal doctor [--config FILE] [--trust DEVICE.json] [--token-file FILE]
//	edgeseal archive --config FILE
//	edgeseal archive devices list|approve|revoke|revoke-key|rekey ...
//	edgeseal archive enroll-file REQUEST.json [--challenge FILE] | --response RESPONSE.json
//	edgeseal archive import DIR
//	edgeseal archive key show|rotate|import-pkcs11 ...
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

// exitError carries a process exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

const usage = `usage:
  edgeseal agent --config FILE
  edgeseal agent enroll --config FILE [--out REQUEST.json] [--note TEXT] [--no-mqtt] [--timeout 30s]
  edgeseal agent rotate-key --config FILE --reason TEXT
  edgeseal agent enroll --config FILE --answer CHALLENGE.json [--out RESPONSE.json]
  edgeseal export [--socket PATH | --url https://127.0.0.1:PORT --cacert CA.pem] [--token-file FILE]
                  --workflow W --app A [--purpose P] [--schema S] [--classification C]
                  [--retention R] [--destination D] [--id ID] [--content-type TYPE] FILE|-
  edgeseal verify BUNDLE|DIR... --trust DEVICE.json [--chain | --each] [--previous PREV]
                  [--state-out FILE] [--quiet] [--json]
                  (a DIR is its *.bundle.tar by checkpoint size; --chain is the default;
                  exit 0 verified, 1 not verified, 2 usage or unreadable input)
  edgeseal tpm enroll --tpm SPEC --state DIR --site SITE --device NAME [--out DEVICE.json]
                     [--recovery-key RECOVERY.pub | --no-recovery]
                     [--pcr-policy-key PCR-KEY.pub | --pcr-policy=pcr]
                     [--insecure-simulator]   (required for --tpm simulator:DIR)
  edgeseal tpm recovery-keygen --out RECOVERY.key
  edgeseal tpm recover --config AGENT.yaml --recovery-key RECOVERY.key [--wrap FILE] [--out DEVICE.json]
  edgeseal tpm rewrap --config AGENT.yaml --recovery-key NEW.pub
  edgeseal tpm pcr-key new --out PCR-KEY
  edgeseal tpm authorize-pcrs --key PCR-KEY --device SITE/NAME (--pcrs 0=HEX,2=HEX,... | --from-quote FILE)
                              [--out pcr-authorization.json]
  edgeseal agent authorize-pcrs --config FILE pcr-authorization.json
  edgeseal demo [--dir DIR]
  edgeseal doctor [--config AGENT.yaml] [--trust DEVICE.json] [--token-file FILE]
  edgeseal archive --config FILE
  edgeseal archive devices list [--json] | approve SITE/NAME --key KEYID [--by WHO] [--no-activation]
                           | revoke SITE/NAME --reason R      [--config FILE | --data-dir DIR]
                           | rekey SITE/NAME --key KEYID [--no-activation] [--reason R] [--by WHO] (daemon stopped)
                           | revoke-key SITE/NAME KEYID --reason R [--by WHO]
  edgeseal archive enroll-file REQUEST.json [--challenge FILE] [--config FILE | --data-dir DIR]
  edgeseal archive enroll-file --response RESPONSE.json      [--config FILE | --data-dir DIR]
  edgeseal archive import DIR                                 [--config FILE | --data-dir DIR]
  edgeseal archive key show | rotate [--overlap 168h] [--new-key pkcs11:URI]
                       | import-pkcs11 --key pkcs11:URI [--generate]
                       [--module LIB] [--pin-file F | --pin-env VAR] [--config FILE | --data-dir DIR]
  edgeseal verify receipt --archive-key PUB [--archive-name NAME] RECEIPT...
  edgeseal bundles export --config AGENT.yaml --to DIR
  edgeseal bundles import-receipts --config AGENT.yaml [--archive-key FILE] DIR
  edgeseal service install|uninstall|start|stop|status --kind agent|archive [--purge] [--root DIR]
  edgeseal version | --version
  edgeseal help [COMMAND...]      (or COMMAND --help: its usage and flags)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
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
		fmt.Fprint(os.Stderr, usage)
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
		if len(args) > 1 && args[1] == "enroll" {
			return cmdAgentEnroll(ctx, args[2:], stdout, log)
		}
		if len(args) > 1 && args[1] == "rotate-key" {
			return cmdAgentRotateKey(ctx, args[2:], stdout, log)
		}
		if len(args) > 1 && args[1] == "authorize-pcrs" {
			return cmdAgentAuthorizePCRs(args[2:], stdout)
		}
		return cmdAgent(ctx, args[1:])
	case "export":
		return cmdExport(ctx, args[1:], os.Stdin, stdout, os.Getenv)
	case "verify":
		return cmdVerify(ctx, args[1:], stdout)
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
