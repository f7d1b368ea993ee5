package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/edgeseal/edgeseal/agent/agentd"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// custodySources is what `edgeseal proof` and `edgeseal evidence` read
// offline: bundles (files, or folders of *.tar as the archive's import
// and the removable media hold them), the archive's receipts (a folder's
// receipts/*.receipt.json, or --receipts), the devices' trust files and
// the archive's key. Nothing is trusted here: the proofs are checked by
// `edgeseal verify`.
type custodySources struct {
	bundles  []sourceBundle
	receipts map[string][]byte // by device, checkpoint size and root
	trust    map[string][]byte // DEVICE.json by device
	key      []byte            // the archive's key, PKIX DER
	policies [][]byte          // policy.change bodies of every bundle
	pcrAuths [][]byte          // tpm.pcrs.authorized bodies of every bundle
}

// sourceBundle is one bundle file and the exports it holds.
type sourceBundle struct {
	path    string
	digest  string // "sha256:.." of the file
	exports []proof.Export
}

func checkpointKey(device string, size uint64, root string) string {
	return fmt.Sprintf("%s\x00%d\x00%s", device, size, root)
}

// loadSources reads the bundles, receipts and trust files named.
func loadSources(cmd string, bundlePaths, receiptDirs, trustPaths []string, keyPath string) (*custodySources, error) {
	s, err := loadTrustAndKey(cmd, trustPaths, keyPath)
	if err != nil {
		return nil, err
	}
	if len(bundlePaths) == 0 {
		return nil, usageErr("%s: --bundles DIR|FILE is required", cmd)
	}
	return s, s.loadBundles(cmd, bundlePaths, receiptDirs)
}

// loadTrustAndKey reads the trust files and the archive key.
func loadTrustAndKey(cmd string, trustPaths []string, keyPath string) (*custodySources, error) {
	s := &custodySources{receipts: map[string][]byte{}, trust: map[string][]byte{}}
	if keyPath == "" {
		return nil, usageErr("%s: --archive-key PUB is required (the archive key that signed the receipts)", cmd)
	}
	pub, err := agentd.ReadArchiveKey(keyPath)
	if err != nil {
		return nil, usageErr("%s: %v", cmd, err)
	}
	if s.key, err = pkixOf(pub); err != nil {
		return nil, err
	}
	if len(trustPaths) == 0 {
		return nil, usageErr("%s: --trust DEVICE.json is required (repeat it for more devices)", cmd)
	}
	for _, p := range trustPaths {
		raw, err := fsutil.ReadLimited(p, 64<<10)
		if err != nil {
			return nil, usageErr("%s: trust file: %v", cmd, err)
		}
		t, err := trustfile.ParseTrust(raw)
		if err != nil {
			return nil, usageErr("%s: trust file %s: %v", cmd, p, err)
		}
		s.trust[t.DeviceName()] = raw
	}
	return s, nil
}

// loadBundles reads the bundles and the receipts of their folders.
func (s *custodySources) loadBundles(cmd string, bundlePaths, receiptDirs []string) error {
	for _, p := range bundlePaths {
		fi, err := os.Lstat(p)
		if err != nil {
			return usageErr("%s: %v", cmd, err)
		}
		switch {
		case fi.IsDir():
			ents, err := os.ReadDir(p)
			if err != nil {
				return usageErr("%s: %v", cmd, err)
			}
			found := false
			for _, e := range ents {
				if strings.HasSuffix(e.Name(), ".tar") {
					if err := s.addBundle(cmd, filepath.Join(p, e.Name())); err != nil {
						return err
					}
					found = true
				}
			}
			if !found {
				// Not "export not found": the folder is the wrong one.
				return usageErr("%s: no bundle (*.tar) in %s", cmd, p)
			}
			if rd := filepath.Join(p, "receipts"); !slices.Contains(receiptDirs, rd) {
				if fi, err := os.Lstat(rd); err == nil && fi.IsDir() {
					receiptDirs = append(receiptDirs, rd)
				}
			}
		default:
			if err := s.addBundle(cmd, p); err != nil {
				return err
			}
		}
	}
	for _, d := range receiptDirs {
		if err := s.addReceipts(cmd, d); err != nil {
			return err
		}
	}
	return nil
}

// addBundle reads one bundle file (never through a symbolic link) and
// lists its exports and policy.change records.
func (s *custodySources) addBundle(cmd, path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return usageErr("%s: %v", cmd, err)
	}
	if !fi.Mode().IsRegular() {
		return usageErr("%s: %s: not a regular file (links are not followed)", cmd, path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return usageErr("%s: %v", cmd, err)
	}
	b, err := bundle.ReadBytes(raw, bundle.DefaultLimits)
	if err != nil {
		return usageErr("%s: %s: %v", cmd, path, err)
	}
	exps, err := proof.Exports(b)
	if err != nil {
		return usageErr("%s: %s: %v", cmd, path, err)
	}
	recs, _ := b.Records()
	for _, raw := range recs {
		if bytes.Contains(raw, []byte(`"type":"`+custody.TypePolicyChange+`"`)) {
			if r, err := custody.ParseRecord(raw); err == nil && r.Type == custody.TypePolicyChange {
				s.policies = append(s.policies, []byte(r.Body))
			}
		}
		if bytes.Contains(raw, []byte(`"type":"`+custody.TypePCRsAuthorized+`"`)) {
			if r, err := custody.ParseRecord(raw); err == nil && r.Type == custody.TypePCRsAuthorized {
				s.pcrAuths = append(s.pcrAuths, []byte(r.Body))
			}
		}
	}
	s.bundles = append(s.bundles, sourceBundle{path: path, exports: exps, digest: wire.FormatHash(sha256.Sum256(raw))})
	return nil
}

// addReceipts reads the *.receipt.json files of dir.
func (s *custodySources) addReceipts(cmd, dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return usageErr("%s: receipts: %v", cmd, err)
	}
	if !fi.IsDir() {
		return usageErr("%s: receipts: %s is not a folder (links are not followed)", cmd, dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return usageErr("%s: receipts: %v", cmd, err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".receipt.json") {
			continue
		}
		raw, err := fsutil.ReadLimited(filepath.Join(dir, e.Name()), archivesig.MaxReceiptSize)
		if err != nil {
			return usageErr("%s: receipts: %v", cmd, err)
		}
		_, r, err := archivesig.ParseReceipt(raw)
		if err != nil {
			continue // not a receipt: verify names what is wrong with what is used
		}
		s.receipts[checkpointKey(r.Device, r.CheckpointSize, r.CheckpointRoot)] = raw
	}
	return nil
}

// find selects one export among all bundles (see proof.Select).
func (s *custodySources) find(id, principal, device string) (proof.Export, string, error) {
	var all []proof.Export
	where := map[proof.Export]string{}
	for _, b := range s.bundles {
		for _, e := range b.exports {
			all = append(all, e)
			where[e] = b.path
		}
	}
	e, err := proof.Select(all, id, principal, device)
	if err != nil {
		return e, "", err
	}
	return e, where[e], nil
}

// build makes the proof of export e of the bundle at path.
func (s *custodySources) build(cmd string, e proof.Export, path string) (*proof.Proof, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, usageErr("%s: %v", cmd, err)
	}
	b, err := bundle.ReadBytes(raw, bundle.DefaultLimits)
	if err != nil {
		return nil, usageErr("%s: %v", cmd, err)
	}
	_, st, err := b.Statement()
	if err != nil {
		return nil, usageErr("%s: %s: %v", cmd, path, err)
	}
	cp, err := merkle.ParseCheckpoint([]byte(st.Predicate.Checkpoint))
	if err != nil {
		return nil, usageErr("%s: %s: %v", cmd, path, err)
	}
	rc, ok := s.receipts[checkpointKey(e.Device, cp.Size, wire.FormatHash(cp.Root))]
	if !ok {
		return nil, usageErr("%s: no archive receipt for %s (checkpoint %d of %s): give the folder of its receipts with --receipts", cmd, path, cp.Size, e.Device)
	}
	trust, ok := s.trust[e.Device]
	if !ok {
		return nil, usageErr("%s: no trust file of device %s: add --trust", cmd, e.Device)
	}
	p, err := proof.Build(proof.Input{Bundle: raw, ExportID: e.ExportID, Principal: e.Principal, Trust: trust, Receipt: rc, ArchiveKey: s.key, PCRAuthorizations: s.pcrAuths})
	if err != nil {
		return nil, &exitError{code: 1, err: fmt.Errorf("%s: %w", cmd, err)}
	}
	return p, nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
