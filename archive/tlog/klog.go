package tlog

import (
	"log/slog"

	"k8s.io/klog/v2"
)

// RouteLibraryLogs sends the log lines of Tessera (which logs through
// klog, process-wide) to l instead of stderr. A daemon calls it once at
// start, with its own logger.
func RouteLibraryLogs(l *slog.Logger) {
	klog.SetSlogLogger(l.With("component", "tessera"))
}
