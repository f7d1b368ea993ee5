package tlog

import (
	"bytes"
	"log/slog"
	"strings"
	gosync "sync"
	"testing"

	"k8s.io/klog/v2"
)

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu gosync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRouteLibraryLogsTwice: two daemons in one process route Tessera's
// klog lines while klog logs (no race under -race), and the lines go to
// the logger routed last.
func TestRouteLibraryLogsTwice(t *testing.T) {
	var first, second lockedBuffer
	RouteLibraryLogs(slog.New(slog.NewTextHandler(&first, nil)))
	var wg gosync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				klog.V(0).Info("background line")
			}
		}
	}()
	RouteLibraryLogs(slog.New(slog.NewTextHandler(&second, nil)))
	close(stop)
	wg.Wait()
	klog.Info("after the second route")
	if !strings.Contains(second.String(), "after the second route") || !strings.Contains(second.String(), "component=tessera") {
		t.Fatalf("second logger got %q", second.String())
	}
	if strings.Contains(first.String(), "after the second route") {
		t.Fatalf("first logger still gets lines: %q", first.String())
	}
}
