package spool

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"mime"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/agent/config"
	"golang.org/x/sys/unix"
)

// Subfolders of the spool folder.
const (
	DoneDir     = "done"
	RejectedDir = "rejected"
)

// Result file suffixes, beside the moved pair.
const (
	ReceiptSuffix = ".receipt.json"
	ErrorSuffix   = ".error.json"
)

// maxBackoff caps the wait between retries after a transient error.
const maxBackoff = time.Minute

// Options configure a Watcher.
type Options struct {
	Dir string // the spool folder; created if missing, with done/ and rejected/
	// Poll is the polling interval; default config.DefaultSpoolPoll. A
	// pair is taken at the second poll that sees it unchanged.
	Poll time.Duration
	// Principal is who spool files are trusted as; required, and it must
	// hold the exporter role. Sidecars must name it.
	Principal *config.Principal
	Ingester  Ingester // required
	// MaxSize is the largest data file taken; larger ones are rejected
	// unread. Default config.DefaultMaxBody.
	MaxSize int64
	Logger  *slog.Logger
	Now     func() time.Time // time in result files; time.Now when nil
	// Mode, when not 0, is set on the spool folder at start (permission
	// bits; the owner needs rwx, others never w). 0 leaves an existing
	// folder as it is and creates a missing one 0750.
	Mode fs.FileMode
	// Group, when set, is the group (name or numeric id) the spool folder
	// is given at start: with Mode 0770 (or 2770) the tools of that
	// group may drop files.
	Group string
	// KeepDonePayloads keeps each ingested data file in done/ beside its
	// receipt. By default (false) done/ keeps the receipt and the sidecar
	// only: the payload lives in the journal alone (encrypted at rest, and
	// sealed to the archive's content key when it has one), so no
	// plaintext copy is left on the site.
	KeepDonePayloads bool
}

// ConfigError is a bad Options field.
type ConfigError struct {
	Field, Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("spool: options: %s: %s", e.Field, e.Reason)
}

// Watcher polls the spool folder. Start runs it; Scan is one poll. A
// Watcher is not meant for concurrent Scans: Start is its only caller in
// the daemon.
type Watcher struct {
	opts Options
	log  *slog.Logger
	wake chan struct{}
	seen map[string]stamp // data file name -> what the last poll saw
	// leftCopies are done/ slots whose payload copy a failed move may
	// have left (see dropLeftCopies).
	leftCopies map[string]bool
}

// stamp is what a poll saw of a pair.
type stamp struct {
	data, meta fileID
}

// New checks opts and creates the folders.
func New(opts Options) (*Watcher, error) {
	switch {
	case opts.Dir == "":
		return nil, &ConfigError{Field: "Dir", Reason: "required"}
	case opts.Ingester == nil:
		return nil, &ConfigError{Field: "Ingester", Reason: "required"}
	case opts.Principal == nil:
		return nil, &ConfigError{Field: "Principal", Reason: "required: the principal spool files are trusted as"}
	case !opts.Principal.Has(config.RoleExporter):
		return nil, &ConfigError{Field: "Principal", Reason: fmt.Sprintf("principal %q lacks the exporter role", opts.Principal.Name)}
	}
	if opts.Poll <= 0 {
		opts.Poll = config.DefaultSpoolPoll
	}
	if opts.MaxSize <= 0 {
		opts.MaxSize = int64(config.DefaultMaxBody)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := prepareDir(opts); err != nil {
		return nil, err
	}
	w := &Watcher{
		opts:       opts,
		log:        opts.Logger.With("component", "spool", "dir", opts.Dir),
		wake:       make(chan struct{}, 1),
		seen:       map[string]stamp{},
		leftCopies: map[string]bool{},
	}
	// Finish what a failed or interrupted move left (recover.go), then
	// drop payload copies and temp files.
	w.recoverAll()
	if !opts.KeepDonePayloads {
		if n, err := sweepDone(opts.Dir); err != nil {
			return nil, err
		} else if n > 0 {
			opts.Logger.Info("spool: payload copies dropped from done/", "dir", opts.Dir, "files", n)
		}
	}
	if n, err := sweepTemps(opts.Dir); err != nil {
		return nil, err
	} else if n > 0 {
		opts.Logger.Info("spool: temp files of interrupted writes dropped", "dir", opts.Dir, "files", n)
	}
	return w, nil
}

// Wake asks for a poll now (it is still only taken once seen unchanged
// twice). It never blocks.
func (w *Watcher) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Start polls until ctx is done: every Poll, on Wake, and after a
// transient error with capped exponential backoff (one log line when
// ingest starts failing, one when it recovers).
func (w *Watcher) Start(ctx context.Context) {
	tick := time.NewTicker(w.opts.Poll)
	defer tick.Stop()
	backoff, failing := time.Duration(0), false
	for {
		_, err := w.Scan(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !failing {
				w.log.Error("spool ingest failing; files stay in place, retrying", "err", err)
			}
			failing = true
			backoff = min(max(2*backoff, w.opts.Poll), maxBackoff)
		case failing:
			w.log.Info("spool ingest recovered")
			failing, backoff = false, 0
		}
		var tickC, retry <-chan time.Time
		var timer *time.Timer
		if backoff > 0 {
			timer = time.NewTimer(backoff)
			retry = timer.C
		} else {
			tickC = tick.C
		}
		select {
		case <-ctx.Done():
		case <-tickC:
		case <-retry:
		case <-w.wake:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// Stats counts what one Scan did.
type Stats struct {
	Done, Rejected int // pairs moved
	Waiting        int // pairs seen but not (yet) complete and stable
}

// Scan polls the folder once: it finishes moves a crash interrupted,
// and ingests every pair that is complete and was seen unchanged by the
// previous Scan. It stops at the first transient error and returns it;
// the pair concerned stays for the next Scan.
func (w *Watcher) Scan(ctx context.Context) (Stats, error) {
	var st Stats
	if err := w.dropLeftCopies(); err != nil {
		return st, err
	}
	ents, err := os.ReadDir(w.opts.Dir)
	if err != nil {
		return st, fmt.Errorf("spool: %w", err)
	}
	// Every entry is looked at, not only regular files: a symbolic link,
	// hard link, FIFO or directory paired with a sidecar is refused (see
	// take), never followed or read.
	files := map[string]fs.FileInfo{}
	for _, e := range ents {
		name := e.Name()
		if ignored(name) || (e.IsDir() && (name == DoneDir || name == RejectedDir)) {
			continue
		}
		info, err := e.Info() // lstat
		if err != nil {
			continue // gone since ReadDir
		}
		files[name] = info
	}
	seen := make(map[string]stamp, len(w.seen))
	defer func() { w.seen = seen }()
	for _, name := range slices.Sorted(maps.Keys(files)) {
		info := files[name]
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if base, ok := strings.CutSuffix(name, MetaSuffix); ok {
			if _, paired := files[base]; !paired && base != "" {
				if err := w.recoverSidecar(base); err != nil {
					return st, err
				}
			}
			continue
		}
		meta, ok := files[name+MetaSuffix]
		if !ok {
			continue
		}
		s := stampOf(info, meta)
		prev, had := w.seen[name]
		if !complete(s) || !had || prev != s {
			seen[name] = s
			st.Waiting++
			continue
		}
		moved, rejected, err := w.take(ctx, name, s)
		if err != nil {
			seen[name] = s
			return st, err
		}
		switch {
		case !moved:
			st.Waiting++ // changed while read
		case rejected:
			st.Rejected++
		default:
			st.Done++
		}
	}
	return st, nil
}

// ignored: dotfiles and files still being written by convention.
func ignored(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".tmp") || strings.HasSuffix(name, ".part")
}

func stampOf(data, meta fs.FileInfo) stamp {
	return stamp{data: fileIDOf(data), meta: fileIDOf(meta)}
}

// complete: the sidecar was written last, or the data file was renamed in
// after its last write. A pair with an entry that is no regular file is
// complete: it is refused once it is seen unchanged.
func complete(s stamp) bool {
	if s.data.typ != 0 || s.meta.typ != 0 {
		return true
	}
	return s.meta.mtime >= s.data.mtime || s.data.ctime > s.data.mtime
}

// beforeOpen, when set (by tests), runs in take between the poll and the
// opening of the pair: it lets a test race the open deterministically.
var beforeOpen func(name string)

// take ingests one pair and moves it. moved is false when the files
// changed since the poll (they are left for later).
//
// Both files are opened relative to the folder's descriptor without
// following a symbolic link (O_NOFOLLOW, O_NONBLOCK), checked on the
// descriptor (a regular file with one link, the device, inode, size and
// mtime the poll saw), read from it, and moved with renameat, checking
// that the inode moved is the one read. An entry that is no such file is
// refused (*UnsafeFileError) unread.
func (w *Watcher) take(ctx context.Context, name string, s stamp) (moved, rejected bool, err error) {
	if beforeOpen != nil {
		beforeOpen(name)
	}
	dirfd, err := openDir(unix.AT_FDCWD, w.opts.Dir)
	if err != nil {
		return false, false, err
	}
	defer unix.Close(dirfd)
	var unsafe *UnsafeFileError
	metaRaw, err := w.readEntry(dirfd, name+MetaSuffix, "sidecar", s.meta, MaxMetaSize+1, true) // DecodeMeta refuses more
	switch {
	case errors.As(err, &unsafe):
	case errors.Is(err, errChanged):
		return false, false, nil
	case err != nil:
		w.log.Debug("spool sidecar unreadable; looking again later", "file", name+MetaSuffix, "err", err)
		return false, false, nil
	}
	var data []byte
	if unsafe == nil {
		data, err = w.readEntry(dirfd, name, "file", s.data, w.opts.MaxSize, false)
		switch {
		case errors.As(err, &unsafe):
		case errors.Is(err, errChanged):
			return false, false, nil
		case err != nil:
			w.log.Debug("spool file unreadable; looking again later", "file", name, "err", err)
			return false, false, nil
		}
	}
	var meta Meta
	var merr error
	if unsafe == nil {
		meta, merr = DecodeMeta(metaRaw)
	}
	req := meta.IngestRequest
	req.Data = data
	if req.ID == "" || merr != nil {
		req.ID = DeriveID(name, data)
	}
	if req.MediaType == "" {
		req.MediaType = guessType(name)
	}
	var cause error
	switch {
	case unsafe != nil:
		cause = unsafe
	case merr != nil:
		cause = merr
	case meta.Principal != w.opts.Principal.Name:
		cause = &MetaError{Field: "principal", Reason: fmt.Sprintf("%.80q: this spool folder is trusted as %q only", meta.Principal, w.opts.Principal.Name)}
	case s.data.size > w.opts.MaxSize:
		cause = &RejectError{Code: "too_large", Field: "size", Message: fmt.Sprintf("%d bytes is over the spool limit of %d", s.data.size, w.opts.MaxSize)}
	}
	// What is moved must be what was read; a refused entry is moved
	// whatever it is now.
	check := s
	if cause != nil {
		check = stamp{}
	}
	if cause != nil {
		rej, err := w.reject(ctx, req, cause)
		if err != nil {
			return false, false, err
		}
		w.log.Info("spool export rejected", "file", name, "id", req.ID, "code", rej.Code, "err", rej.Message)
		return true, true, w.finish(dirfd, name, RejectedDir, req.ID, errorFile(name, req.ID, rej, w.opts.Now()), check)
	}
	rc, err := w.opts.Ingester.Ingest(ctx, w.opts.Principal, Via, req)
	if err != nil {
		var rej *RejectError
		if !errors.As(err, &rej) {
			return false, false, fmt.Errorf("spool: ingest %s: %w", name, err)
		}
		w.log.Info("spool export rejected", "file", name, "id", req.ID, "code", rej.Code, "err", rej.Message)
		return true, true, w.finish(dirfd, name, RejectedDir, req.ID, errorFile(name, req.ID, rej, w.opts.Now()), check)
	}
	w.log.Debug("spool export journaled", "file", name, "id", rc.ExportID, "seq", rc.Seq, "duplicate", rc.Duplicate)
	return true, false, w.finish(dirfd, name, DoneDir, req.ID, receiptFile(name, rc, w.opts.Now()), check)
}

// readEntry opens one entry of the pair with openChecked and reads it. A
// file larger than limit is only checked, not read, unless head is set:
// then its first limit bytes are read.
func (w *Watcher) readEntry(dirfd int, name, field string, saw fileID, limit int64, head bool) ([]byte, error) {
	f, err := openChecked(dirfd, name, field, saw)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	switch {
	case saw.size <= limit:
		return readChecked(f, saw.size, limit)
	case head:
		return readChecked(f, limit, limit)
	}
	return nil, nil
}

// reject turns a refusal the watcher decided into a *RejectError,
// journaled through the Ingester when it is a Rejecter.
func (w *Watcher) reject(ctx context.Context, req IngestRequest, cause error) (*RejectError, error) {
	rej, ok := cause.(*RejectError)
	var unsafe *UnsafeFileError
	switch {
	case ok:
	case errors.As(cause, &unsafe):
		rej = &RejectError{Code: "unsafe_file", Field: unsafe.Field, Message: unsafe.Name + " " + unsafe.Reason + "; only regular files with one link are taken", Err: cause}
	default:
		rej = &RejectError{Code: "bad_meta", Message: cause.Error(), Err: cause}
		var me *MetaError
		if errors.As(cause, &me) {
			rej.Field, rej.Message = me.Field, me.Reason
		}
	}
	r, ok := w.opts.Ingester.(Rejecter)
	if !ok {
		return rej, nil
	}
	got, err := r.Reject(ctx, w.opts.Principal, Via, req, rej)
	if err != nil {
		return nil, fmt.Errorf("spool: journal rejection: %w", err)
	}
	return got, nil
}

// DeriveID is the export id of a pair whose sidecar gives none: "spool-"
// and the first 32 hex digits of SHA-256(u64be(len(name)) || name ||
// SHA-256(data)). The same file name and content always give the same id.
func DeriveID(name string, data []byte) string {
	return deriveID(name, sha256.Sum256(data))
}

// deriveID is DeriveID of the data whose SHA-256 is d.
func deriveID(name string, d [32]byte) string {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(name)))
	h.Write(n[:])
	io.WriteString(h, name)
	h.Write(d[:])
	return "spool-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// guessType is the media type of a file name's extension, or
// application/octet-stream.
func guessType(name string) string {
	ext := strings.ToLower(filepath.Ext(name))
	switch ext {
	case ".json":
		return "application/json"
	case ".csv":
		return "text/csv"
	case ".ndjson", ".jsonl":
		return "application/x-ndjson"
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}
