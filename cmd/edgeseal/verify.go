package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

// verifyResult is one bundle's outcome in --json output.
type verifyResult struct {
	Bundle   string         `json:"bundle"`
	Verified bool           `json:"verified"`
	Checks   []verify.Check `json:"checks"`
	State    *verify.State  `json:"state,omitempty"`
	// Keys are the bundle's signing-key records (created, rotated, revoked).
	Keys []verify.KeyEvent `json:"keys,omitempty"`
}

// cmdVerify verifies bundles offline against a device trust file. A
// directory argument stands for every *.bundle.tar in it, ordered by
// checkpoint size. By default (--chain) the bundles are one chain of the
// device: each is verified against the state the one before it left. --each
// verifies every bundle on its own (against --previous, if given). A summary
// line ends the output; --quiet prints only what failed and the summary.
// Exit 0 verified, 1 not verified, 2 usage or unreadable input.
func cmdVerify(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "receipt" {
		return cmdVerifyReceipt(ctx, args[1:], stdout)
	}
	if len(args) > 0 && args[0] == "archive" {
		return cmdVerifyArchive(ctx, args[1:], stdout)
	}
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	trustPath := fs.String("trust", "", "device trust file (DEVICE.json) written by 'edgeseal tpm enroll' (required)")
	prevPath := fs.String("previous", "", "the previous bundle of this device, or a state file written by --state-out")
	stateOut := fs.String("state-out", "", "write the state after the last bundle here (for the next --previous)")
	asJSON := fs.Bool("json", false, "print machine-readable JSON (an array of results, no summary line)")
	quiet := fs.Bool("quiet", false, "print only the bundles that failed, and the summary")
	chain := fs.Bool("chain", false, "verify the bundles as one chain, each against the state the one before left (the default)")
	each := fs.Bool("each", false, "verify each bundle on its own, against --previous if given")
	archiveKey := fs.String("archive-key", "", "with a proof or an evidence pack: the archive key (PEM) its receipts must be signed by")
	purges := purgeFiles{}
	fs.Var(purges, "purged", "an archive retention.purge statement (repeatable): the bundles that are skeletons it names are verified with their payloads purged")
	paths, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return usageErr("verify: no bundle given")
	}
	if k := inputKind(paths[0]); k != kindBundle {
		return verifyProofsAndPacks(paths, *trustPath, *archiveKey, *asJSON, *quiet, stdout)
	}
	if *trustPath == "" {
		return usageErr("verify: --trust DEVICE.json is required")
	}
	if *chain && *each {
		return usageErr("verify: --chain and --each exclude each other")
	}
	raw, err := readRegular(*trustPath, 64<<10)
	if err != nil {
		return usageErr("verify: trust file: %v", err)
	}
	trust, err := trustfile.ParseTrust(raw)
	if err != nil {
		return usageErr("verify: trust file %s: %v", *trustPath, err)
	}
	if *stateOut != "" {
		// Checked before verifying: a bad output path is a usage error
		// said at once, not after a verified summary was printed.
		if err := checkOutputFile(*stateOut); err != nil {
			return usageErr("verify: --state-out: %v", err)
		}
	}
	bundles, err := loadBundles(paths)
	if err != nil {
		return err
	}
	if *each && *stateOut != "" && len(bundles) > 1 {
		return usageErr("verify: --state-out with --each needs a single bundle")
	}
	var base *verify.State
	if *prevPath != "" {
		if base, err = loadPrevious(*prevPath, trust); err != nil {
			return err
		}
	}
	var results []verifyResult
	var history []verify.KeyEvent // of the verified bundles
	var failed []string
	prev, last := base, (*verify.State)(nil)
	for _, lb := range bundles {
		if err := ctx.Err(); err != nil {
			return err
		}
		against := prev
		if *each {
			against = base
		}
		b, err := bundle.ReadFile(lb.path)
		if err != nil {
			return usageErr("verify: %v", err)
		}
		rep := verifyBundle(b, trust, against, purges)
		results = append(results, verifyResult{Bundle: lb.path, Verified: rep.OK(), Checks: rep.Checks, State: rep.State, Keys: rep.Keys})
		if rep.OK() {
			prev, last = rep.State, rep.State
			history = append(history, rep.Keys...)
		} else {
			failed = append(failed, lb.path)
		}
		if !*asJSON && (!*quiet || !rep.OK()) {
			printReport(stdout, lb.path, rep)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return err
		}
	} else {
		if !*quiet {
			printKeyHistory(stdout, trust, history, last)
		}
		printSummary(stdout, trust, len(bundles), failed, *each)
	}
	if *stateOut != "" && len(failed) == 0 && last != nil {
		data, err := json.MarshalIndent(last, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*stateOut, append(data, '\n'), 0o644); err != nil {
			return usageErr("verify: state-out: %v", err)
		}
	}
	if len(failed) > 0 {
		return &exitError{code: 1, err: fmt.Errorf("verify: %d of %d bundle(s) not verified", len(failed), len(bundles))}
	}
	return nil
}

// loadPrevious reads --previous: a state JSON file, or a bundle that must
// itself verify (without a previous) against the same trust.
func loadPrevious(path string, trust *trustfile.Trust) (*verify.State, error) {
	raw, err := readRegular(path, maxPreviousSize)
	if err != nil {
		return nil, usageErr("verify: previous: %v", err)
	}
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '{' {
		var st verify.State
		if err := json.Unmarshal(raw, &st); err != nil {
			return nil, usageErr("verify: previous state %s: %v", path, err)
		}
		return &st, nil
	}
	b, err := bundle.Read(bytes.NewReader(raw), bundle.DefaultLimits)
	if err != nil {
		return nil, usageErr("verify: previous bundle %s: %v", path, err)
	}
	rep := verify.Verify(b, trust, nil)
	if !rep.OK() {
		return nil, usageErr("verify: previous bundle %s does not verify itself", path)
	}
	return rep.State, nil
}
