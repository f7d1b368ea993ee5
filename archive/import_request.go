package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// Imports on a running archive. The daemon holds the archive's journals,
// so `edgeseal archive import` cannot open them; as with content key
// rotations (contentkey_request.go) the command hands each bundle of the
// medium to the daemon through a request folder, DIR/operator/import:
//
//	<id>.bundle        the bundle's bytes, written atomically by the
//	                   command (temp file, fsync, rename)
//	<id>.answer.json   the daemon's answer (ImportAnswer), written
//	                   atomically before the request is removed
//
// The daemon looks at the folder every importWatch and takes the requests
// oldest first (ids sort by time), at most maxImportRequests a look,
// through importBytes: the same admission as a medium imported with the
// daemon stopped and as MQTT (AdmitHashed, as the bag's origin device).
// A request that fails to process (disk, closing) stays queued and is
// taken again at the next look. The command reads the answer, removes it
// and writes the reply to the medium.
//
// The folder's entries are outside input too (whoever can write there):
// a request that is not a regular file (a symbolic link is never
// followed) or is larger than an import reads (ImportReadLimit) is not
// taken: it is removed and answered ImportRequestRefused with the reason.
// Answers nobody took within staleImportAnswer (the command gave up) are
// removed.

// ImportRequestDir is the folder of queued import requests of the
// archive at dir.
func ImportRequestDir(dir string) string { return filepath.Join(dir, "operator", "import") }

// Outcomes of an import request (ImportAnswer.Outcome).
const (
	ImportAccepted  = "accepted"  // receipt in Reply
	ImportDuplicate = "duplicate" // held before; the stored receipt in Reply
	ImportRefused   = "refused"   // signed rejection in Reply, Error its checks
	// ImportRequestRefused: the request file itself was not taken (not
	// a regular file, too large); no reply, Error says why.
	ImportRequestRefused = "request-refused"
)

// ImportAnswer is the daemon's answer to one import request.
type ImportAnswer struct {
	V       int    `json:"v"`
	Outcome string `json:"outcome"`
	Device  string `json:"device,omitempty"`
	Error   string `json:"error,omitempty"`
	Reply   []byte `json:"reply,omitempty"` // the signed receipt or rejection
}

const (
	importSuffix = ".bundle"
	answerSuffix = ".answer.json"
	// importWatch is how often a running archive looks at the folder.
	importWatch = 200 * time.Millisecond
	// maxImportRequests bounds the requests taken in one look; more wait.
	maxImportRequests = 64
	// maxImportEntries bounds the folder entries read in one look.
	maxImportEntries = 4096
	// maxImportAnswer bounds an answer read back: a reply in base64.
	maxImportAnswer = 2*archivesig.MaxReceiptSize + 64<<10
	// staleImportAnswer: an answer older is removed (its command gave up).
	staleImportAnswer = time.Hour
)

// ImportRequestError is an import request the command could not make or
// the daemon did not take, with its reason.
type ImportRequestError struct{ ID, Reason string }

func (e *ImportRequestError) Error() string {
	return "archive: import request " + e.ID + ": " + e.Reason
}

// validImportID reports whether id is one RequestImport makes: digits
// and '-', at most 40 characters.
func validImportID(id string) bool {
	if id == "" || len(id) > 40 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// RequestImport queues the bundle raw for the running archive at dir,
// durably, as request id (digits and '-'; ids sort in the order they are
// taken). Wait for the answer with WaitImport.
func RequestImport(dir, id string, raw []byte) error {
	if !validImportID(id) {
		return &ImportRequestError{ID: id, Reason: "not a request id"}
	}
	d := ImportRequestDir(dir)
	if err := os.MkdirAll(d, 0o750); err != nil {
		return fmt.Errorf("archive: import request: %w", err)
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(d, id+importSuffix), raw, 0o640); err != nil {
		return fmt.Errorf("archive: import request: %w", err)
	}
	return nil
}

// CancelImport removes the request id if the archive has not taken it
// yet (a command that gives up); an answer written meanwhile is removed
// by the archive later.
func CancelImport(dir, id string) error {
	if !validImportID(id) {
		return &ImportRequestError{ID: id, Reason: "not a request id"}
	}
	err := os.Remove(filepath.Join(ImportRequestDir(dir), id+importSuffix))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// WaitImport waits until the archive at dir answered the request id,
// checking every poll, and returns the answer (its file removed); ctx's
// error when ctx ends first (the request stays queued: CancelImport).
func WaitImport(ctx context.Context, dir, id string, poll time.Duration) (*ImportAnswer, error) {
	if !validImportID(id) {
		return nil, &ImportRequestError{ID: id, Reason: "not a request id"}
	}
	p := filepath.Join(ImportRequestDir(dir), id+answerSuffix)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		raw, err := readNoLink(p, maxImportAnswer)
		if err == nil {
			var an ImportAnswer
			if err := json.Unmarshal(raw, &an); err != nil || an.V != 1 {
				return nil, &ImportRequestError{ID: id, Reason: "the answer is not an import answer"}
			}
			_ = os.Remove(p)
			return &an, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("archive: import answer: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// readNoLink reads the regular file path of at most limit bytes; a
// symbolic link is not followed (*ImportRequestError), nor is anything
// that is not a regular file opened for reading (a FIFO does not block).
func readNoLink(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, &ImportRequestError{ID: filepath.Base(path), Reason: "a symbolic link; not followed"}
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &ImportRequestError{ID: filepath.Base(path), Reason: "not a regular file"}
	}
	if fi.Size() > limit {
		return nil, &ImportRequestError{ID: filepath.Base(path), Reason: fmt.Sprintf("larger than %d bytes", limit)}
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, &ImportRequestError{ID: filepath.Base(path), Reason: fmt.Sprintf("larger than %d bytes", limit)}
	}
	return b, nil
}

// watchImports takes the queued import requests every interval until
// Close: one log line when a look fails, one when they are taken again.
func (a *Archive) watchImports(interval time.Duration) {
	defer close(a.importDone)
	// A bundle being taken at Close is not waited for: its request stays
	// queued for the next start.
	ctx, cancel := context.WithCancel(a.bg)
	defer cancel()
	go func() {
		select {
		case <-a.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-a.quit:
			return
		case <-t.C:
		}
		err := a.takeImportRequests(ctx)
		if ctx.Err() != nil {
			return // closing: what was not answered stays queued
		}
		switch {
		case err != nil && !failing:
			failing = true
			a.lg.Error("import requests: a request stays queued", "dir", ImportRequestDir(a.opts.Dir), "err", err)
		case err == nil && failing:
			failing = false
			a.lg.Info("import requests taken again", "dir", ImportRequestDir(a.opts.Dir))
		}
	}
}

// takeImportRequests takes the queued requests, oldest first, and removes
// stale answers. It stops at the first request that failed to process.
func (a *Archive) takeImportRequests(ctx context.Context) error {
	d := ImportRequestDir(a.opts.Dir)
	if fi, err := os.Lstat(d); err != nil || !fi.IsDir() {
		return nil // no folder (or not a folder): nothing queued
	}
	f, err := os.Open(d)
	if err != nil {
		return err
	}
	ents, err := f.ReadDir(maxImportEntries)
	f.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	var ids []string
	for _, e := range ents {
		name := e.Name()
		if id, ok := strings.CutSuffix(name, importSuffix); ok && validImportID(id) {
			ids = append(ids, id)
			continue
		}
		if id, ok := strings.CutSuffix(name, answerSuffix); ok && validImportID(id) {
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleImportAnswer {
				_ = os.Remove(filepath.Join(d, name))
			}
		}
	}
	slices.Sort(ids)
	if len(ids) > maxImportRequests {
		ids = ids[:maxImportRequests]
	}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := a.takeImportRequest(ctx, d, id); err != nil {
			return fmt.Errorf("request %s: %w", id, err)
		}
	}
	return nil
}

// takeImportRequest takes the request id in folder d.
func (a *Archive) takeImportRequest(ctx context.Context, d, id string) error {
	req := filepath.Join(d, id+importSuffix)
	ans := filepath.Join(d, id+answerSuffix)
	done := func() error {
		if err := os.Remove(req); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return fsutil.SyncDir(d)
	}
	if _, err := os.Lstat(ans); err == nil {
		return done() // answered before a crash removed the request
	}
	answer := func(an ImportAnswer) error {
		an.V = 1
		b, err := json.Marshal(an)
		if err != nil {
			return err
		}
		if err := fsutil.WriteFileAtomic(ans, b, 0o640); err != nil {
			return err
		}
		return done()
	}
	raw, err := readNoLink(req, ImportReadLimit(a.opts.Limits))
	var re *ImportRequestError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil // cancelled by its command
	case errors.As(err, &re):
		a.lg.Warn("import request refused", "id", id, "reason", re.Reason)
		return answer(ImportAnswer{Outcome: ImportRequestRefused, Error: re.Reason})
	case err != nil:
		return err
	}
	im, reply, err := a.importBytes(ctx, "request "+id, raw)
	if err != nil {
		return err
	}
	an := ImportAnswer{Outcome: ImportAccepted, Device: im.Device, Reply: reply}
	switch {
	case im.Duplicate:
		an.Outcome = ImportDuplicate
	case !im.Accepted:
		an.Outcome, an.Error = ImportRefused, im.Err.Error()
	}
	return answer(an)
}
