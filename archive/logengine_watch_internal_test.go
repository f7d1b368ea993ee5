package archive

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive/tlog"
)

// failingLog is a tlog.Log that fails outside any call, as the journal
// engine does when a background write (a compaction's MANIFEST sync, a
// flush) fails: a fault a test cannot provoke on demand in-process.
type failingLog struct {
	tlog.Log
	failed chan struct{}
	err    error
}

func (f *failingLog) Failed() <-chan struct{} { return f.failed }
func (f *failingLog) Err() error              { return f.err }

// TestLogFailsOnBackgroundFailure: the archive's log fails (Failed
// closed, Err naming the cause) when its engine fails in the background,
// not only on a failed append; a log no longer watched (closed, or
// replaced by a key rotation) does not.
func TestLogFailsOnBackgroundFailure(t *testing.T) {
	cause := errors.New("sync data/log/MANIFEST: input/output error")
	fl := &failingLog{failed: make(chan struct{}), err: cause}
	l := &archiveLog{failed: make(chan struct{})}
	unwatch := l.watch(fl)
	defer unwatch()
	select {
	case <-l.Failed():
		t.Fatal("failed before the engine failed")
	case <-time.After(50 * time.Millisecond):
	}
	close(fl.failed)
	select {
	case <-l.Failed():
	case <-time.After(10 * time.Second):
		t.Fatal("the engine failed in the background and the log did not")
	}
	if err := l.Err(); !errors.Is(err, cause) || !strings.Contains(err.Error(), "log failed") {
		t.Fatalf("Err = %v, want the engine's cause", err)
	}

	old := &failingLog{failed: make(chan struct{}), err: cause}
	l2 := &archiveLog{failed: make(chan struct{})}
	stop := l2.watch(old)
	stop()
	stop() // a second stop (reopen, then close) is harmless
	close(old.failed)
	select {
	case <-l2.Failed():
		t.Fatal("a log no longer watched failed the archive's log")
	case <-time.After(50 * time.Millisecond):
	}
	if l2.watch(struct{ tlog.Log }{}) == nil {
		t.Fatal("watch of an engine without Failer returned nil")
	}
}
