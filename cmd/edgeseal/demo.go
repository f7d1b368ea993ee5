package main

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/broker"
	aconfig "github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/internal/demo"
	"github.com/edgeseal/edgeseal/tpm"
)

// cmdDemo runs `edgeseal demo [--dir DIR]` (package internal/demo) with
// this binary's daemons and operator commands.
func cmdDemo(ctx context.Context, args []string, stdout io.Writer, _ *slog.Logger) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	def := os.Getenv("EDGESEAL_DEMO_DIR")
	if def == "" {
		def = "./demo-out"
	}
	dir := fs.String("dir", def, "where to leave the journal, TPM state, bundles and DEVICE.json")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	return demo.Run(ctx, demo.Options{
		Dir:       *dir,
		Stdout:    stdout,
		Simulator: simulatorOpener,
		RunAgent:  runAgent,
		RunArchive: func(ctx context.Context, cfg *aconfig.Config, log *slog.Logger, ready func(*archive.Archive, *broker.Broker)) error {
			return runArchive(ctx, cfg, log, &archiveHooks{ready: ready})
		},
		NewPCRKey: func(path string) (*ecdsa.PrivateKey, error) {
			if err := cmdPCRKey([]string{"new", "--out", path}, io.Discard); err != nil {
				return nil, err
			}
			return readPCRPolicyPrivate(path)
		},
		WrapRecovery:   demoRecoveryWrap,
		ReadArchiveKey: readEd25519Public,
	})
}

// demoRecoveryWrap makes the demo's recovery key pair keyFile, keyFile.pub
// (once) and wraps the data key to it, as an operator's enrollment would.
func demoRecoveryWrap(ctx context.Context, t *tpm.TPM, state, device, keyFile string) error {
	if _, err := os.Stat(keyFile + ".pub"); errors.Is(err, os.ErrNotExist) {
		if _, err := writeRecoveryKey(keyFile); err != nil {
			return err
		}
	}
	pub, err := readRecoveryPublic(keyFile + ".pub")
	if err != nil {
		return err
	}
	return writeWrap(ctx, t, state, device, pub)
}
