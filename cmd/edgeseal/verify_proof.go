package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/edgeseal/edgeseal/agent/agentd"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// Input kinds of `edgeseal verify` besides bundles.
const (
	kindBundle = iota
	kindProof
	kindPack
)

// inputKind tells a proof document (JSON of type edgeseal.export-proof)
// and an evidence pack folder (a bag whose bag-info names edgeseal
// evidence) from bundles.
func inputKind(path string) int {
	fi, err := os.Lstat(path)
	if err != nil {
		return kindBundle
	}
	if fi.IsDir() {
		info, err := fsutil.ReadLimited(filepath.Join(path, "bag-info.txt"), 4096)
		if err == nil && bytes.HasPrefix(info, []byte("Bag-Software-Agent: "+evidence.SoftwareAgent+"\n")) {
			return kindPack
		}
		return kindBundle
	}
	if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
		return kindBundle // loadBundles says what is wrong with it
	}
	f, err := os.Open(path)
	if err != nil {
		return kindBundle
	}
	defer f.Close()
	head := make([]byte, 64)
	n, _ := io.ReadFull(f, head)
	if bytes.HasPrefix(head[:n], []byte(`{"v":1,"type":"`+proof.Type+`"`)) {
		return kindProof
	}
	return kindBundle
}

// proofResult is one proof's or pack's outcome in --json output.
type proofResult struct {
	Path     string                  `json:"path"`
	Kind     string                  `json:"kind"` // "proof" or "pack"
	Verified bool                    `json:"verified"`
	Checks   []verify.Check          `json:"checks"`
	Exports  []evidence.ExportReport `json:"exports,omitempty"`
}

// verifyProofsAndPacks verifies proof documents and evidence packs, each
// on its own; the trust file and archive key, when given, are pinned.
// Exit 0 all verified, 1 one was not, 2 usage or unreadable input.
func verifyProofsAndPacks(paths []string, trustPath, keyPath string, asJSON, quiet bool, stdout io.Writer) error {
	var opts proof.Options
	if trustPath != "" {
		raw, err := readRegular(trustPath, 64<<10)
		if err != nil {
			return usageErr("verify: trust file: %v", err)
		}
		opts.Trust = raw
	}
	if keyPath != "" {
		pub, err := agentd.ReadArchiveKey(keyPath)
		if err != nil {
			return usageErr("verify: --archive-key: %v", err)
		}
		opts.ArchiveKey = pub
	}
	var results []proofResult
	failed := 0
	for _, p := range paths {
		var res proofResult
		switch inputKind(p) {
		case kindProof:
			raw, err := fsutil.ReadLimited(p, proof.MaxSize)
			if err != nil {
				return usageErr("verify: %v", err)
			}
			pr, err := proof.Parse(raw)
			if err != nil {
				return usageErr("verify: %s: %v", p, err)
			}
			rep := proof.Verify(pr, opts)
			res = proofResult{Path: p, Kind: "proof", Verified: rep.OK(), Checks: rep.Checks}
			if !asJSON && (!quiet || !rep.OK()) {
				printReport(stdout, fmt.Sprintf("%s (proof of export %s by %s on %s)", p, pr.ExportID, pr.Principal, pr.Device), rep)
			}
		case kindPack:
			pack, err := evidence.ReadDir(p, evidence.DefaultLimits)
			if err != nil {
				return usageErr("verify: %v", err)
			}
			rep := evidence.Verify(pack, opts)
			res = proofResult{Path: p, Kind: "pack", Verified: rep.OK(), Checks: rep.Checks, Exports: rep.Exports}
			if !asJSON && (!quiet || !rep.OK()) {
				printPack(stdout, p, rep)
			}
		default:
			return usageErr("verify: %s is a bundle: verify bundles apart from proofs and packs", p)
		}
		if !res.Verified {
			failed++
		}
		results = append(results, res)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "summary: %d proof(s) and pack(s): %d verified, %d not verified\n", len(paths), len(paths)-failed, failed)
	}
	if failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("verify: %d of %d not verified", failed, len(paths))}
	}
	return nil
}

// printPack prints a pack's own checks, then each export's proof checks.
func printPack(w io.Writer, path string, rep *evidence.Report) {
	printReport(w, path+" (evidence pack)", &verify.Report{Checks: rep.Checks})
	for _, e := range rep.Exports {
		printReport(w, fmt.Sprintf("%s/%s (export %s)", path, e.Dir, e.ExportID), e.Report)
	}
	if rep.OK() {
		fmt.Fprintf(w, "%s: PACK VERIFIED\n", path)
	} else {
		fmt.Fprintf(w, "%s: PACK NOT VERIFIED\n", path)
	}
}
