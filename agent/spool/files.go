package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/edgeseal/edgeseal/internal/fsutil"
	"golang.org/x/sys/unix"
)

// maxSlots bounds the NAME~k suffixes tried in done/ or rejected/.
const maxSlots = 100000

// receiptDoc is the content of NAME.receipt.json.
type receiptDoc struct {
	Receipt
	File string `json:"file"`
	Time string `json:"time"`
}

// errorDoc is the content of NAME.error.json.
type errorDoc struct {
	ExportID  string        `json:"exportId"`
	File      string        `json:"file"`
	Time      string        `json:"time"`
	Error     errorBody     `json:"error"`
	Journaled *journaledRef `json:"journaled,omitempty"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

type journaledRef struct {
	Seq  uint64 `json:"seq"`
	Leaf string `json:"leaf"`
}

func stamp3339(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z07:00") }

func receiptFile(name string, rc Receipt, now time.Time) []byte {
	b, _ := json.MarshalIndent(receiptDoc{Receipt: rc, File: name, Time: stamp3339(now)}, "", "  ")
	return append(b, '\n')
}

func errorFile(name, id string, rej *RejectError, now time.Time) []byte {
	d := errorDoc{ExportID: id, File: name, Time: stamp3339(now),
		Error: errorBody{Code: rej.Code, Message: rej.Message, Field: rej.Field}}
	if rej.Journaled {
		d.Journaled = &journaledRef{Seq: rej.Seq, Leaf: rej.Leaf}
	}
	b, _ := json.MarshalIndent(d, "", "  ")
	return append(b, '\n')
}

// finish writes the result file durably, then moves the pair into sub
// (done/ or rejected/) with renameat relative to the spool folder's
// descriptor dirfd and syncs both directories. When check holds what was
// read, each moved inode must be that one (*SwappedError otherwise).
func (w *Watcher) finish(dirfd int, name, sub, id string, result []byte, check stamp) error {
	dir := filepath.Join(w.opts.Dir, sub)
	suffix := ReceiptSuffix
	if sub == RejectedDir {
		suffix = ErrorSuffix
	}
	subfd, err := openDir(dirfd, sub)
	if err != nil {
		return err
	}
	defer unix.Close(subfd)
	slot, reuse, err := pickSlot(dir, name, id, suffix)
	if err != nil {
		return err
	}
	// A receipt left by an attempt that crashed before the move is the
	// original one: keep it. An error file is replaced by the latest.
	if !reuse || suffix == ErrorSuffix {
		if err := writeAt(subfd, slot+suffix, result, 0o640); err != nil {
			return err
		}
	}
	if err := moveChecked(dirfd, name, subfd, slot, check.data); err != nil {
		return err
	}
	if err := moveChecked(dirfd, name+MetaSuffix, subfd, slot+MetaSuffix, check.meta); err != nil {
		return err
	}
	if sub == DoneDir && !w.opts.KeepDonePayloads {
		// The journal holds the payload (encrypted, when the archive has a
		// content key): done/ keeps the receipt and the sidecar only. A
		// crash before this unlink leaves the copy to sweepDone.
		if err := unix.Unlinkat(subfd, slot, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("spool: drop %s from %s: %w", slot, dir, err)
		}
	}
	if err := unix.Fsync(subfd); err != nil {
		return fmt.Errorf("spool: sync %s: %w", dir, err)
	}
	if err := unix.Fsync(dirfd); err != nil {
		return fmt.Errorf("spool: sync %s: %w", w.opts.Dir, err)
	}
	return nil
}

// sweepDone deletes the data files done/ still holds beside a receipt
// (a crash between the move and the unlink, or a folder used before
// payload copies were dropped). Links and other non-regular entries are
// left alone.
func sweepDone(dir string) (int, error) {
	return removeDone(dir, "sweep done", func(string) bool { return true })
}

// pickSlot returns the name the pair takes in dir: NAME, else NAME~2,
// NAME~3, ...: the first whose data file and sidecar are free and whose
// result file is absent (reuse false) or records the same export id
// (reuse true: an earlier attempt wrote it and crashed before moving).
func pickSlot(dir, name, id, suffix string) (slot string, reuse bool, err error) {
	for k := 1; k <= maxSlots; k++ {
		cand := slotName(name, k)
		if exists(filepath.Join(dir, cand)) || exists(filepath.Join(dir, cand+MetaSuffix)) {
			continue
		}
		got, err := resultID(filepath.Join(dir, cand+suffix))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return cand, false, nil
		case err == nil && got == id:
			return cand, true, nil
		}
	}
	return "", false, fmt.Errorf("spool: no free name for %s in %s", name, dir)
}

func slotName(name string, k int) string {
	if k == 1 {
		return name
	}
	return fmt.Sprintf("%s~%d", name, k)
}

// recoverSidecar finishes a move a crash interrupted: the sidecar base +
// MetaSuffix is alone in the spool folder while a slot in done/ or
// rejected/ holds a data file and result file but no sidecar.
func (w *Watcher) recoverSidecar(base string) error {
	for _, sub := range []string{DoneDir, RejectedDir} {
		dir := filepath.Join(w.opts.Dir, sub)
		suffix := ReceiptSuffix
		if sub == RejectedDir {
			suffix = ErrorSuffix
		}
		for k := 1; k <= maxSlots; k++ {
			cand := filepath.Join(dir, slotName(base, k))
			data, meta, res := exists(cand), exists(cand+MetaSuffix), exists(cand+suffix)
			if !data && !res {
				break
			}
			if !data || meta || !res {
				continue
			}
			if err := os.Rename(filepath.Join(w.opts.Dir, base+MetaSuffix), cand+MetaSuffix); err != nil {
				return fmt.Errorf("spool: finish move of %s: %w", base+MetaSuffix, err)
			}
			w.log.Warn("finished moving a sidecar left behind by a crash", "file", base+MetaSuffix, "to", cand+MetaSuffix)
			if sub == DoneDir && !w.opts.KeepDonePayloads {
				if fi, err := os.Lstat(cand); err == nil && fi.Mode().IsRegular() {
					if err := os.Remove(cand); err != nil {
						return fmt.Errorf("spool: drop %s: %w", cand, err)
					}
				}
			}
			if err := fsutil.SyncDir(dir); err != nil {
				return fmt.Errorf("spool: %w", err)
			}
			if err := fsutil.SyncDir(w.opts.Dir); err != nil {
				return fmt.Errorf("spool: %w", err)
			}
			return nil
		}
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// resultID reads the exportId of a receipt or error file.
func resultID(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var d struct {
		ExportID string `json:"exportId"`
	}
	if err := json.NewDecoder(io.LimitReader(f, MaxMetaSize)).Decode(&d); err != nil {
		return "", fmt.Errorf("spool: %s: %w", path, err)
	}
	return d.ExportID, nil
}
