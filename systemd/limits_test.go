package systemd

import (
	"bufio"
	"errors"
	"fmt"
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

// measuredRSS reads the peak RSS figures (bytes) of bench/RESULTS.md: the
// agent's under API load, the 1M-record journal open, and the archive's
// in the drain (drainRSS).
func measuredRSS(t *testing.T) (agent, open, drain float64) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "bench", "RESULTS.md"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := drainRSS(b)
	if err != nil {
		t.Fatalf("bench/RESULTS.md: %v", err)
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
		d
}

var (
	drainRow      = regexp.MustCompile("(?m)^\\| `\\./sync/drainbench \\^BenchmarkDrain\\$` \\|.*$")
	drainTreeRSS  = regexp.MustCompile(`\| ([0-9.]+) MiB \|$`)
	drainOwnRSS   = regexp.MustCompile(`(?:\| |, )([0-9.]+) archive-rss-MiB(?:,| \|)`)
	errNoDrainRow = errors.New("no row of ./sync/drainbench ^BenchmarkDrain$")
)

// drainRSS reads the archive's peak RSS (bytes) in the drain from the
// drain's row of a RESULTS.md: its archive-rss-MiB figure (the archive
// process's own VmHWM) when the row has one, else its peak RSS column
// (the largest process of the benchmark's tree, agent included).
func drainRSS(results []byte) (float64, error) {
	row := drainRow.Find(results)
	if row == nil {
		return 0, errNoDrainRow
	}
	m := drainOwnRSS.FindSubmatch(row)
	if m == nil {
		if m = drainTreeRSS.FindSubmatch(row); m == nil {
			return 0, fmt.Errorf("drain row without a peak RSS: %s", row)
		}
	}
	f, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("drain row: peak RSS %q", m[1])
	}
	return f * (1 << 20), nil
}

// TestDrainRSS: the archive's peak in the drain is the row's
// archive-rss-MiB figure when it has one, wherever it stands among the
// figures, and the row's peak RSS column otherwise; a file without the
// row is an error.
func TestDrainRSS(t *testing.T) {
	const head = "| `./sync/drainbench ^BenchmarkDrain$` | long-offline drain | "
	for _, c := range []struct {
		row  string
		want float64
	}{
		{head + "54.5 MB/s, 17.4 archive-cpu-ms/bundle, 200.0 bundles | 980.9 MiB |", 980.9},
		{head + "54.5 MB/s, 80.0 archive-index-after-cpu-ms/bundle, 412.5 archive-rss-MiB, 1.6 broker-cpu-ms/bundle | 980.9 MiB |", 412.5},
		{head + "412.5 archive-rss-MiB | 980.9 MiB |", 412.5},
		{head + "54.5 MB/s, 300.0 archive-rss-MiB | 980.9 MiB |", 300},
	} {
		text := "# Benchmark results\n\n| benchmark | what | result | peak RSS |\n| --- | --- | --- | --- |\n" +
			"| `./sync/drainbench ^BenchmarkDrainEncrypted$` | encrypted | 1.0 MB/s | 2000.0 MiB |\n" + c.row + "\n| `./bench/api ^BenchmarkAPI$` | api | 1.0 exports/s | 50.0 MiB |\n"
		got, err := drainRSS([]byte(text))
		if err != nil || got != c.want*(1<<20) {
			t.Errorf("%s: %.1f MiB %v, want %.1f MiB", c.row, got/(1<<20), err, c.want)
		}
	}
	if _, err := drainRSS([]byte("| `./bench/api ^BenchmarkAPI$` | api | 1.0 exports/s | 50.0 MiB |\n")); err == nil {
		t.Error("no drain row read as a figure")
	}
}

// TestMemoryLimits: both units cap their memory (MemoryHigh= below
// MemoryMax=) with room over the peaks measured in bench/RESULTS.md: the
// agent over its API-load peak plus its bounded request bodies
// (api.max_inflight 64 MiB and two batches of 32 MiB) and over a large
// journal's open; the archive over its own peak in the drain (drainRSS).
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
