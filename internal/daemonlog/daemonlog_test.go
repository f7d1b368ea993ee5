package daemonlog

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"
)

// Under journald, lines carry a syslog priority and no timestamp, in both
// formats, through WithAttrs; elsewhere they are slog's plain lines.
func TestJournaldLogLines(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var b bytes.Buffer
		log := slog.New(Handler(&b, format, slog.LevelDebug, true)).With("component", "x")
		log.Debug("d")
		log.Info("i")
		log.Warn("w", "k", 1)
		log.Error("e")
		lines := strings.Split(strings.TrimSpace(b.String()), "\n")
		if len(lines) != 4 {
			t.Fatalf("%s: %d lines: %q", format, len(lines), b.String())
		}
		for i, pri := range []string{"<7>", "<6>", "<4>", "<3>"} {
			l := lines[i]
			if !strings.HasPrefix(l, pri) || strings.Contains(l, "time") || !strings.Contains(l, "component") {
				t.Errorf("%s line %d: %q, want prefix %s, no time, the component", format, i, l, pri)
			}
			if format == "json" {
				var m map[string]any
				if err := json.Unmarshal([]byte(l[3:]), &m); err != nil {
					t.Errorf("json line %d after the prefix: %v", i, err)
				}
			}
		}
	}
	var b bytes.Buffer
	slog.New(Handler(&b, "json", slog.LevelInfo, false)).Info("plain")
	if !strings.HasPrefix(b.String(), `{"time":`) {
		t.Errorf("outside journald: %q", b.String())
	}
	// JOURNAL_STREAM must name this very stream.
	f, err := os.CreateTemp(t.TempDir(), "stream")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if journaldStream(f, "") || journaldStream(f, "1:2") {
		t.Error("a stream JOURNAL_STREAM does not name counted as the journal")
	}
}
