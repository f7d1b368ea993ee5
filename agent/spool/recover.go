package spool

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/edgeseal/edgeseal/bundle/wire"
	"golang.org/x/sys/unix"
)

// Recovery of a move that failed or was cut short. finish makes these
// steps, and a failing disk (or a stop) can end it after any of them:
//
//  1. the result file: a temp file in done/ (rejected/), fsync, renameat
//     to NAME.receipt.json (NAME.error.json), fsync of done/;
//  2. renameat of the data file into done/;
//  3. renameat of the sidecar into done/;
//  4. unlink of the data file from done/ (done/ without KeepDonePayloads);
//  5. fsync of done/, then of the spool folder.
//
// What each leaves, and what finishes it:
//
//   - a temp file: removed by New (sweepTemps); the pair is still in the
//     spool and is taken again.
//   - the result file with the pair in the spool: the pair is taken again,
//     the journal answers its id with the original receipt, and the slot
//     whose result file records that id is reused (pickSlot), the receipt
//     kept as written.
//   - the data file in done/ with the result file, the sidecar in the
//     spool: the sidecar is moved after it at every Scan and at New
//     (recoverSidecar), before New sweeps payload copies.
//   - all moved, the data copy still in done/: swept by New (sweepDone).
//   - all moved, a directory sync failed: nothing is left to move; the
//     next move syncs the directories again.
//
// A sidecar alone in the spool is also the normal state of a pair whose
// data file is not there yet: it is moved only into a slot that is its
// pair's (halfMovedSlot).

// recoverAll finishes, at start, every move whose sidecar was left in
// the spool folder. Errors are logged: the polls try again.
func (w *Watcher) recoverAll() {
	ents, err := os.ReadDir(w.opts.Dir)
	if err != nil {
		w.log.Warn("spool: recovery at start skipped", "err", err)
		return
	}
	present := make(map[string]bool, len(ents))
	for _, e := range ents {
		present[e.Name()] = true
	}
	for _, e := range ents {
		base, ok := strings.CutSuffix(e.Name(), MetaSuffix)
		if !ok || base == "" || ignored(e.Name()) || present[base] {
			continue
		}
		if err := w.recoverSidecar(base); err != nil {
			w.log.Warn("spool: could not finish an interrupted move at start; the polls retry", "file", e.Name(), "err", err)
		}
	}
}

// recoverSidecar finishes a move that stopped after the data file went:
// the sidecar base+MetaSuffix is alone in the spool folder while a slot
// of done/ or rejected/ holds the pair's result file but no sidecar. It
// does nothing when no slot is the pair's.
func (w *Watcher) recoverSidecar(base string) error {
	dirfd, err := openDir(unix.AT_FDCWD, w.opts.Dir)
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	// The sidecar is read only when a slot could be its pair's: a sidecar
	// waiting for its data file is looked at every poll.
	read, id := false, ""
	sidecar := func() string {
		if !read {
			read, id = true, sidecarID(dirfd, base+MetaSuffix)
		}
		return id
	}
	for _, sub := range []string{DoneDir, RejectedDir} {
		moved, err := w.recoverInto(dirfd, sub, base, sidecar)
		if err != nil || moved {
			return err
		}
	}
	return nil
}

// recoverInto moves the sidecar of base into its pair's slot of sub, if
// sub has one, drops the data copy from done/ and syncs both folders.
func (w *Watcher) recoverInto(dirfd int, sub, base string, sidecar func() string) (bool, error) {
	subfd, err := openDir(dirfd, sub)
	if err != nil {
		return false, err
	}
	defer unix.Close(subfd)
	slot, err := halfMovedSlot(subfd, sub, base, sidecar)
	if err != nil || slot == "" {
		return false, err
	}
	meta := base + MetaSuffix
	if err := sysRenameat(dirfd, meta, subfd, slot+MetaSuffix); err != nil {
		return false, fmt.Errorf("spool: finish move of %s: %w", meta, err)
	}
	w.log.Warn("finished moving a sidecar a failed or interrupted move left behind", "file", meta, "to", filepath.Join(sub, slot+MetaSuffix))
	if sub == DoneDir && !w.opts.KeepDonePayloads && isRegular(subfd, slot) {
		if err := sysUnlinkat(subfd, slot); err != nil && !errors.Is(err, unix.ENOENT) {
			return true, fmt.Errorf("spool: drop %s from %s: %w", slot, sub, err)
		}
	}
	if err := sysFsync(subfd, sub); err != nil {
		return true, fmt.Errorf("spool: sync %s: %w", sub, err)
	}
	if err := sysFsync(dirfd, "."); err != nil {
		return true, fmt.Errorf("spool: sync %s: %w", w.opts.Dir, err)
	}
	return true, nil
}

// halfMovedSlot finds the slot of sub (base, base~2, ...) that holds the
// result file of the pair whose sidecar was left in the spool, and no
// sidecar; sidecar returns the export id the sidecar names ("" for none,
// or when it is no regular file: it is never read through a link). The
// slot is the pair's when
//
//   - the sidecar names an export id and the result file records it;
//   - else the slot still holds the data file (the move stopped between
//     the two renames);
//   - else (done/, the data copy already dropped) the receipt's export id
//     is the one derived from base and the receipt's payload digest.
//
// "" when none is.
func halfMovedSlot(subfd int, sub, base string, sidecar func() string) (string, error) {
	suffix := resultSuffix(sub)
	for k := 1; k <= maxSlots; k++ {
		cand := slotName(base, k)
		data, err := present(subfd, cand)
		if err != nil {
			return "", err
		}
		res, err := present(subfd, cand+suffix)
		if err != nil {
			return "", err
		}
		if !data && !res {
			return "", nil // the slots in use end here
		}
		if !res {
			continue
		}
		meta, err := present(subfd, cand+MetaSuffix)
		if err != nil {
			return "", err
		}
		if meta {
			continue
		}
		doc, err := readResult(subfd, cand+suffix)
		var bad *badResultError
		switch {
		case errors.As(err, &bad), errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return "", err
		}
		switch id := sidecar(); {
		case id != "":
			if doc.ExportID == id {
				return cand, nil
			}
		case data:
			return cand, nil
		case sub == DoneDir && derivedFrom(base, doc):
			return cand, nil
		}
	}
	return "", nil
}

// derivedFrom reports whether a receipt's export id is the one derived
// from the file name base and the receipt's payload digest.
func derivedFrom(base string, doc resultRef) bool {
	d, err := wire.ParseHash(doc.Digest)
	return err == nil && deriveID(base, d) == doc.ExportID
}

// sidecarID is the export id the sidecar name in dirfd names: "" when it
// names none, or is no regular file with one link, or does not decode.
func sidecarID(dirfd int, name string) string {
	fd, err := sysOpenat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return ""
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxMetaSize+1))
	if err != nil {
		return ""
	}
	m, err := DecodeMeta(b)
	if err != nil {
		return ""
	}
	return m.ID
}

// sweepDone deletes the data files done/ still holds beside a receipt
// (a stop between the move and the unlink, or a folder used before
// payload copies were dropped). New runs it after recoverAll, so a slot
// whose sidecar is still in the spool has it by then; a slot whose
// sidecar could not be moved yet keeps its receipt, which halfMovedSlot
// matches by export id. Links and other non-regular entries are left
// alone.
func sweepDone(dir string) (int, error) {
	return removeDone(dir, "sweep done", func(string) bool { return true })
}

// sweepTemps deletes the temp files of result files (".NAME.receipt.json.tmp-PID",
// ".NAME.error.json.tmp-PID") a stop during their write left in done/ and
// rejected/. Only regular files are removed.
func sweepTemps(dir string) (int, error) {
	n := 0
	var errs []error
	for _, sub := range []string{DoneDir, RejectedDir} {
		d := filepath.Join(dir, sub)
		ents, err := os.ReadDir(d)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("spool: sweep %s: %w", sub, err))
			}
			continue
		}
		for _, e := range ents {
			if !e.Type().IsRegular() || !isResultTemp(e.Name()) {
				continue
			}
			if err := os.Remove(filepath.Join(d, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("spool: sweep %s: %w", e.Name(), err))
				continue
			}
			n++
		}
	}
	return n, errors.Join(errs...)
}

// isResultTemp: the name writeAt gives a result file's temp file.
func isResultTemp(name string) bool {
	rest, ok := strings.CutPrefix(name, ".")
	if !ok {
		return false
	}
	i := strings.LastIndex(rest, ".tmp-")
	if i < 0 {
		return false
	}
	pid := rest[i+len(".tmp-"):]
	if pid == "" || strings.Trim(pid, "0123456789") != "" {
		return false
	}
	res := rest[:i]
	return strings.HasSuffix(res, ReceiptSuffix) || strings.HasSuffix(res, ErrorSuffix)
}
