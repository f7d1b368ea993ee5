package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/tpm"
)

// openTPM opens the TPM named by spec with key blobs in state.
func openTPM(ctx context.Context, spec, state string, log *slog.Logger) (*tpm.TPM, error) {
	return tpm.Open(ctx, spec, tpm.Options{StateDir: state, Logger: log, Simulator: simulatorOpener})
}

// cmdEnroll creates (or loads) the device's TPM keys and writes the trust
// file that 'edgeseal verify' and the archive trust: EK, AK, the signing key,
// its certification by the AK and the golden PCR values.
func cmdEnroll(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("tpm enroll", flag.ContinueOnError)
	spec := fs.String("tpm", "device:/dev/tpmrm0", "TPM: device:PATH, swtpm:HOST:PORT or simulator:DIR")
	state := fs.String("state", "/var/lib/edgeseal/tpm", "directory of the TPM key blobs")
	site := fs.String("site", "", "site name")
	device := fs.String("device", "", "device name within the site")
	out := fs.String("out", "DEVICE.json", "where to write the trust file")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *site == "" || *device == "" {
		return usageErr("tpm enroll: --site and --device are required")
	}
	t, err := openTPM(ctx, *spec, *state, log)
	if err != nil {
		return err
	}
	defer t.Close()
	trust, err := bundle.NewTrust(*site, *device, agent.BundleIdentity(t.Identity()))
	if err != nil {
		return err
	}
	data, err := trust.Marshal()
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(*out, data, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: device %s/%s, key %s, PCRs %v\n", *out, *site, *device, trust.KeyID, trust.PCRSelection.PCRs)
	return nil
}
