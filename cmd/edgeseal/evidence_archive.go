package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/agent/agentd"
	"github.com/edgeseal/edgeseal/archive/readclient"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/bundle/sealedpack"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// archivePack is `evidence --archive`: the archive builds the pack (GET
// /v1/evidence, journaled in its access log as a pack read by the
// session's user); it is read within bounds, checked, and written to out.
type archivePack struct {
	base, tokenFile, caFile string
	query                   url.Values
	trusts                  []string
	keyPath, out, what      string
	sealTo                  *sealedpack.PublicKey // write the pack sealed to it
}

func (a archivePack) run(ctx context.Context, stdout io.Writer) error {
	if a.tokenFile == "" {
		return usageErr("evidence: --archive needs --token-file")
	}
	tok, err := fsutil.ReadLimited(a.tokenFile, 4096)
	if err != nil {
		return usageErr("evidence: %v", err)
	}
	var ca []byte
	if a.caFile != "" {
		if ca, err = fsutil.ReadLimited(a.caFile, 1<<20); err != nil {
			return usageErr("evidence: %v", err)
		}
	}
	var opts proof.Options
	if len(a.trusts) > 1 {
		return usageErr("evidence: with --archive, at most one --trust (pinned when the pack is checked)")
	}
	if len(a.trusts) == 1 {
		if opts.Trust, err = fsutil.ReadLimited(a.trusts[0], 64<<10); err != nil {
			return usageErr("evidence: trust file: %v", err)
		}
	}
	if a.keyPath != "" {
		if opts.ArchiveKey, err = agentd.ReadArchiveKey(a.keyPath); err != nil {
			return usageErr("evidence: --archive-key: %v", err)
		}
	}
	client, err := readclient.New(a.base, strings.TrimSpace(string(tok)), ca)
	if err != nil {
		return usageErr("evidence: %v", err)
	}
	pack, err := client.Evidence(ctx, a.query)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("evidence: %w", err)}
	}
	rep := evidence.Verify(pack, opts)
	if !rep.OK() {
		return &exitError{code: 1, err: fmt.Errorf("evidence: the archive's pack of %s does not verify: %s", a.what, strings.Join(rep.Failed(), ", "))}
	}
	decrypted := 0
	for _, e := range rep.Exports {
		if _, ok := pack.Files[e.Dir+"/"+evidence.PlaintextFile]; ok {
			decrypted++
		}
	}
	if a.sealTo != nil {
		if err := writeSealedPack(pack, a.sealTo, a.out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "evidence pack of %d export(s) (%s, %d decrypted) from %s sealed to %s in %s; open it with: edgeseal evidence open --key YOUR.key -o PACK_DIR %s\n", len(rep.Exports), a.what, decrypted, a.base, a.sealTo.ID, a.out, a.out)
		return nil
	}
	if err := pack.WriteDir(a.out); err != nil {
		return usageErr("%v", err)
	}
	fmt.Fprintf(stdout, "evidence pack of %d export(s) (%s, %d decrypted) from %s written to %s; check it with: %s\n", len(rep.Exports), a.what, decrypted, a.base, a.out, verifyHint(a.out, a.trusts, a.keyPath))
	return nil
}

// archiveQuery is the GET /v1/evidence query of the command's selection.
func archiveQuery(exports []string, device, principal, from, to, caseID string) (url.Values, string, error) {
	q := url.Values{}
	switch {
	case len(exports) > 1:
		return nil, "", usageErr("evidence: with --archive, one --export per pack")
	case len(exports) == 1:
		q.Set("export", exports[0])
		if device != "" {
			q.Set("device", device)
		}
		if principal != "" {
			q.Set("principal", principal)
		}
		return q, "export " + exports[0], nil
	case caseID != "":
		q.Set("case", caseID)
		what := "legal-hold case " + caseID
		if device != "" { // the archive narrows the case in its index
			q.Set("device", device)
			what += " device " + device
		}
		if principal != "" {
			q.Set("principal", principal)
			what += " principal " + principal
		}
		var t0, t1 time.Time
		for _, b := range []struct {
			name, v string
			t       *time.Time
		}{{"from", from, &t0}, {"to", to, &t1}} {
			if b.v == "" {
				continue
			}
			t, err := time.Parse(time.RFC3339Nano, b.v)
			if err != nil {
				return nil, "", usageErr("evidence: --%s must be an RFC 3339 time", b.name)
			}
			*b.t = t
			q.Set(b.name, b.v)
			what += " " + b.name + " " + b.v
		}
		if !t0.IsZero() && !t1.IsZero() && !t0.Before(t1) {
			return nil, "", usageErr("evidence: --from must be before --to")
		}
		return q, what, nil
	}
	t0, err1 := time.Parse(time.RFC3339Nano, from)
	t1, err2 := time.Parse(time.RFC3339Nano, to)
	if device == "" || err1 != nil || err2 != nil || !t0.Before(t1) {
		return nil, "", usageErr("evidence: --device, --from and --to go together (RFC 3339 times, --from before --to)")
	}
	q.Set("device", device)
	q.Set("from", from)
	q.Set("to", to)
	return q, fmt.Sprintf("device %s from %s to %s", device, from, to), nil
}
