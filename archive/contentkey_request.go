package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// Content key rotation on a running archive. The daemon holds the
// archive's journals, so `edgeseal archive content-key rotate` cannot
// append to its log; as with the operator statements (operator_pending.go)
// the command queues a request file in DIR/operator/content-key and the
// daemon takes it: before each bundle's device lookup (a stat of the
// folder), every few seconds, and at Open. Taking a request is
// NewContentKey (the key written, the content.key entry appended to the
// log and checkpointed, then the key made the newest: no receipt
// announces it before it is logged), then the answer <id>.done (the
// announcement) written and the request removed. The old keys stay, so
// no bundle sealed to either key is refused across the rotation.
//
// A request carries no authority beyond a rotation (a new key of the
// archive's, nothing leaves it): it names no escrow key, since an escrow
// to a key a writer of the folder chose would hand them the content key.
// A request whose answer is there already (a crash before the request
// was removed) is removed without a second rotation; a crash between the
// log entry and the answer rotates once more at the next start (each key
// is logged once).

// ContentKeyRequestDir is the folder of queued content key requests of
// the archive at dir.
func ContentKeyRequestDir(dir string) string { return filepath.Join(dir, "operator", "content-key") }

// contentKeyRotateRequest is the only request: a rotation.
var contentKeyRotateRequest = []byte(`{"type":"content.key.rotate","v":1}` + "\n")

// Suffixes in the request folder: the request, the answer of a rotation
// done (the announcement), the answer of a refused one (its reason).
const (
	rotateSuffix  = ".rotate"
	doneSuffix    = ".done"
	refusedSuffix = ".refused"
)

// maxContentKeyRequests bounds the requests taken at a time; more wait.
const maxContentKeyRequests = 8

// ContentKeyRequestError is a rotation the archive refused, with its reason.
type ContentKeyRequestError struct{ ID, Reason string }

func (e *ContentKeyRequestError) Error() string {
	return "archive: content key rotation " + e.ID + " refused: " + e.Reason
}

// RequestContentKeyRotation queues a rotation for the running archive at
// dir, durably; it returns the request's id (WaitContentKeyRotation).
func RequestContentKeyRotation(dir string) (string, error) {
	d := ContentKeyRequestDir(dir)
	if err := os.MkdirAll(d, 0o750); err != nil {
		return "", fmt.Errorf("archive: content key request: %w", err)
	}
	id := strconv.FormatInt(time.Now().UnixNano(), 10)
	if err := fsutil.WriteFileAtomic(filepath.Join(d, id+rotateSuffix), contentKeyRotateRequest, 0o640); err != nil {
		return "", fmt.Errorf("archive: content key request: %w", err)
	}
	return id, nil
}

// WaitContentKeyRotation waits until the archive at dir answered the
// request id, checking every poll, and returns the new key's
// announcement (the answer file is removed); a *ContentKeyRequestError
// when the archive refused it, ctx's error when ctx ends first (the
// request stays queued).
func WaitContentKeyRotation(ctx context.Context, dir, id string, poll time.Duration) ([]byte, error) {
	d := ContentKeyRequestDir(dir)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if raw, err := fsutil.ReadLimited(filepath.Join(d, id+doneSuffix), archivesig.MaxContentKeySize); err == nil {
			_ = os.Remove(filepath.Join(d, id+doneSuffix))
			return raw, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if why, err := fsutil.ReadLimited(filepath.Join(d, id+refusedSuffix), 4<<10); err == nil {
			_ = os.Remove(filepath.Join(d, id+refusedSuffix))
			return nil, &ContentKeyRequestError{ID: id, Reason: string(why)}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// takeContentKeyRequests takes the queued requests, oldest first, when
// the folder changed since it last looked (always when force; without
// force, nothing when another goroutine is taking them).
func (a *Archive) takeContentKeyRequests(ctx context.Context, force bool) {
	d := ContentKeyRequestDir(a.opts.Dir)
	fi, err := os.Lstat(d)
	if err != nil || !fi.IsDir() {
		return // no folder (or not a folder): nothing queued
	}
	// A bundle does not wait for a rotation another goroutine is taking:
	// the old key is good meanwhile.
	if force {
		a.ckReqMu.Lock()
	} else if !a.ckReqMu.TryLock() {
		return
	}
	defer a.ckReqMu.Unlock()
	if !force && a.ckReqStamp != nil && fi.ModTime().Equal(a.ckReqStamp.ModTime()) {
		return
	}
	a.ckReqStamp = fi
	ents, err := os.ReadDir(d)
	if err != nil {
		a.lg.Error("content key requests", "dir", d, "err", err)
		return
	}
	var ids []string
	for _, e := range ents {
		if id, ok := strings.CutSuffix(e.Name(), rotateSuffix); ok && e.Type().IsRegular() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if len(ids) > maxContentKeyRequests {
		ids = ids[:maxContentKeyRequests]
		a.ckReqStamp = nil // the rest at the next look
	}
	for _, id := range ids {
		if err := a.takeContentKeyRequest(ctx, d, id); err != nil {
			a.lg.Error("content key request", "id", id, "err", err)
		}
	}
}

// takeContentKeyRequest takes the request id in folder d.
func (a *Archive) takeContentKeyRequest(ctx context.Context, d, id string) error {
	req := filepath.Join(d, id+rotateSuffix)
	done := func() error {
		if err := os.Remove(req); err != nil {
			return err
		}
		return fsutil.SyncDir(d)
	}
	if _, err := os.Lstat(filepath.Join(d, id+doneSuffix)); err == nil {
		return done() // rotated before a crash removed the request
	}
	refuse := func(reason string) error {
		a.lg.Error("content key rotation refused", "id", id, "reason", reason)
		a.alert(ctx, Alert{Severity: SeverityWarning, Kind: KindOperator, Reasons: []string{"content key rotation " + id + " refused: " + reason}})
		if err := fsutil.WriteFileAtomic(filepath.Join(d, id+refusedSuffix), []byte(reason), 0o640); err != nil {
			return err
		}
		return done()
	}
	b, err := fsutil.ReadLimited(req, 4<<10)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return refuse(err.Error())
	}
	if err != nil {
		return nil // taken by an earlier look
	}
	if !bytes.Equal(b, contentKeyRotateRequest) {
		return refuse("not a content key rotation request")
	}
	if _, err := a.ContentKeyAnnouncement(); err != nil {
		return refuse(err.Error())
	}
	raw, err := a.NewContentKey(ctx)
	if err != nil {
		return refuse(err.Error())
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(d, id+doneSuffix), raw, 0o640); err != nil {
		return err
	}
	return done()
}
