package main

import (
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// TestArchiveQueryCase: with --archive, --case passes --device,
// --principal, --from and --to on for the archive to narrow the case by
// (either time alone); a time that is not RFC 3339, or --from not before
// --to, is a usage error.
func TestArchiveQueryCase(t *testing.T) {
	q, what, err := archiveQuery(nil, "site1/dev1", "alice", "", "", "C-7")
	if err != nil || q.Get("case") != "C-7" || q.Get("device") != "site1/dev1" || q.Get("principal") != "alice" || what != "legal-hold case C-7 device site1/dev1 principal alice" {
		t.Fatalf("%v %q %v", q, what, err)
	}
	q, _, err = archiveQuery(nil, "", "", "", "", "C-7")
	if err != nil || q.Encode() != "case=C-7" {
		t.Fatalf("%v %v", q, err)
	}
	from, to := "2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z"
	q, what, err = archiveQuery(nil, "site1/dev1", "", from, to, "C-7")
	if err != nil || q.Get("from") != from || q.Get("to") != to || q.Get("device") != "site1/dev1" ||
		what != "legal-hold case C-7 device site1/dev1 from "+from+" to "+to {
		t.Fatalf("from and to: %v %q %v", q, what, err)
	}
	q, _, err = archiveQuery(nil, "", "", from, "", "C-7")
	if err != nil || q.Encode() != "case=C-7&from=2026-12-01T00%3A00%3A00Z" {
		t.Fatalf("from alone: %v %v", q, err)
	}
	for _, tc := range [][2]string{{"yesterday", ""}, {"", "2026-13-01"}, {to, from}, {from, from}} {
		var ee *exitError
		if _, _, err := archiveQuery(nil, "", "", tc[0], tc[1], "C-7"); !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("from %q to %q: %v, want a usage error", tc[0], tc[1], err)
		}
	}
}

// TestEvidenceCaseTimes: `evidence --archive URL --case ID --from T --to
// T` is a selection (it gets as far as asking for the token file);
// offline, where the hold statements carry no record times, --from with
// --case is refused as a second selection.
func TestEvidenceCaseTimes(t *testing.T) {
	out := filepath.Join(t.TempDir(), "pack")
	times := []string{"--case", "C-7", "--from", "2026-12-01T00:00:00Z", "--to", "2026-12-02T00:00:00Z", "-o", out}
	err := cmdEvidence(t.Context(), append([]string{"--archive", "https://127.0.0.1:1"}, times...), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--token-file") {
		t.Errorf("with --archive: %v, want it to need --token-file", err)
	}
	err = cmdEvidence(t.Context(), append([]string{"--holds", "h.json"}, times...), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "want one of") {
		t.Errorf("offline: %v, want one selection", err)
	}
}
