package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// cmdEvidence builds an evidence pack offline: the proofs of the exports
// selected (by id, by device and time, or by a legal-hold case), the trust
// files, the archive checkpoints, the signed policies in force, the PROV-O
// lineage and VERIFY.md, as a BagIt folder. The building is recorded as an
// access in the pack and, with --access-log, appended to that file.
func cmdEvidence(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("evidence", flag.ContinueOnError)
	var exports, bundles, receipts, trusts, holds stringList
	fs.Var(&exports, "export", "an export id to pack; repeatable")
	device := fs.String("device", "", "SITE/NAME: pack this device's exports (with --from and --to), or narrow --export")
	from := fs.String("from", "", "with --device: exports journaled at or after this time (RFC 3339)")
	to := fs.String("to", "", "with --device: exports journaled before this time (RFC 3339)")
	caseID := fs.String("case", "", "pack the exports a legal-hold case holds (with --holds)")
	fs.Var(&holds, "holds", "a signed hold statement of the archive log (archive hold --statement-out, or the log record); repeatable")
	principal := fs.String("principal", "", "with --export: the principal of the exports")
	fs.Var(&bundles, "bundles", "a bundle file or a folder of *.tar bundles (and receipts/); repeatable (required)")
	fs.Var(&receipts, "receipts", "a folder of the archive's *.receipt.json; repeatable")
	fs.Var(&trusts, "trust", "a device's trust file DEVICE.json; repeatable (required)")
	keyPath := fs.String("archive-key", "", "the archive's Ed25519 public key (PEM) that signed the receipts (required)")
	requester := fs.String("requester", "", "who builds the pack (recorded as the access); default the user name")
	accessLog := fs.String("access-log", "", "append the access (one JSON line, synced) to this file")
	out := fs.String("o", "", "the pack folder to write; must not exist (required)")
	archiveURL := fs.String("archive", "", "have the archive build the pack through its read API at this URL (https://HOST:PORT) instead of --bundles; --trust and --archive-key, when given, are pinned when it is checked")
	tokenFile := fs.String("token-file", "", "with --archive: a file holding the API session token (POST /v1/session)")
	caFile := fs.String("cacert", "", "with --archive: the CA certificate (PEM) of the API's TLS certificate")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	modes := 0
	for _, set := range []bool{len(exports) > 0, *from != "" || *to != "", *caseID != ""} {
		if set {
			modes++
		}
	}
	if modes != 1 || *out == "" {
		return usageErr("evidence: want one of --export ID..., --device D --from T --to T, --case ID --holds FILE...; and -o PACK_DIR")
	}
	if *archiveURL != "" {
		if len(bundles) > 0 || len(receipts) > 0 || len(holds) > 0 || *accessLog != "" || *requester != "" {
			return usageErr("evidence: --archive excludes --bundles, --receipts, --holds, --access-log and --requester (the archive journals the pack as your session's read)")
		}
		q, what, err := archiveQuery(exports, *device, *principal, *from, *to, *caseID)
		if err != nil {
			return err
		}
		return archivePack{base: *archiveURL, tokenFile: *tokenFile, caFile: *caFile, query: q, trusts: trusts, keyPath: *keyPath, out: *out, what: what}.run(ctx, stdout)
	}
	src, err := loadSources("evidence", bundles, receipts, trusts, *keyPath)
	if err != nil {
		return err
	}
	var sel []selected
	var what string
	switch {
	case len(exports) > 0:
		what = "export(s) " + exports.String()
		for _, id := range exports {
			e, path, err := src.find(id, *principal, *device)
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("evidence: %w", err)}
			}
			sel = append(sel, selected{e, path})
		}
	case *caseID != "":
		if sel, err = src.byCase(*caseID, holds); err != nil {
			return err
		}
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
		for _, b := range src.bundles {
			for _, e := range b.exports {
				at, err := wire.ParseTime(e.Time)
				if err == nil && e.Device == *device && !at.Before(t0) && at.Before(t1) {
					sel = append(sel, selected{e, b.path})
				}
			}
		}
	}
	if len(sel) == 0 {
		return &exitError{code: 1, err: fmt.Errorf("evidence: no export of %s in the bundles given", what)}
	}
	var proofs []*proof.Proof
	for _, s := range sel {
		p, err := src.build("evidence", s.export, s.path)
		if err != nil {
			return err
		}
		proofs = append(proofs, p)
	}
	who := *requester
	if who == "" {
		who = os.Getenv("USER")
	}
	in := evidence.Input{Proofs: proofs, Policies: src.policies, Selection: what, Requester: who}
	if *accessLog != "" {
		in.Journal = func(_ context.Context, a evidence.Access) error { return appendAccess(*accessLog, a) }
	}
	pack, err := evidence.Build(ctx, in)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	if err := pack.WriteDir(*out); err != nil {
		return usageErr("%v", err)
	}
	fmt.Fprintf(stdout, "evidence pack of %d export(s) (%s) written to %s; check it with: %s\n", len(proofs), what, *out, verifyHint(*out, trusts, *keyPath))
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

// selected is one export chosen and the bundle file holding it.
type selected struct {
	export proof.Export
	path   string
}

// byCase selects the exports a legal-hold case holds: the bundles whose
// latest statement of that case, in statement time order, is hold.set;
// of those, every export, or only the export a hold by export id names.
func (s *custodySources) byCase(caseID string, holdFiles []string) ([]selected, error) {
	if len(holdFiles) == 0 {
		return nil, usageErr("evidence: --case needs the case's hold statements (--holds FILE...)")
	}
	var sts []*archive.OperatorStatement
	for _, f := range holdFiles {
		raw, err := fsutil.ReadLimited(f, 16<<20)
		if err != nil {
			return nil, usageErr("evidence: %v", err)
		}
		st, err := archive.ParseOperatorStatement(raw)
		if err != nil {
			return nil, usageErr("evidence: %s: %v", f, err)
		}
		if st.Case == caseID && (st.Type == archive.StatementHoldSet || st.Type == archive.StatementHoldRelease) {
			sts = append(sts, st)
		}
	}
	slices.SortStableFunc(sts, func(a, b *archive.OperatorStatement) int { return strings.Compare(a.Time, b.Time) })
	held := map[string]string{} // bundle -> export id held ("" for all)
	for _, st := range sts {
		for _, o := range st.Objects {
			if st.Type == archive.StatementHoldRelease {
				delete(held, o)
			} else if st.Target != nil {
				held[o] = st.Target.Export
			}
		}
	}
	var out []selected
	for _, b := range s.bundles {
		id, ok := held[b.digest]
		if !ok {
			continue
		}
		for _, e := range b.exports {
			if id == "" || e.ExportID == id {
				out = append(out, selected{e, b.path})
			}
		}
	}
	return out, nil
}

// appendAccess appends the access as one JSON line and syncs the file.
func appendAccess(path string, a evidence.Access) error {
	line, err := json.Marshal(a)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
