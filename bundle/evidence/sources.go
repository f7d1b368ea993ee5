package evidence

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/proof"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// MaxTrustFile bounds a trust file Sources reads.
const MaxTrustFile = 64 << 10

// Sources are what proofs of exports are built from offline: bundle files
// (alone, or folders of *.tar as the archive's import and the removable
// media hold them), the archive's receipts (a folder's
// receipts/*.receipt.json, or other folders), the devices' trust files
// and the archive's key. Nothing is trusted here: the proofs built are
// checked by proof.Verify and Verify. Bundle files are read without
// following a symbolic link, and only their exports are kept in memory.
type Sources struct {
	Bundles  []SourceBundle
	Trust    map[string][]byte // DEVICE.json by device name
	Key      []byte            // the archive's key, PKIX DER
	Policies [][]byte          // the policy.change bodies of every bundle
	PCRAuths [][]byte          // the tpm.pcrs.authorized bodies of every bundle
	receipts map[string][]byte // by device, checkpoint size and root
}

// SourceBundle is one bundle file and the exports it holds.
type SourceBundle struct {
	Path    string
	Digest  string // "sha256:<hex>" of the file
	Exports []proof.Export
	Refused []proof.Refusal // the exports the agent refused
}

// Selected is one export chosen and the bundle file holding it.
type Selected struct {
	Export proof.Export
	Path   string
}

// MissingError is what a proof needs and the sources lack: the archive's
// receipt of a bundle's checkpoint (Bundle is the bundle file), or the
// trust file of Device (Bundle is empty).
type MissingError struct {
	Device, Bundle string
	Size           uint64 // the checkpoint's size, for a receipt
}

func (e *MissingError) Error() string {
	if e.Bundle == "" {
		return fmt.Sprintf("no trust file of device %s", e.Device)
	}
	return fmt.Sprintf("no archive receipt for %s (checkpoint %d of %s)", e.Bundle, e.Size, e.Device)
}

// NewSources are empty sources with the archive's key (PKIX DER).
func NewSources(key []byte) *Sources {
	return &Sources{Trust: map[string][]byte{}, Key: key, receipts: map[string][]byte{}}
}

// AddTrustFile reads a device's trust file (at most MaxTrustFile bytes).
func (s *Sources) AddTrustFile(path string) error {
	raw, err := fsutil.ReadRegular(path, MaxTrustFile)
	if err != nil {
		return fmt.Errorf("trust file: %w", err)
	}
	t, err := trustfile.ParseTrust(raw)
	if err != nil {
		return fmt.Errorf("trust file %s: %w", path, err)
	}
	s.Trust[t.DeviceName()] = raw
	return nil
}

// AddBundles reads the bundle files and folders of *.tar bundles named,
// then the receipts of receiptDirs and of each bundle folder's receipts/
// (when it is a folder).
func (s *Sources) AddBundles(paths, receiptDirs []string) error {
	receiptDirs = slices.Clone(receiptDirs)
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			if err := s.AddBundleFile(p); err != nil {
				return err
			}
			continue
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return err
		}
		found := false
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".tar") {
				if err := s.AddBundleFile(filepath.Join(p, e.Name())); err != nil {
					return err
				}
				found = true
			}
		}
		if !found {
			// Not "export not found": the folder is the wrong one.
			return fmt.Errorf("no bundle (*.tar) in %s", p)
		}
		if rd := filepath.Join(p, "receipts"); !slices.Contains(receiptDirs, rd) {
			if fi, err := os.Lstat(rd); err == nil && fi.IsDir() {
				receiptDirs = append(receiptDirs, rd)
			}
		}
	}
	for _, d := range receiptDirs {
		if err := s.AddReceipts(d); err != nil {
			return err
		}
	}
	return nil
}

// AddBundleFile reads one bundle file (never through a symbolic link)
// and keeps its exports and its policy.change and tpm.pcrs.authorized
// bodies.
func (s *Sources) AddBundleFile(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file (links are not followed)", path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	b, err := bundle.ReadBytes(raw, bundle.DefaultLimits)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	exps, err := proof.Exports(b)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	refused, err := proof.Refusals(b)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	recs, _ := b.Records()
	policies, auths := RecordBodies(recs)
	s.Policies = append(s.Policies, policies...)
	s.PCRAuths = append(s.PCRAuths, auths...)
	s.Bundles = append(s.Bundles, SourceBundle{Path: path, Exports: exps, Refused: refused, Digest: wire.FormatHash(sha256.Sum256(raw))})
	return nil
}

// RecordBodies are the bodies of the policy.change and of the
// tpm.pcrs.authorized records among a bundle's records, in order; records
// that do not parse are passed over (a proof's checks name them).
func RecordBodies(recs [][]byte) (policies, pcrAuths [][]byte) {
	for _, raw := range recs {
		for _, typ := range []string{custody.TypePolicyChange, custody.TypePCRsAuthorized} {
			if !bytes.Contains(raw, []byte(`"type":"`+typ+`"`)) {
				continue
			}
			r, err := custody.ParseRecord(raw)
			if err != nil || r.Type != typ {
				continue
			}
			if typ == custody.TypePolicyChange {
				policies = append(policies, []byte(r.Body))
			} else {
				pcrAuths = append(pcrAuths, []byte(r.Body))
			}
		}
	}
	return policies, pcrAuths
}

// AddReceipts reads the *.receipt.json files of the folder dir (not a
// link); a file that is not a receipt is passed over.
func (s *Sources) AddReceipts(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("receipts: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("receipts: %s is not a folder (links are not followed)", dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("receipts: %w", err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".receipt.json") {
			continue
		}
		raw, err := fsutil.ReadLimited(filepath.Join(dir, e.Name()), archivesig.MaxReceiptSize)
		if err != nil {
			return fmt.Errorf("receipts: %w", err)
		}
		_, r, err := archivesig.ParseReceipt(raw)
		if err != nil {
			continue // not a receipt: verify names what is wrong with what is used
		}
		s.receipts[checkpointKey(r.Device, r.CheckpointSize, r.CheckpointRoot)] = raw
	}
	return nil
}

func checkpointKey(device string, size uint64, root string) string {
	return fmt.Sprintf("%s\x00%d\x00%s", device, size, root)
}

// Find selects one export among all bundles by its id, and by principal
// and device when they are not empty (proof.Select, whose errors it
// returns).
func (s *Sources) Find(id, principal, device string) (Selected, error) {
	var all []proof.Export
	where := map[proof.Export]string{}
	for _, b := range s.Bundles {
		for _, e := range b.Exports {
			all = append(all, e)
			where[e] = b.Path
		}
	}
	e, err := proof.Select(all, id, principal, device)
	if errors.Is(err, proof.ErrNotFound) {
		var refused []proof.Refusal
		for _, b := range s.Bundles {
			refused = append(refused, b.Refused...)
		}
		err = proof.SelectRefused(refused, id, principal, device)
	}
	if err != nil {
		return Selected{Export: e}, err
	}
	return Selected{e, where[e]}, nil
}

// ByTime selects the exports of device journaled at or after from and
// before to.
func (s *Sources) ByTime(device string, from, to time.Time) []Selected {
	var out []Selected
	for _, b := range s.Bundles {
		for _, e := range b.Exports {
			at, err := wire.ParseTime(e.Time)
			if err == nil && e.Device == device && !at.Before(from) && at.Before(to) {
				out = append(out, Selected{e, b.Path})
			}
		}
	}
	return out
}

// Hold is a legal-hold statement of the archive log as ByCase reads it.
type Hold struct {
	Case    string
	Time    string   // the statement's time (wire.FormatTime)
	Release bool     // hold.release, else hold.set
	Bundles []string // the digests of the bundles it names
	Export  string   // the one export held of each bundle; "" for all
}

// ByCase selects the exports legal-hold case caseID holds by the holds
// given: the bundles whose latest statement of that case, in statement
// time order, sets a hold; of those, every export, or only the export the
// hold names.
func (s *Sources) ByCase(caseID string, holds []Hold) []Selected {
	var hs []Hold
	for _, h := range holds {
		if h.Case == caseID {
			hs = append(hs, h)
		}
	}
	slices.SortStableFunc(hs, func(a, b Hold) int { return strings.Compare(a.Time, b.Time) })
	held := map[string]string{} // bundle -> export id held ("" for all)
	for _, h := range hs {
		for _, o := range h.Bundles {
			if h.Release {
				delete(held, o)
			} else {
				held[o] = h.Export
			}
		}
	}
	var out []Selected
	for _, b := range s.Bundles {
		id, ok := held[b.Digest]
		if !ok {
			continue
		}
		for _, e := range b.Exports {
			if id == "" || e.ExportID == id {
				out = append(out, Selected{e, b.Path})
			}
		}
	}
	return out
}

// Input is what proof.Build takes to prove the selected export: its
// bundle file read again, the receipt of the bundle's checkpoint, the
// device's trust file, the archive key and every PCR authorization of
// the sources. A missing receipt or trust file is a *MissingError.
func (s *Sources) Input(sel Selected) (proof.Input, error) {
	e, path := sel.Export, sel.Path
	raw, err := os.ReadFile(path)
	if err != nil {
		return proof.Input{}, err
	}
	b, err := bundle.ReadBytes(raw, bundle.DefaultLimits)
	if err != nil {
		return proof.Input{}, err
	}
	_, st, err := b.Statement()
	if err != nil {
		return proof.Input{}, fmt.Errorf("%s: %w", path, err)
	}
	cp, err := merkle.ParseCheckpoint([]byte(st.Predicate.Checkpoint))
	if err != nil {
		return proof.Input{}, fmt.Errorf("%s: %w", path, err)
	}
	rc, ok := s.receipts[checkpointKey(e.Device, cp.Size, wire.FormatHash(cp.Root))]
	if !ok {
		return proof.Input{}, &MissingError{Device: e.Device, Bundle: path, Size: cp.Size}
	}
	trust, ok := s.Trust[e.Device]
	if !ok {
		return proof.Input{}, &MissingError{Device: e.Device}
	}
	return proof.Input{Bundle: raw, ExportID: e.ExportID, Principal: e.Principal, Trust: trust, Receipt: rc, ArchiveKey: s.Key, PCRAuthorizations: s.PCRAuths}, nil
}
