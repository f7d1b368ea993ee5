package systemd

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// serviceSettings returns the last value of each key of a unit's
// [Service] section (a repeated key adds to lists, but the keys read here
// are scalars or read whole).
func serviceSettings(t *testing.T, text string) map[string]string {
	t.Helper()
	m := map[string]string{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || l[0] == '#' || l[0] == ';':
		case l[0] == '[':
			section = l
		case section == "[Service]":
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("unit line %q", l)
			}
			if m[k] != "" && k == "SupplementaryGroups" {
				v = m[k] + " " + v
			}
			m[k] = v
		}
	}
	return m
}

// unitBytes parses a systemd size (a number with an optional K, M, G, T
// suffix, base 1024).
func unitBytes(t *testing.T, key, v string) float64 {
	t.Helper()
	mult := 1.0
	if n := len(v); n > 0 {
		switch v[n-1] {
		case 'K':
			mult, v = 1<<10, v[:n-1]
		case 'M':
			mult, v = 1<<20, v[:n-1]
		case 'G':
			mult, v = 1<<30, v[:n-1]
		case 'T':
			mult, v = 1<<40, v[:n-1]
		}
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		t.Fatalf("%s=%s: not a size", key, v)
	}
	return f * mult
}

// measuredRSS reads the peak RSS figures (MiB) of bench/RESULTS.md: the
// agent's under API load, the 1M-record journal open, and the drain (the
// archive's side of it).
func measuredRSS(t *testing.T) (agent, open, drain float64) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "bench", "RESULTS.md"))
	if err != nil {
		t.Fatal(err)
	}
	find := func(re string) float64 {
		m := regexp.MustCompile(re).FindSubmatch(b)
		if m == nil {
			t.Fatalf("bench/RESULTS.md: no match for %s", re)
		}
		f, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			t.Fatal(err)
		}
		return f * (1 << 20)
	}
	return find(`agent peak RSS (?:under API load < \d+ MiB|<= \d+ MiB in every API run[^|\n]*) \| ([0-9.]+) MiB`),
		find("BenchmarkOpen\\$/\\^records=1000000\\$` \\|[^\\n]*\\| ([0-9.]+) MiB \\|"),
		find("drainbench \\^BenchmarkDrain\\$` \\|[^\\n]*\\| ([0-9.]+) MiB \\|")
}

// TestMemoryLimits: both units cap their memory (MemoryHigh= below
// MemoryMax=) with room over the peaks measured in bench/RESULTS.md: the
// agent over its API-load peak plus its bounded request bodies
// (api.max_inflight 64 MiB and two batches of 32 MiB) and over a large
// journal's open; the archive over the drain's whole-process peak.
func TestMemoryLimits(t *testing.T) {
	agentRSS, openRSS, drainRSS := measuredRSS(t)
	const requests = (64 + 2*32) << 20
	for _, c := range []struct {
		kind     string
		highMin  float64 // MemoryHigh= must be at least this
		maxLimit float64 // MemoryMax= at most this (a cap, not a formality)
	}{
		{"agent", max(agentRSS+requests, openRSS) * 1.2, 1 << 30},
		{"archive", drainRSS * 1.2, 4 << 30},
	} {
		_, text, err := Unit(c.kind)
		if err != nil {
			t.Fatal(err)
		}
		s := serviceSettings(t, text)
		if s["MemoryHigh"] == "" || s["MemoryMax"] == "" {
			t.Errorf("%s unit: MemoryHigh=%q MemoryMax=%q, want both set", c.kind, s["MemoryHigh"], s["MemoryMax"])
			continue
		}
		high, hard := unitBytes(t, "MemoryHigh", s["MemoryHigh"]), unitBytes(t, "MemoryMax", s["MemoryMax"])
		if high < c.highMin {
			t.Errorf("%s unit: MemoryHigh=%s under %.0f MiB (measured peaks and request bounds, 20%% headroom)", c.kind, s["MemoryHigh"], c.highMin/(1<<20))
		}
		if hard <= high || hard > c.maxLimit {
			t.Errorf("%s unit: MemoryMax=%s, want above MemoryHigh=%s and at most %.0f MiB", c.kind, s["MemoryMax"], s["MemoryHigh"], c.maxLimit/(1<<20))
		}
	}
}

// TestAPIGroupApart: the agent runs in group edgeseal (which may read
// /etc/edgeseal and its keys) and joins edgeseal-api only to give its
// socket that group; the runtime directory lets API clients reach the
// socket without being in group edgeseal.
func TestAPIGroupApart(t *testing.T) {
	_, text, err := Unit("agent")
	if err != nil {
		t.Fatal(err)
	}
	s := serviceSettings(t, text)
	groups := strings.Fields(s["SupplementaryGroups"])
	if s["Group"] != "edgeseal" || s["Group"] == "edgeseal-api" {
		t.Errorf("agent unit Group=%s, want edgeseal (the key readers), not the API group", s["Group"])
	}
	if !strings.Contains(" "+strings.Join(groups, " ")+" ", " edgeseal-api ") {
		t.Errorf("agent unit SupplementaryGroups=%s lacks edgeseal-api (the socket's group)", s["SupplementaryGroups"])
	}
	mode, err := strconv.ParseUint(s["RuntimeDirectoryMode"], 8, 32)
	if err != nil || mode&0o001 == 0 || mode&0o022 != 0 {
		t.Errorf("agent unit RuntimeDirectoryMode=%s: API clients outside group edgeseal need search (o+x) and nobody else write", s["RuntimeDirectoryMode"])
	}
}
