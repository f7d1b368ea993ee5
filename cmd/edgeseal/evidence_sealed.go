package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/agent/agentd"
	"github.com/edgeseal/edgeseal/archive/readclient"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/bundle/sealedpack"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// An evidence pack sealed to the auditor's own key (bundle/sealedpack):
// `evidence keygen` makes the key pair, `evidence ... --encrypt-to PUB`
// writes the pack as one sealed file instead of a folder, `evidence open`
// opens it, checks the pack and writes the folder.

// cmdEvidenceKeygen writes an auditor key pair: FILE (private, 0600) and
// FILE.pub. It never overwrites.
func cmdEvidenceKeygen(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("evidence keygen", flag.ContinueOnError)
	out := fs.String("out", "", "the private key file to write (the public key goes to FILE.pub)")
	if pos, err := parseInterleaved(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErr("evidence keygen: unexpected argument %q", pos[0])
	}
	if *out == "" {
		return usageErr("evidence keygen: --out is required")
	}
	k, err := sealedpack.GenerateKey()
	if err != nil {
		return err
	}
	priv, err := k.MarshalPEM()
	if err != nil {
		return err
	}
	if err := fsutil.WriteNewFile(*out, 0o600, func(w io.Writer) error { _, err := w.Write(priv); return err }); err != nil {
		return usageErr("evidence keygen: %v", err)
	}
	if err := fsutil.WriteNewFile(*out+".pub", 0o644, func(w io.Writer) error { _, err := w.Write(k.Public().MarshalPEM()); return err }); err != nil {
		return usageErr("evidence keygen: %v", err)
	}
	fmt.Fprintf(stdout, "wrote %s (PRIVATE: it opens every pack sealed to you) and %s.pub (give it with --encrypt-to)\nauditor key id %s\n", *out, *out, k.ID)
	return nil
}

// readAuditorPublic reads an auditor public key file (--encrypt-to).
func readAuditorPublic(path string) (*sealedpack.PublicKey, error) {
	b, err := fsutil.ReadLimited(path, 8<<10)
	if err != nil {
		return nil, usageErr("evidence: --encrypt-to: %v", err)
	}
	k, err := sealedpack.ParsePublicKey(b)
	if err != nil {
		return nil, usageErr("evidence: --encrypt-to %s: %v", path, err)
	}
	return k, nil
}

// writeSealedPack writes the pack's tar stream sealed to pub as the new
// file out (0600).
func writeSealedPack(p *evidence.Pack, pub *sealedpack.PublicKey, out string) error {
	err := fsutil.WriteNewFile(out, 0o600, func(w io.Writer) error {
		sw, err := sealedpack.NewWriter(w, pub)
		if err != nil {
			return err
		}
		if err := p.WriteTar(sw, time.Now()); err != nil {
			return err
		}
		return sw.Close()
	})
	if err != nil {
		return usageErr("evidence: %v", err)
	}
	return nil
}

// cmdEvidenceOpen opens a sealed pack with the auditor's private key,
// reads it within the bounds of a pack (regular files, safe paths),
// checks it (pinned to --trust and --archive-key when given) and writes
// the pack folder.
func cmdEvidenceOpen(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("evidence open", flag.ContinueOnError)
	keyPath := fs.String("key", "", "your auditor private key (evidence keygen) (required)")
	out := fs.String("o", "", "the pack folder to write; must not exist (required)")
	trust := fs.String("trust", "", "a device's trust file DEVICE.json to pin")
	akey := fs.String("archive-key", "", "the archive's Ed25519 public key (PEM) to pin")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *keyPath == "" || *out == "" {
		return usageErr("evidence open: want --key AUDITOR.key -o PACK_DIR SEALED_FILE")
	}
	kb, err := fsutil.ReadLimited(*keyPath, 8<<10)
	if err != nil {
		return usageErr("evidence open: %v", err)
	}
	k, err := sealedpack.ParsePrivateKey(kb)
	if err != nil {
		return usageErr("evidence open: %s: %v", *keyPath, err)
	}
	var opts proof.Options
	if *trust != "" {
		if opts.Trust, err = fsutil.ReadLimited(*trust, 64<<10); err != nil {
			return usageErr("evidence open: %v", err)
		}
	}
	if *akey != "" {
		if opts.ArchiveKey, err = agentd.ReadArchiveKey(*akey); err != nil {
			return usageErr("evidence open: --archive-key: %v", err)
		}
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return usageErr("evidence open: %v", err)
	}
	defer f.Close()
	r, err := sealedpack.NewReader(f, k)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("evidence open: %s: %w", pos[0], err)}
	}
	// The whole file is read (each chunk authenticated, the end checked)
	// before anything of it is used.
	const max = readclient.MaxPackBytes + 64<<20 // the files and their tar headers
	var plain bytes.Buffer
	if n, err := io.Copy(&plain, io.LimitReader(r, max+1)); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("evidence open: %s: %w", pos[0], err)}
	} else if n > max {
		return &exitError{code: 1, err: fmt.Errorf("evidence open: %s: more than %d bytes of pack", pos[0], int64(max))}
	}
	pack, err := readclient.ReadPack(&plain)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("evidence open: %w", err)}
	}
	rep := evidence.Verify(pack, opts)
	if !rep.OK() {
		return &exitError{code: 1, err: fmt.Errorf("evidence open: the pack does not verify: %s", strings.Join(rep.Failed(), ", "))}
	}
	if err := pack.WriteDir(*out); err != nil {
		return usageErr("%v", err)
	}
	fmt.Fprintf(stdout, "opened the pack of %d export(s) sealed to %s; written to %s; check it with: edgeseal verify %s\n", len(rep.Exports), k.ID, *out, *out)
	return nil
}
