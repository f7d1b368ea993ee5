package tlog

import (
	"context"
	"log/slog"
	"os"
	gosync "sync"
	"sync/atomic"

	"k8s.io/klog/v2"
)

// RouteLibraryLogs sends the log lines of Tessera (which logs through
// klog, process-wide) to l instead of stderr. A daemon calls it at start,
// with its own logger; a later call (another daemon in the same process,
// as in tests) takes over the lines. klog's logger is set once per
// process, before the first Tessera driver of the process is made (every
// Open in this package calls routeKlog first), and forwards to the newest
// l, so no Tessera goroutine ever reads klog's settings while they are
// being written.
func RouteLibraryLogs(l *slog.Logger) {
	h := l.With("component", "tessera").Handler()
	libraryHandler.Store(&h)
	routeKlog()
}

// routeKlog points klog at the forwarding handler, once per process. It
// runs before any Tessera code, so that klog's logger is never written
// while a Tessera goroutine reads it; lines logged before any
// RouteLibraryLogs go to stderr, as klog's own default would.
func routeKlog() {
	routeOnce.Do(func() { klog.SetSlogLogger(slog.New(forwardHandler{})) })
}

var (
	routeOnce      gosync.Once
	libraryHandler atomic.Pointer[slog.Handler]
	// stderrHandler takes the lines logged before any RouteLibraryLogs.
	stderrHandler slog.Handler = slog.NewTextHandler(os.Stderr, nil).WithAttrs([]slog.Attr{slog.String("component", "tessera")})
)

// forwardHandler hands each record to the handler RouteLibraryLogs set
// last.
type forwardHandler struct {
	attrs []slog.Attr
	group string
}

func (f forwardHandler) target() slog.Handler {
	h := stderrHandler
	if p := libraryHandler.Load(); p != nil {
		h = *p
	}
	if f.group != "" {
		h = h.WithGroup(f.group)
	}
	if len(f.attrs) > 0 {
		h = h.WithAttrs(f.attrs)
	}
	return h
}

func (f forwardHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return f.target().Enabled(ctx, lv)
}

func (f forwardHandler) Handle(ctx context.Context, r slog.Record) error {
	return f.target().Handle(ctx, r)
}

func (f forwardHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return forwardHandler{attrs: append(append([]slog.Attr(nil), f.attrs...), as...), group: f.group}
}

func (f forwardHandler) WithGroup(name string) slog.Handler {
	if f.group != "" {
		name = f.group + "." + name
	}
	return forwardHandler{attrs: f.attrs, group: name}
}
