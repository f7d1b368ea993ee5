package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestReplicaTargets: the replicas' two target rows hold exactly at
// their thresholds (two replicas at 0.9 of one, one replica at 90% of
// its floor), not below, say a drain that was stopped, and read "not
// measured" without a result.
func TestReplicaTargets(t *testing.T) {
	row := func(m map[string]float64) []string {
		var buf bytes.Buffer
		writeReplicaTargets(&buf, &result{metrics: m})
		return strings.Split(strings.TrimSpace(buf.String()), "\n")
	}
	base := func(two, floor, twoDrained float64) map[string]float64 {
		return map[string]float64{"one-bundles/s": 10, "two-bundles/s": two, "floor-bundles/s": floor,
			"one-drained-%": 100, "two-drained-%": twoDrained, "one-drain-s": 12, "two-drain-s": 75}
	}
	for _, c := range []struct {
		name               string
		m                  map[string]float64
		twoHeld, floorHeld bool
		stopped            bool
	}{
		{"both at the threshold", base(9, 10/0.9, 100), true, true, false},
		{"both below", base(8.9, 12, 100), false, false, false},
		{"two stopped", base(2, 100, 40), false, false, true},
	} {
		rows := row(c.m)
		if len(rows) != 2 {
			t.Fatalf("%s: %d rows:\n%s", c.name, len(rows), strings.Join(rows, "\n"))
		}
		for i, want := range []bool{c.twoHeld, c.floorHeld} {
			if got := strings.HasSuffix(rows[i], "| yes |"); got != want {
				t.Errorf("%s: row %d held %v, want %v: %s", c.name, i, got, want, rows[i])
			}
		}
		if got := strings.Contains(rows[0], "stopped after 75 s with 40% delivered"); got != c.stopped {
			t.Errorf("%s: stopped %v, want %v: %s", c.name, got, c.stopped, rows[0])
		}
	}
	var buf bytes.Buffer
	writeReplicaTargets(&buf, &result{err: errors.New("failed")})
	if n := strings.Count(buf.String(), "| not measured | no |"); n != 2 {
		t.Errorf("a failed run: %d rows not measured, want 2:\n%s", n, buf.String())
	}
}
