package main

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// cmdProof writes the proof of one export (offline, from bundles, their
// receipts, the device's trust file and the archive key): its record and
// related records, payload, inclusion proofs, seal, quote, keys and the
// archive receipt. An export id that names exports of several principals
// or devices is refused with the candidates listed. Exit 0 written, 1 the
// export cannot be proven, 2 usage.
func cmdProof(_ context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("proof", flag.ContinueOnError)
	var bundles, receipts, trusts stringList
	fs.Var(&bundles, "bundles", "a bundle file or a folder of *.tar bundles (and receipts/); repeatable (required)")
	fs.Var(&receipts, "receipts", "a folder of the archive's *.receipt.json (default: each bundle folder's receipts/); repeatable")
	fs.Var(&trusts, "trust", "the device's trust file DEVICE.json; repeatable (required)")
	keyPath := fs.String("archive-key", "", "the archive's Ed25519 public key (PEM) that signed the receipts (required)")
	principal := fs.String("principal", "", "the principal of the export (export ids are scoped by principal)")
	device := fs.String("device", "", "the device SITE/NAME of the export")
	out := fs.String("o", "", "write the proof here (default: standard output)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("proof: want one EXPORT-ID")
	}
	src, err := loadSources("proof", bundles, receipts, trusts, *keyPath)
	if err != nil {
		return err
	}
	e, path, err := src.find(pos[0], *principal, *device)
	var amb *proof.AmbiguousError
	switch {
	case errors.As(err, &amb):
		return &exitError{code: 2, err: fmt.Errorf("%v\n(give --principal and --device)", err)}
	case err != nil:
		return &exitError{code: 1, err: err}
	}
	p, err := src.build("proof", e, path)
	if err != nil {
		return err
	}
	raw, err := p.Marshal()
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = stdout.Write(raw)
		return err
	}
	if err := fsutil.WriteFileAtomic(*out, raw, 0o644); err != nil {
		return usageErr("proof: %v", err)
	}
	fmt.Fprintf(stdout, "proof of export %s written to %s\n", e, *out)
	return nil
}

func pkixOf(pub ed25519.PublicKey) ([]byte, error) { return x509.MarshalPKIXPublicKey(pub) }
