// Package daemonlog is the daemons' log/slog logger on stderr: text or
// JSON at the configured level and, when systemd connects stderr to the
// journal, lines with a syslog priority prefix and no timestamp.
package daemonlog

import (
	"context"
	"io"
	"log/slog"
	"os"
	gosync "sync"
)

// New is the daemons' logger on stderr, in the configured format
// ("text" or "json") and level. When systemd runs the daemon with stderr
// connected to the journal ($JOURNAL_STREAM names stderr), lines carry no
// timestamp (journald stamps each one) and start with a syslog priority
// prefix ("<3>" error, "<4>" warn, "<6>" info, "<7>" debug) that journald
// files them under, so `journalctl -p warning` works.
func New(format string, level slog.Level, getenv func(string) string) *slog.Logger {
	return slog.New(Handler(os.Stderr, format, level, journaldStream(os.Stderr, getenv("JOURNAL_STREAM"))))
}

// Handler builds the handler New uses, writing to w; journald selects
// the journal's line format.
func Handler(w io.Writer, format string, level slog.Level, journald bool) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if !journald {
		if format == "json" {
			return slog.NewJSONHandler(w, opts)
		}
		return slog.NewTextHandler(w, opts)
	}
	opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	pw := &priorityWriter{w: w}
	var inner slog.Handler
	if format == "json" {
		inner = slog.NewJSONHandler(pw, opts)
	} else {
		inner = slog.NewTextHandler(pw, opts)
	}
	return &journalHandler{inner: inner, pw: pw}
}

// priorityWriter prefixes each write (one log line: slog's handlers write
// a record in one call) with the priority journalHandler set.
type priorityWriter struct {
	mu     gosync.Mutex
	w      io.Writer
	prefix string
}

func (p *priorityWriter) Write(b []byte) (int, error) {
	line := make([]byte, 0, len(p.prefix)+len(b))
	line = append(append(line, p.prefix...), b...)
	if _, err := p.w.Write(line); err != nil {
		return 0, err
	}
	return len(b), nil
}

// journalHandler sets the syslog priority of each record's line.
type journalHandler struct {
	inner slog.Handler
	pw    *priorityWriter
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.pw.mu.Lock()
	defer h.pw.mu.Unlock()
	h.pw.prefix = syslogPriority(r.Level)
	return h.inner.Handle(ctx, r)
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{inner: h.inner.WithAttrs(as), pw: h.pw}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{inner: h.inner.WithGroup(name), pw: h.pw}
}

// syslogPriority is the sd-daemon(3) prefix of a level.
func syslogPriority(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "<3>"
	case l >= slog.LevelWarn:
		return "<4>"
	case l >= slog.LevelInfo:
		return "<6>"
	}
	return "<7>"
}
