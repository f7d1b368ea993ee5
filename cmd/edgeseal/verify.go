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
)

// verifyResult is one bundle's outcome in --json output.
type verifyResult struct {
	Bundle   string         `json:"bundle"`
	Verified bool           `json:"verified"`
	Checks   []bundle.Check `json:"checks"`
	State    *bundle.State  `json:"state,omitempty"`
	// Keys are the bundle's signing-key records (created, rotated, revoked).
	Keys []bundle.KeyEvent `json:"keys,omitempty"`
}

// cmdVerify verifies bundles offline against a device trust file. Several
// bundles are verified in order as one chain, each against the state the one
// before it left. Exit 0 verified, 1 not verified, 2 usage or unreadable
// input.
func cmdVerify(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "receipt" {
		return cmdVerifyReceipt(ctx, args[1:], stdout)
	}
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	trustPath := fs.String("trust", "", "device trust file (DEVICE.json) written by 'edgeseal tpm enroll'")
	prevPath := fs.String("previous", "", "the previous bundle of this device, or a state file written by --state-out")
	stateOut := fs.String("state-out", "", "write the state after the last bundle here (for the next --previous)")
	asJSON := fs.Bool("json", false, "print machine-readable JSON")
	paths, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return usageErr("verify: no bundle given")
	}
	if *trustPath == "" {
		return usageErr("verify: --trust DEVICE.json is required")
	}
	raw, err := os.ReadFile(*trustPath)
	if err != nil {
		return usageErr("verify: trust file: %v", err)
	}
	trust, err := bundle.ParseTrust(raw)
	if err != nil {
		return usageErr("verify: trust file %s: %v", *trustPath, err)
	}
	var prev *bundle.State
	if *prevPath != "" {
		if prev, err = loadPrevious(*prevPath, trust); err != nil {
			return err
		}
	}
	var results []verifyResult
	var history []bundle.KeyEvent // of the verified bundles
	allOK := true
	for _, p := range paths {
		b, err := readBundle(p)
		if err != nil {
			return usageErr("verify: %v", err)
		}
		rep := bundle.Verify(b, trust, prev)
		res := verifyResult{Bundle: p, Verified: rep.OK(), Checks: rep.Checks, State: rep.State, Keys: rep.Keys}
		results = append(results, res)
		if !rep.OK() {
			allOK = false
		} else {
			prev = rep.State
			history = append(history, rep.Keys...)
		}
		if !*asJSON {
			printReport(stdout, p, rep)
		}
	}
	if !*asJSON {
		printKeyHistory(stdout, trust, history, prev)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return err
		}
	}
	if *stateOut != "" && allOK && prev != nil {
		data, err := json.MarshalIndent(prev, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*stateOut, append(data, '\n'), 0o644); err != nil {
			return usageErr("verify: state-out: %v", err)
		}
	}
	if !allOK {
		return &exitError{code: 1, err: fmt.Errorf("not verified")}
	}
	return nil
}

func readBundle(path string) (*bundle.Bundle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := bundle.Read(f, bundle.DefaultLimits)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// loadPrevious reads --previous: a state JSON file, or a bundle that must
// itself verify (without a previous) against the same trust.
func loadPrevious(path string, trust *bundle.Trust) (*bundle.State, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, usageErr("verify: previous: %v", err)
	}
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '{' {
		var st bundle.State
		if err := json.Unmarshal(raw, &st); err != nil {
			return nil, usageErr("verify: previous state %s: %v", path, err)
		}
		return &st, nil
	}
	b, err := bundle.Read(bytes.NewReader(raw), bundle.DefaultLimits)
	if err != nil {
		return nil, usageErr("verify: previous bundle %s: %v", path, err)
	}
	rep := bundle.Verify(b, trust, nil)
	if !rep.OK() {
		return nil, usageErr("verify: previous bundle %s does not verify itself", path)
	}
	return rep.State, nil
}

func printReport(w io.Writer, path string, rep *bundle.Report) {
	fmt.Fprintf(w, "%s\n", path)
	for _, c := range rep.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		if c.Detail != "" {
			fmt.Fprintf(w, "  %s %-22s %s\n", mark, c.Name, c.Detail)
		} else {
			fmt.Fprintf(w, "  %s %s\n", mark, c.Name)
		}
	}
	if rep.OK() {
		fmt.Fprintf(w, "  VERIFIED\n")
	} else {
		fmt.Fprintf(w, "  NOT VERIFIED\n")
	}
}
