package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/edgeseal/edgeseal/agent/agentd"
	"github.com/edgeseal/edgeseal/bundle/evidence"
	"github.com/edgeseal/edgeseal/bundle/proof"
)

// loadSources reads the trust files, the archive key, the bundles and
// the receipts named (evidence.Sources).
func loadSources(cmd string, bundlePaths, receiptDirs, trustPaths []string, keyPath string) (*evidence.Sources, error) {
	s, err := loadTrustAndKey(cmd, trustPaths, keyPath)
	if err != nil {
		return nil, err
	}
	if len(bundlePaths) == 0 {
		return nil, usageErr("%s: --bundles DIR|FILE is required", cmd)
	}
	if err := s.AddBundles(bundlePaths, receiptDirs); err != nil {
		return nil, usageErr("%s: %v", cmd, err)
	}
	return s, nil
}

// loadTrustAndKey reads the trust files and the archive key.
func loadTrustAndKey(cmd string, trustPaths []string, keyPath string) (*evidence.Sources, error) {
	if keyPath == "" {
		return nil, usageErr("%s: --archive-key PUB is required (the archive key that signed the receipts)", cmd)
	}
	pub, err := agentd.ReadArchiveKey(keyPath)
	if err != nil {
		return nil, usageErr("%s: --archive-key: %v", cmd, err)
	}
	key, err := pkixOf(pub)
	if err != nil {
		return nil, err
	}
	if len(trustPaths) == 0 {
		return nil, usageErr("%s: --trust DEVICE.json is required (repeat it for more devices)", cmd)
	}
	s := evidence.NewSources(key)
	for _, p := range trustPaths {
		if err := s.AddTrustFile(p); err != nil {
			return nil, usageErr("%s: %v", cmd, err)
		}
	}
	return s, nil
}

// buildProof makes the proof of the selected export: a missing or
// unreadable input is a usage error, an export that cannot be proven
// exits 1.
func buildProof(cmd string, s *evidence.Sources, sel evidence.Selected) (*proof.Proof, error) {
	in, err := s.Input(sel)
	var me *evidence.MissingError
	switch {
	case errors.As(err, &me) && me.Bundle != "":
		return nil, usageErr("%s: %v: give the folder of its receipts with --receipts", cmd, err)
	case errors.As(err, &me):
		return nil, usageErr("%s: %v: add --trust", cmd, err)
	case err != nil:
		return nil, usageErr("%s: %v", cmd, err)
	}
	p, err := proof.Build(in)
	if err != nil {
		return nil, &exitError{code: 1, err: fmt.Errorf("%s: %w", cmd, err)}
	}
	return p, nil
}

// custodyFlags are the flags `edgeseal proof` and `edgeseal evidence`
// share: the bundles, receipts, trust files and archive key read offline,
// or the archive's read API asked instead.
type custodyFlags struct {
	bundles, receipts, trusts              stringList
	keyPath, archiveURL, tokenFile, caFile string
}

// newCustodyFlags is the flag set of cmd with the shared flags, given
// the usage texts that differ between the commands.
func newCustodyFlags(cmd, receiptsUsage, trustUsage, archiveUsage string) (*flag.FlagSet, *custodyFlags) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	c := &custodyFlags{}
	fs.Var(&c.bundles, "bundles", "a bundle file or a folder of *.tar bundles (and receipts/); repeatable (required)")
	fs.Var(&c.receipts, "receipts", receiptsUsage)
	fs.Var(&c.trusts, "trust", trustUsage)
	fs.StringVar(&c.keyPath, "archive-key", "", "the archive's Ed25519 public key (PEM) that signed the receipts (required)")
	fs.StringVar(&c.archiveURL, "archive", "", archiveUsage)
	fs.StringVar(&c.tokenFile, "token-file", "", "with --archive: a file holding the API session token (POST /v1/session)")
	fs.StringVar(&c.caFile, "cacert", "", "with --archive: the CA certificate (PEM) of the API's TLS certificate")
	return fs, c
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
