package main

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/edgeseal/edgeseal/archive/readclient"
	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// cmdProof writes the proof of one export (offline, from bundles, their
// receipts, the device's trust file and the archive key): its record and
// related records, payload, inclusion proofs, seal, quote, keys and the
// archive receipt. An export id that names exports of several principals
// or devices is refused with the candidates listed. Exit 0 written, 1 the
// export cannot be proven, 2 usage.
func cmdProof(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newCustodyFlags("proof", "a folder of the archive's *.receipt.json (default: each bundle folder's receipts/); repeatable",
		"the device's trust file DEVICE.json; repeatable (required)",
		"get the proof from the archive's read API at this URL (https://HOST:PORT) instead of building it from --bundles; it is verified against --trust and --archive-key before it is written")
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
	var p *proof.Proof
	var e proof.Export
	if c.archiveURL != "" {
		if len(c.bundles) > 0 || len(c.receipts) > 0 {
			return usageErr("proof: --archive and --bundles/--receipts exclude each other")
		}
		p, e, err = proofFromArchive(ctx, c.archiveURL, c.tokenFile, c.caFile, c.trusts, c.keyPath, pos[0], *principal, *device)
		if err != nil {
			return err
		}
	} else {
		src, err := loadSources("proof", c.bundles, c.receipts, c.trusts, c.keyPath)
		if err != nil {
			return err
		}
		sel, err := src.Find(pos[0], *principal, *device)
		if err != nil {
			return selectErr(err)
		}
		e = sel.Export
		if p, err = buildProof("proof", src, sel); err != nil {
			return err
		}
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

// selectErr is the exit of a failed selection: 2 for an ambiguous id
// (the candidates listed), 1 for one not found.
func selectErr(err error) error {
	var amb *proof.AmbiguousError
	if errors.As(err, &amb) {
		return &exitError{code: 2, err: fmt.Errorf("%v\n(give --principal and --device)", err)}
	}
	return &exitError{code: 1, err: err}
}

// proofFromArchive finds the export in the archive's export index and
// fetches the proof the archive builds of it (GET .../proof), which must
// verify pinned to the trust file and archive key given.
func proofFromArchive(ctx context.Context, base, tokenFile, caFile string, trusts []string, keyPath, id, principal, device string) (*proof.Proof, proof.Export, error) {
	fail := func(err error) (*proof.Proof, proof.Export, error) { return nil, proof.Export{}, err }
	if tokenFile == "" {
		return fail(usageErr("proof: --archive needs --token-file"))
	}
	tok, err := fsutil.ReadLimited(tokenFile, 4096)
	if err != nil {
		return fail(usageErr("proof: %v", err))
	}
	var ca []byte
	if caFile != "" {
		if ca, err = fsutil.ReadLimited(caFile, 1<<20); err != nil {
			return fail(usageErr("proof: %v", err))
		}
	}
	client, err := readclient.New(base, strings.TrimSpace(string(tok)), ca)
	if err != nil {
		return fail(usageErr("proof: %v", err))
	}
	src, err := loadTrustAndKey("proof", trusts, keyPath)
	if err != nil {
		return fail(err)
	}
	entries, err := client.Exports(ctx, id, device, principal)
	if err != nil {
		return fail(&exitError{code: 1, err: fmt.Errorf("proof: %w", err)})
	}
	var cands []proof.Export
	bundleOf := map[proof.Export]string{}
	for _, en := range entries {
		ex := proof.Export{ExportID: en.Export, Principal: en.Principal, Device: en.Device, Seq: en.Seq, Time: en.Time}
		cands = append(cands, ex)
		bundleOf[ex] = en.Bundle
	}
	e, err := proof.Select(cands, id, principal, device)
	if errors.Is(err, proof.ErrNotFound) {
		err = archiveRefusals(ctx, client, id, principal, device)
	}
	if err != nil {
		return fail(selectErr(err))
	}
	trust, ok := src.Trust[e.Device]
	if !ok {
		return fail(usageErr("proof: no trust file of device %s: add --trust", e.Device))
	}
	p, err := client.Proof(ctx, e.Device, e.ExportID, e.Principal)
	if err != nil {
		return fail(&exitError{code: 1, err: fmt.Errorf("proof: %w", err)})
	}
	// The archive built it: nothing is written unless it verifies pinned
	// to the auditor's own trust file and archive key.
	if rep := proof.Verify(p, proof.Options{Trust: trust, ArchiveKey: src.Key}); !rep.OK() {
		return fail(&exitError{code: 1, err: fmt.Errorf("proof: the archive's proof of %s does not verify: %s", e, strings.Join(rep.Failed(), ", "))})
	}
	if p.ExportID != e.ExportID || p.Device != e.Device || p.Principal != e.Principal {
		return fail(&exitError{code: 1, err: fmt.Errorf("proof: the archive answered the proof of %s %s, not of %s", p.Device, p.ExportID, e)})
	}
	return p, e, nil
}

// archiveRefusals is the answer when the archive's index has no accepted
// export id: a *proof.RefusedError naming the export.rejected records the
// index holds of it (who refused it, and why), as edgeseal proof says it
// of bundles given, else proof.ErrNotFound (or the search's error).
func archiveRefusals(ctx context.Context, client *readclient.Client, id, principal, device string) error {
	entries, err := client.Refusals(ctx, id, device, principal)
	if err != nil {
		return fmt.Errorf("proof: %w", err)
	}
	var refusals []proof.Refusal
	for _, en := range entries {
		refusals = append(refusals, proof.Refusal{Export: proof.Export{ExportID: en.Export, Principal: en.Principal, Device: en.Device,
			Seq: en.Seq, Time: en.Time}, Reason: en.Reason})
	}
	return proof.SelectRefused(refusals, id, principal, device)
}

func pkixOf(pub ed25519.PublicKey) ([]byte, error) { return x509.MarshalPKIXPublicKey(pub) }
