package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/bundle/sealedpack"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// cmdEvidence builds an evidence pack offline: the proofs of the exports
// selected (by id, by device and time, or by a legal-hold case), the trust
// files, the archive checkpoints, the signed policies in force, the PROV-O
// lineage and VERIFY.md, as a BagIt folder. The building is recorded as an
// access in the pack and, with --access-log, appended to that file.
func cmdEvidence(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "open":
			return cmdEvidenceOpen(args[1:], stdout)
		case "keygen":
			return cmdEvidenceKeygen(args[1:], stdout)
		}
	}
	fs, c := newCustodyFlags("evidence", "a folder of the archive's *.receipt.json; repeatable",
		"a device's trust file DEVICE.json; repeatable (required)",
		"have the archive build the pack through its read API at this URL (https://HOST:PORT) instead of --bundles; --trust and --archive-key, when given, are pinned when it is checked")
	var exports, holds stringList
	fs.Var(&exports, "export", "an export id to pack; repeatable")
	device := fs.String("device", "", "SITE/NAME: pack this device's exports (with --from and --to), or narrow --export")
	from := fs.String("from", "", "with --device: exports journaled at or after this time (RFC 3339)")
	to := fs.String("to", "", "with --device: exports journaled before this time (RFC 3339)")
	caseID := fs.String("case", "", "pack the exports a legal-hold case holds (with --holds; with --archive, --device, --principal, --from and --to narrow it)")
	fs.Var(&holds, "holds", "a signed hold statement of the archive log (archive hold --statement-out, or the log record); repeatable")
	principal := fs.String("principal", "", "with --export: the principal of the exports")
	requester := fs.String("requester", "", "who builds the pack (recorded as the access); default the user name")
	accessLog := fs.String("access-log", "", "append the access (one JSON line, synced) to this file")
	out := fs.String("o", "", "the pack folder to write; must not exist (required)")
	decrypt := fs.Bool("decrypt", false, "with --archive: the archive decrypts the payloads into the pack (your roles must allow the exports' classification; each decryption is in the archive's access log); say why with --reason or --case")
	reason := fs.String("reason", "", "with --decrypt: why you decrypt (recorded in the archive's access log)")
	encryptTo := fs.String("encrypt-to", "", "seal the pack to this auditor public key (evidence keygen): -o is then the sealed file, opened with 'edgeseal evidence open'")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	var sealTo *sealedpack.PublicKey
	if *encryptTo != "" {
		var err error
		if sealTo, err = readAuditorPublic(*encryptTo); err != nil {
			return err
		}
	}
	if *reason != "" && !*decrypt {
		return usageErr("evidence: --reason goes with --decrypt")
	}
	if *decrypt && c.archiveURL == "" {
		return usageErr("evidence: --decrypt needs --archive: payloads are decrypted only by the archive, as a logged custody event")
	}
	if *decrypt && *reason == "" && *caseID == "" {
		return usageErr("evidence: --decrypt needs a why: --reason TEXT (or a --case selection)")
	}
	modes := 0
	// With --archive, --from and --to narrow a --case (the archive's
	// index has the record times); offline they select by device only.
	narrowsCase := c.archiveURL != "" && *caseID != ""
	for _, set := range []bool{len(exports) > 0, (*from != "" || *to != "") && !narrowsCase, *caseID != ""} {
		if set {
			modes++
		}
	}
	if modes != 1 || *out == "" {
		return usageErr("evidence: want one of --export ID..., --device D --from T --to T, --case ID --holds FILE...; and -o PACK_DIR")
	}
	if c.archiveURL != "" {
		if len(c.bundles) > 0 || len(c.receipts) > 0 || len(holds) > 0 || *accessLog != "" || *requester != "" {
			return usageErr("evidence: --archive excludes --bundles, --receipts, --holds, --access-log and --requester (the archive journals the pack as your session's read)")
		}
		q, what, err := archiveQuery(exports, *device, *principal, *from, *to, *caseID)
		if err != nil {
			return err
		}
		if *decrypt {
			q.Set("decrypt", "1")
			if *reason != "" {
				q.Set("reason", *reason)
			}
		}
		return archivePack{base: c.archiveURL, tokenFile: c.tokenFile, caFile: c.caFile, query: q, trusts: c.trusts, keyPath: c.keyPath, out: *out, what: what, sealTo: sealTo}.run(ctx, stdout)
	}
	src, err := loadSources("evidence", c.bundles, c.receipts, c.trusts, c.keyPath)
	if err != nil {
		return err
	}
	var sel []evidence.Selected
	var what string
	switch {
	case len(exports) > 0:
		what = "export(s) " + exports.String()
		for _, id := range exports {
			s, err := src.Find(id, *principal, *device)
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("evidence: %w", err)}
			}
			sel = append(sel, s)
		}
	case *caseID != "":
		hs, err := readHolds(holds)
		if err != nil {
			return err
		}
		sel = src.ByCase(*caseID, hs)
		what = "legal-hold case " + *caseID
	default:
		if *device == "" || *from == "" || *to == "" {
			return usageErr("evidence: --device, --from and --to go together")
		}
		t0, err1 := time.Parse(time.RFC3339Nano, *from)
		t1, err2 := time.Parse(time.RFC3339Nano, *to)
		if err1 != nil || err2 != nil || !t0.Before(t1) {
			return usageErr("evidence: --from and --to must be RFC 3339 times, --from before --to")
		}
		what = fmt.Sprintf("device %s from %s to %s", *device, wire.FormatTime(t0), wire.FormatTime(t1))
		sel = src.ByTime(*device, t0, t1)
	}
	if len(sel) == 0 {
		return &exitError{code: 1, err: fmt.Errorf("evidence: no export of %s in the bundles given", what)}
	}
	var proofs []*proof.Proof
	for _, s := range sel {
		p, err := buildProof("evidence", src, s)
		if err != nil {
			return err
		}
		proofs = append(proofs, p)
	}
	who := *requester
	if who == "" {
		who = os.Getenv("USER")
	}
	in := evidence.Input{Proofs: proofs, Policies: src.Policies, Selection: what, Requester: who}
	if *accessLog != "" {
		in.Journal = func(_ context.Context, a evidence.Access) error { return evidence.AppendAccess(*accessLog, a) }
	}
	pack, err := evidence.Build(ctx, in)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	if sealTo != nil {
		if err := writeSealedPack(pack, sealTo, *out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "evidence pack of %d export(s) (%s) sealed to %s in %s; open it with: edgeseal evidence open --key YOUR.key -o PACK_DIR %s\n", len(proofs), what, sealTo.ID, *out, *out)
		return nil
	}
	if err := pack.WriteDir(*out); err != nil {
		return usageErr("%v", err)
	}
	fmt.Fprintf(stdout, "evidence pack of %d export(s) (%s) written to %s; check it with: %s\n", len(proofs), what, *out, verifyHint(*out, c.trusts, c.keyPath))
	return nil
}

// verifyHint is the command that checks the pack at out pinned to the
// trust file and archive key the pack was built with (verify takes one
// trust file: with several, the archive key alone is pinned).
func verifyHint(out string, trusts []string, keyPath string) string {
	h := "edgeseal verify " + out
	if len(trusts) == 1 {
		h += " --trust " + trusts[0]
	}
	if keyPath != "" {
		h += " --archive-key " + keyPath
	}
	return h
}

// readHolds reads the hold statements of a legal-hold case (--holds):
// signed statements of the archive log, of any case.
func readHolds(holdFiles []string) ([]evidence.Hold, error) {
	if len(holdFiles) == 0 {
		return nil, usageErr("evidence: --case needs the case's hold statements (--holds FILE...)")
	}
	var hs []evidence.Hold
	for _, f := range holdFiles {
		raw, err := fsutil.ReadLimited(f, 16<<20)
		if err != nil {
			return nil, usageErr("evidence: %v", err)
		}
		st, err := archive.ParseOperatorStatement(raw)
		if err != nil {
			return nil, usageErr("evidence: %s: %v", f, err)
		}
		release := st.Type == archive.StatementHoldRelease
		if st.Type != archive.StatementHoldSet && !release || st.Target == nil && !release {
			continue
		}
		h := evidence.Hold{Case: st.Case, Time: st.Time, Release: release, Bundles: st.Objects}
		if st.Target != nil {
			h.Export = st.Target.Export
		}
		hs = append(hs, h)
	}
	return hs, nil
}
