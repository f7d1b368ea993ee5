package archive_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// contentKeyEntries returns the announcements of the content.key
// entries of the archive log, oldest first.
func contentKeyEntries(t *testing.T, a *archive.Archive) [][]byte {
	t.Helper()
	var out [][]byte
	for i := range a.LogSize() {
		b, err := a.LogRecord(i)
		if err != nil {
			t.Fatal(err)
		}
		var m archive.LogContentKeyEntry
		if json.Unmarshal(b, &m) == nil && m.Type == archive.LogContentKeyEntryType {
			out = append(out, m.Announcement)
		}
	}
	return out
}

// TestContentKeyRotateRunning: a rotation queued while the archive runs
// (RequestContentKeyRotation, as `archive content-key rotate` does when
// the daemon holds the archive) is taken by the running archive without
// a reopen while bundles keep arriving: every bundle, sealed to the old
// key before and after the rotation, is accepted (opened by the archive)
// and its receipt verifies; the new key is in the log exactly once,
// before the first receipt that announces it; the receipts after the
// rotation announce it (verified as an agent does); bundles sealed to
// the new key are accepted with receipts that announce nothing; a
// reopen rotates nothing more.
func TestContentKeyRotateRunning(t *testing.T) {
	e := newEnv(t)
	k1 := e.contentKey()
	c := newChain(t, 1, bundletest.Options{ContentKey: k1})
	e.approve(c)
	e.accept(c, c.Bundles[0])

	id, err := archive.RequestContentKeyRotation(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	answer := make(chan []byte, 1)
	waitErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		raw, err := archive.WaitContentKeyRotation(ctx, e.dir, id, 10*time.Millisecond)
		answer <- raw
		waitErr <- err
	}()
	keys := archivesig.NewArchiveKeys(archive.DefaultName, e.a.PublicKey())
	var announced []byte // what the first receipt announcing the new key carried
	var logged int       // content.key entries when it came
	var sent int
	for deadline := time.Now().Add(30 * time.Second); announced == nil; sent++ {
		if time.Now().After(deadline) {
			t.Fatalf("no receipt announced the new key after %d bundles", sent)
		}
		b, err := c.Next(t.Context(), 1) // still sealed to the old key
		if err != nil {
			t.Fatal(err)
		}
		data := raw(t, b)
		reply, err := e.a.Receive(t.Context(), c.Opts.Site, c.Opts.Device, data)
		if err != nil {
			t.Fatalf("bundle %d sealed to the old key refused during the rotation: %v", sent, err)
		}
		if r := e.checkReceipt(reply, data, c.DeviceName()); r.ContentKey != nil {
			announced, logged = r.ContentKey, len(contentKeyEntries(t, e.a))
		}
	}
	if err := <-waitErr; err != nil {
		t.Fatal(err)
	}
	if got := <-answer; !bytes.Equal(got, announced) {
		t.Fatal("the answer to the request is not the announcement the receipts carry")
	}
	if logged != 2 {
		t.Fatalf("%d content.key entries in the log when a receipt first announced the new key, want 2", logged)
	}
	an, err := keys.VerifyContentKey(announced, time.Now())
	if err != nil || an.Seq != 2 {
		t.Fatalf("announced %+v, %v; want seq 2", an, err)
	}
	k2, err := an.PublicKey()
	if err != nil || k2.ID == k1.ID {
		t.Fatalf("new key %v, %v", k2, err)
	}
	t.Logf("rotation taken after %d bundles", sent)

	// The agent seals to the key it learned: accepted, nothing announced.
	c.Opts.ContentKey = k2
	for range 2 {
		b, err := c.Next(t.Context(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if r := e.checkReceipt(e.accept(c, b), raw(t, b), c.DeviceName()); r.ContentKey != nil {
			t.Fatal("a receipt for payloads sealed to the newest key announces a key")
		}
	}
	ents := contentKeyEntries(t, e.a)
	if len(ents) != 2 || !bytes.Equal(ents[1], announced) {
		t.Fatalf("%d content.key entries, want 2 (the second the announced key)", len(ents))
	}
	if left, _ := os.ReadDir(archive.ContentKeyRequestDir(e.dir)); len(left) != 0 {
		t.Fatalf("request folder not emptied: %v", left)
	}
	e.a.Close()
	e.open()
	if got := contentKeyEntries(t, e.a); len(got) != 2 {
		t.Fatalf("%d content.key entries after a reopen, want 2", len(got))
	}
	if cur, err := e.a.ContentKeyAnnouncement(); err != nil || !bytes.Equal(cur, announced) {
		t.Fatalf("newest key after a reopen: %v", err)
	}
}

// TestContentKeyRequestRefused: a request file that is not a rotation
// request, and a rotation of an archive without a content key, are
// refused (the answer names why, an alert is raised, no key is made); a
// symlink is not taken; a request whose answer is there already (a crash
// before its removal) is removed without a second rotation.
func TestContentKeyRequestRefused(t *testing.T) {
	e := newEnv(t)
	d := archive.ContentKeyRequestDir(e.dir)

	// No content key yet.
	id, err := archive.RequestContentKeyRotation(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	reopenAndWait := func(id string) ([]byte, error) {
		t.Helper()
		e.a.Close()
		e.open() // takes the requests at Open
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		return archive.WaitContentKeyRotation(ctx, e.dir, id, 10*time.Millisecond)
	}
	_, err = reopenAndWait(id)
	if re, ok := errors.AsType[*archive.ContentKeyRequestError](err); !ok || !strings.Contains(re.Reason, "no content key") {
		t.Fatalf("rotation without a content key: %v", err)
	}
	if _, err := e.a.ContentKeyAnnouncement(); !errors.Is(err, archive.ErrNoContentKey) {
		t.Fatalf("a refused rotation made a key: %v", err)
	}

	e.contentKey()
	// Not a rotation request.
	if err := os.WriteFile(filepath.Join(d, "5.rotate"), []byte(`{"type":"content.key.rotate","v":1,"escrow":"x"}`+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	// A symlink to a valid request: never followed.
	valid := filepath.Join(t.TempDir(), "req")
	if err := os.WriteFile(valid, []byte(`{"type":"content.key.rotate","v":1}`+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(valid, filepath.Join(d, "6.rotate")); err != nil {
		t.Fatal(err)
	}
	// Answered before a crash kept the request.
	if err := os.WriteFile(filepath.Join(d, "7.rotate"), []byte(`{"type":"content.key.rotate","v":1}`+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "7.done"), []byte("an earlier answer"), 0o640); err != nil {
		t.Fatal(err)
	}
	_, err = reopenAndWait("5")
	if re, ok := errors.AsType[*archive.ContentKeyRequestError](err); !ok || !strings.Contains(re.Reason, "not a content key rotation request") {
		t.Fatalf("a malformed request: %v", err)
	}
	if got := contentKeyEntries(t, e.a); len(got) != 1 {
		t.Fatalf("%d content.key entries, want 1: a refused, symlinked or answered request rotated", len(got))
	}
	if _, err := os.Lstat(filepath.Join(d, "6.rotate")); err != nil {
		t.Fatalf("the symlinked request was taken: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(d, "7.rotate")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the answered request stays: %v", err)
	}
	e.mu.Lock()
	var alerts int
	for _, al := range e.alerts {
		if al.Kind == archive.KindOperator && strings.Contains(strings.Join(al.Reasons, " "), "content key rotation") {
			alerts++
		}
	}
	e.mu.Unlock()
	if alerts != 2 {
		t.Fatalf("%d alerts of refused rotations, want 2", alerts)
	}
}
