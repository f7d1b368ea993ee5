package e2etest

import (
	"bytes"
	"os"
	"path/filepath"
	gosync "sync"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/store"
)

// LockedBuffer is a bytes.Buffer safe for a daemon's log writer and the
// test reading it.
type LockedBuffer struct {
	mu gosync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// NewOutbox is an empty journal the test fills as an outbox, closed when
// the test ends.
func NewOutbox(t testing.TB) *store.Journal {
	t.Helper()
	j, err := store.Open(t.Context(), store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// WriteTrust writes the chain's DEVICE.json into a new temporary
// directory and returns its path.
func WriteTrust(t testing.TB, c *bundletest.Chain) string {
	t.Helper()
	b, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "DEVICE.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// EnrollChain enrolls and approves the chain's device in a (running or
// stopped) archive, as "test-operator".
func EnrollChain(t testing.TB, a *archive.Archive, c *bundletest.Chain) {
	t.Helper()
	raw, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, err := archive.ParseEnrollRequest(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Devices().Enroll(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Devices().Approve(t.Context(), c.DeviceName(), c.Trust.KeyID, "test-operator"); err != nil {
		t.Fatal(err)
	}
}
