package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/store"
)

// The pending folder: an operator command (`edgeseal archive devices
// approve|revoke|revoke-key --operator-key FILE`) signs a device statement
// and writes it to DIR/operator/pending; the archive, running or at its
// next start, takes it: it checks it (DeviceStatement), appends it to its
// log and removes the file, or moves a statement it refuses to
// DIR/operator/refused with an alert. The archive looks at the folder
// before each bundle's device lookup (a stat, as for devices.json) and at
// Open. Only the archive writes its log: the command needs no lock the
// daemon holds.

// PendingDir is the folder of the queued operator statements of the
// archive at dir.
func PendingDir(dir string) string { return filepath.Join(dir, "operator", "pending") }

// QueueStatement writes the signed statement rec to the pending folder
// of the archive at dir, durably; it returns the file's path. Replicas
// queue in their shared store instead (state.Statements.Queue, after
// ParseOperatorStatement).
func QueueStatement(dir string, rec []byte) (string, error) {
	if _, err := ParseOperatorStatement(rec); err != nil {
		return "", err
	}
	pd := PendingDir(dir)
	if err := os.MkdirAll(pd, 0o750); err != nil {
		return "", fmt.Errorf("archive: pending: %w", err)
	}
	sum := sha256.Sum256(rec)
	p := filepath.Join(pd, fmt.Sprintf("%d-%s.json", time.Now().UnixNano(), hex.EncodeToString(sum[:8])))
	if err := fsutil.WriteFileAtomic(p, rec, 0o640); err != nil {
		return "", err
	}
	return p, nil
}

// takePending takes the queued statements, oldest first, when the
// folder changed since it last looked (always when force).
func (a *Archive) takePending(ctx context.Context, force bool) {
	if a.opts.Statements != nil {
		a.takeQueued(ctx)
		return
	}
	pd := PendingDir(a.opts.Dir)
	fi, err := os.Stat(pd)
	if err != nil {
		return // no folder: nothing queued
	}
	a.pendMu.Lock()
	defer a.pendMu.Unlock()
	if !force && a.pendStamp != nil && fi.ModTime().Equal(a.pendStamp.ModTime()) {
		return
	}
	a.pendStamp = fi
	ents, err := os.ReadDir(pd)
	if err != nil {
		a.lg.Error("operator statements", "dir", pd, "err", err)
		return
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".json") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	for _, n := range names {
		p := filepath.Join(pd, n)
		err := a.takeOne(ctx, p)
		if err == nil {
			continue
		}
		a.lg.Error("operator statement refused", "file", p, "err", err)
		a.alert(ctx, Alert{Severity: SeverityWarning, Kind: KindOperator, Reasons: []string{fmt.Sprintf("operator statement %s refused: %v", n, err)}})
		rd := filepath.Join(a.opts.Dir, "operator", "refused")
		if mkErr := os.MkdirAll(rd, 0o750); mkErr == nil {
			if mvErr := os.Rename(p, filepath.Join(rd, n)); mvErr == nil {
				_ = fsutil.SyncDir(pd)
			}
		}
	}
}

// takeOne takes the statement in file p and removes the file.
func (a *Archive) takeOne(ctx context.Context, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	rec, err := io.ReadAll(io.LimitReader(f, MaxOperatorStatementSize+1))
	f.Close()
	if err != nil {
		return err
	}
	if err := a.logQueued(ctx, rec, p); err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(p))
}

// logQueued logs a queued statement (what names where it was queued):
// nil when it is logged, now or before.
func (a *Archive) logQueued(ctx context.Context, rec []byte, what string) error {
	res, err := a.DeviceStatement(ctx, rec)
	if _, dup := errors.AsType[*store.DuplicateError](err); dup {
		err = nil // logged before a crash removed the file
	}
	if err != nil {
		if res == nil {
			return err
		}
		a.lg.Error("operator statement logged", "file", what, "err", err)
	}
	return nil
}

// maxQueuedTake bounds the statements one look at the shared queue takes.
const maxQueuedTake = 64

// takeQueued takes the statements of the shared queue (Options.Statements),
// oldest first: each logged is removed from the queue, each refused kept
// there as refused with an alert. Replicas may take one statement at
// once: the second finds it logged (a duplicate) and removes it too.
func (a *Archive) takeQueued(ctx context.Context) {
	a.pendMu.Lock()
	defer a.pendMu.Unlock()
	q := a.opts.Statements
	sts, err := q.Pending(ctx, maxQueuedTake)
	if err != nil {
		a.lg.Error("operator statements", "err", err)
		return
	}
	for _, st := range sts {
		what := "queued statement " + st.ID
		err := a.logQueued(ctx, st.Rec, what)
		if err == nil {
			if err := q.Done(ctx, st.ID); err != nil {
				a.lg.Error("operator statement logged, still queued", "statement", st.ID, "err", err)
			}
			continue
		}
		a.lg.Error("operator statement refused", "statement", st.ID, "err", err)
		a.alert(ctx, Alert{Severity: SeverityWarning, Kind: KindOperator, Reasons: []string{fmt.Sprintf("operator %s refused: %v", what, err)}})
		if err := q.Refuse(ctx, st.ID, err.Error()); err != nil {
			a.lg.Error("operator statement refused, still queued", "statement", st.ID, "err", err)
		}
	}
}
