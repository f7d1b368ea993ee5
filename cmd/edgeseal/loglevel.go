package main

import (
	"context"
	"log/slog"
)

// The operator commands log through the logger main makes (text on
// stderr); a command that loads a config logs at that config's
// log.level, as its daemon would, whatever level that logger was made
// with.

// levelHandler passes the records at or above level to inner (whose own
// level it replaces: a slog handler's Handle does not filter).
type levelHandler struct {
	inner slog.Handler
	level slog.Level
}

func (h levelHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h levelHandler) Handle(ctx context.Context, r slog.Record) error { return h.inner.Handle(ctx, r) }

func (h levelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return levelHandler{h.inner.WithAttrs(as), h.level}
}

func (h levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{h.inner.WithGroup(name), h.level}
}

// atLevel is log at level.
func atLevel(log *slog.Logger, level slog.Level) *slog.Logger {
	h := log.Handler()
	if lh, ok := h.(levelHandler); ok {
		h = lh.inner
	}
	return slog.New(levelHandler{h, level})
}

// atConfigLevel is log at a config's log.level (debug, info, warn or
// error; the config's validation checked it), info when it is empty.
func atConfigLevel(log *slog.Logger, level string) *slog.Logger {
	lv := slog.LevelInfo
	if level != "" {
		_ = lv.UnmarshalText([]byte(level))
	}
	return atLevel(log, lv)
}
