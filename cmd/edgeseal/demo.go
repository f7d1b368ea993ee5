package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"

	"github.com/edgeseal/edgeseal/internal/demo"
)

// cmdDemo runs `edgeseal demo [--dir DIR]` (package internal/demo) with the
// TPM simulator this binary links in.
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
	return demo.Run(ctx, demo.Options{Dir: *dir, Stdout: stdout, Simulator: simulatorOpener})
}
