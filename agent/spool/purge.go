package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// PurgeDone deletes from dir's done/ folder the data files whose receipt
// names a digest in digests ("sha256:<hex>"): the journal purged those
// payloads (local retention), so the spool's copy goes too. The sidecar
// and the receipt stay. It returns how many files it removed. Links and
// other non-regular entries are left alone.
func PurgeDone(dir string, digests map[string]bool) (int, error) {
	return removeDone(dir, "purge", func(receipt string) bool {
		d, err := receiptDigest(receipt)
		return err == nil && digests[d]
	})
}

// removeDone deletes from dir's done/ folder the regular data files
// beside a regular receipt file for which want (given the receipt's path)
// is true, and returns how many it removed; op names the work in errors.
// Links and other non-regular entries are left alone.
func removeDone(dir, op string, want func(receipt string) bool) (int, error) {
	done := filepath.Join(dir, DoneDir)
	ents, err := os.ReadDir(done)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("spool: %s: %w", op, err)
	}
	n := 0
	var errs []error
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ReceiptSuffix)
		if !ok || !e.Type().IsRegular() || !want(filepath.Join(done, e.Name())) {
			continue
		}
		data := filepath.Join(done, name)
		fi, err := os.Lstat(data)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if err := os.Remove(data); err != nil {
			errs = append(errs, fmt.Errorf("spool: %s %s: %w", op, name, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// receiptDigest reads the payload digest a receipt file names.
func receiptDigest(path string) (string, error) {
	f, err := os.Open(path) // the entry was seen a regular file; done/ is the agent's own
	if err != nil {
		return "", err
	}
	defer f.Close()
	var d struct {
		Digest string `json:"digest"`
	}
	if err := json.NewDecoder(io.LimitReader(f, MaxMetaSize)).Decode(&d); err != nil {
		return "", err
	}
	return d.Digest, nil
}
