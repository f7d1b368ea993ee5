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
//
// Every step may fail (or the agent stop) and leave its predecessors
// done; each such state is finished by a later Scan or New (see
// recover.go): a result file alone in sub is reused by the retake, a
// sidecar left behind is moved after its data file, a data copy left in
// done/ is swept.
func (w *Watcher) finish(dirfd int, name, sub, id string, result []byte, check stamp) error {
	dir := filepath.Join(w.opts.Dir, sub)
	suffix := resultSuffix(sub)
	subfd, err := openDir(dirfd, sub)
	if err != nil {
		return err
	}
	defer unix.Close(subfd)
	slot, reuse, err := pickSlot(subfd, name, id, suffix)
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
		return w.leftCopy(sub, slot, err)
	}
	if err := moveChecked(dirfd, name+MetaSuffix, subfd, slot+MetaSuffix, check.meta); err != nil {
		return w.leftCopy(sub, slot, err)
	}
	if sub == DoneDir && !w.opts.KeepDonePayloads {
		// The journal holds the payload (encrypted, when the archive has a
		// content key): done/ keeps the receipt and the sidecar only. A
		// crash before this unlink leaves the copy to sweepDone; a
		// failed unlink, to the next Scan.
		if err := sysUnlinkat(subfd, slot); err != nil && !errors.Is(err, unix.ENOENT) {
			return w.leftCopy(sub, slot, fmt.Errorf("spool: drop %s from %s: %w", slot, dir, err))
		}
	}
	if err := sysFsync(subfd, sub); err != nil {
		return fmt.Errorf("spool: sync %s: %w", dir, err)
	}
	if err := sysFsync(dirfd, "."); err != nil {
		return fmt.Errorf("spool: sync %s: %w", w.opts.Dir, err)
	}
	return nil
}

// leftCopy notes that a payload copy may be left at done/slot by a move
// that failed with err after the data file could have moved, for the
// next Scan to drop (dropLeftCopies), and returns err.
func (w *Watcher) leftCopy(sub, slot string, err error) error {
	if sub == DoneDir && !w.opts.KeepDonePayloads && len(w.leftCopies) < maxLeftCopies {
		w.leftCopies[slot] = true
	}
	return err
}

// maxLeftCopies bounds the payload copies remembered for the next Scan;
// beyond it they are left to the sweep at the next start.
const maxLeftCopies = 1024

// dropLeftCopies drops the payload copies failed moves left in done/
// beside their receipt and sidecar (a slot without its sidecar keeps its
// data file until recoverSidecar has moved the sidecar), then syncs done/.
func (w *Watcher) dropLeftCopies() error {
	if len(w.leftCopies) == 0 {
		return nil
	}
	subfd, err := openDir(unix.AT_FDCWD, filepath.Join(w.opts.Dir, DoneDir))
	if err != nil {
		return err
	}
	defer unix.Close(subfd)
	for slot := range w.leftCopies {
		complete, err := present(subfd, slot+MetaSuffix)
		if err != nil {
			return err
		}
		if complete && isRegular(subfd, slot) {
			if err := sysUnlinkat(subfd, slot); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("spool: drop %s from %s: %w", slot, DoneDir, err)
			}
			w.log.Info("dropped a payload copy a failed move left in done/", "file", slot)
		}
		if complete || !isRegular(subfd, slot) {
			delete(w.leftCopies, slot)
		}
	}
	if err := sysFsync(subfd, DoneDir); err != nil {
		return fmt.Errorf("spool: sync %s: %w", DoneDir, err)
	}
	return nil
}

// resultSuffix is the result file suffix of sub.
func resultSuffix(sub string) string {
	if sub == RejectedDir {
		return ErrorSuffix
	}
	return ReceiptSuffix
}

// pickSlot returns the name the pair takes in the directory subfd: NAME,
// else NAME~2, NAME~3, ...: the first whose data file and sidecar are
// free and whose result file is absent (reuse false) or records the same
// export id (reuse true: an earlier attempt wrote it and failed before
// moving). A slot it cannot look at (the disk failed the lookup) is an
// error, never taken for used: the pair would otherwise end under another
// name than the receipt of its first attempt, or the rename would
// replace what is there.
func pickSlot(subfd int, name, id, suffix string) (slot string, reuse bool, err error) {
next:
	for k := 1; k <= maxSlots; k++ {
		cand := slotName(name, k)
		for _, n := range []string{cand, cand + MetaSuffix} {
			there, err := present(subfd, n)
			if err != nil {
				return "", false, err
			}
			if there {
				continue next
			}
		}
		doc, err := readResult(subfd, cand+suffix)
		var bad *badResultError
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return cand, false, nil
		case err == nil && doc.ExportID == id:
			return cand, true, nil
		case err == nil, errors.As(err, &bad):
			// another export's, or no result file: taken
		default:
			return "", false, err
		}
	}
	return "", false, fmt.Errorf("spool: no free name for %s", name)
}

func slotName(name string, k int) string {
	if k == 1 {
		return name
	}
	return fmt.Sprintf("%s~%d", name, k)
}

// resultRef is what the spool reads back from a receipt or error file.
type resultRef struct {
	ExportID string `json:"exportId"`
	Digest   string `json:"digest"` // receipts only
}

// badResultError: the entry in a result file's place is not one (a link,
// not a regular file, not JSON); its slot is taken.
type badResultError struct {
	Name, Reason string
}

func (e *badResultError) Error() string {
	return fmt.Sprintf("spool: %s is no result file: %s", e.Name, e.Reason)
}

// readResult reads a receipt or error file in the directory dirfd
// without following a link. An absent file is fs.ErrNotExist; an entry
// that is no result file is a *badResultError; any other error (the
// disk failed the open or the read) says nothing about the file.
func readResult(dirfd int, name string) (resultRef, error) {
	var d resultRef
	fd, err := sysOpenat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return d, fmt.Errorf("spool: %s: %w", name, fs.ErrNotExist)
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENXIO):
		return d, &badResultError{Name: name, Reason: "not a regular file"}
	case err != nil:
		return d, fmt.Errorf("spool: open %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return d, fmt.Errorf("spool: fstat %s: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return d, &badResultError{Name: name, Reason: "not a regular file"}
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxMetaSize+1))
	if err != nil {
		return d, fmt.Errorf("spool: read %s: %w", name, err)
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, &badResultError{Name: name, Reason: err.Error()}
	}
	return d, nil
}
