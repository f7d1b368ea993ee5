// Command report runs edgeseal's benchmarks, each in its own child process so
// that its peak RSS can be read, and writes bench/RESULTS.md: the machine, the
// figures and their baselines measured in the same run, and the targets.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// bench names one benchmark run in its own process.
type bench struct {
	pkg   string // package import path, relative to the module
	name  string // -test.bench pattern
	time  string // -test.benchtime
	label string
}

// result is one benchmark line and the child's peak RSS.
type result struct {
	bench
	metrics map[string]float64 // unit -> value
	maxRSS  int64              // bytes
	err     error
}

var benches = []bench{
	{"./store", "^BenchmarkAppend$/^writers=1$", "2s", "journal append, 1 writer"},
	{"./store", "^BenchmarkAppend$/^writers=8$", "2s", "journal append, 8 writers"},
	{"./store", "^BenchmarkAppend$/^writers=64$", "2s", "journal append, 64 writers"},
	{"./store", "^BenchmarkAppend$/^encrypted$/^writers=64$", "2s", "journal append, encrypted at rest as in the agent, 64 writers"},
	{"./store", "^BenchmarkAppendBatch$", "2s", "journal batch append: 1000 entries a call from 4 writers, each a 1 KiB record and a 1 KiB payload, encrypted at rest as in the agent"},
	{"./store", "^BenchmarkAppendCipherFile$/^whole$", "2s", "journal append, 8 writers, encrypted at rest, each a 1 KiB record and the payload cipher version 2 file of a 1 KiB export journaled whole (its window's 1120-byte encapsulated key with each payload)"},
	{"./store", "^BenchmarkAppendCipherFile$/^split$", "2s", "the same, each file journaled split from its window's encapsulated key (stored once a window), as the agent journals it"},
	{"./store", "^BenchmarkBadgerWriteBatch$/^entries=100$", "2s", "Badger synced WriteBatch of 100 entries (the 1 KiB records of the append rows), 64 writers: the baseline of journal appends"},
	{"./store", "^BenchmarkBadgerWriteBatch$/^writers=1$/^entries=64$", "2s", "Badger synced WriteBatch of 64 entries, 1 writer: at most 64 entries in flight, as with the 64 single-entry callers of the journal's 64-writer row (secondary reference; the 100-entry row queues up to 6400 and Badger merges its queued batches into one value-log sync)"},
	{"./store", "^BenchmarkBadgerWriteBatch$/^encrypted$/^entries=100$", "2s", "Badger synced WriteBatch of 100 entries, each value sealed as the journal seals it, 64 writers"},
	{"./store", "^BenchmarkBadgerWriteBatch$/^encrypted$/^entries=1000$", "2s", "Badger synced WriteBatch of 1000 entries, each a 1 KiB record and a 1 KiB payload sealed as the journal seals them, 4 writers, the agent's memtable: the bytes of the journal batch row"},
	{"./store", "^BenchmarkBadgerBaseline$/^writers=1$", "2s", "raw Badger synced writes, one transaction an entry, 1 writer (secondary reference)"},
	{"./store", "^BenchmarkBadgerBaseline$/^writers=8$", "2s", "raw Badger synced writes, one transaction an entry, 8 writers (secondary reference)"},
	{"./store", "^BenchmarkBadgerBaseline$/^writers=64$", "2s", "raw Badger synced writes, one transaction an entry, 64 writers (secondary reference)"},
	{"./store", "^BenchmarkOpen$/^records=1000000$", "5x", "open a journal of 1M records (clean close)"},
	{"./tpm", "^BenchmarkSeal$/^simulator$", "200x", "seal on the in-process simulator"},
	{"./tpm", "^BenchmarkSeal$/^swtpm$", "100x", "seal on swtpm"},
	{"./bundle/verify", "^BenchmarkVerify$", "2s", "verify a bundle"},
	{"./bundle/verify", "^BenchmarkSHA256$", "2s", "plain SHA-256 of the same bytes"},
	{"./bundle/payloadcipher", "^BenchmarkSeal$", "2s", "payload cipher version 1: HPKE seal of a 1 KiB payload to a content key (ML-KEM-768+X25519, HKDF-SHA256, AES-256-GCM), one encapsulation per payload"},
	{"./bundle/payloadcipher", "^BenchmarkOpen$", "2s", "payload cipher version 1: HPKE open of the same, one decapsulation per payload"},
	{"./bundle/payloadcipher", "^BenchmarkSealWindow$", "2s", "payload cipher version 2: seal of a 1 KiB payload in a window of 1024 (one encapsulation per window, an exported key and AES-256-GCM per payload): the agent's work per encrypted export"},
	{"./bundle/payloadcipher", "^BenchmarkOpenWindow$", "2s", "payload cipher version 2: open of the same, its window decapsulated once: the archive's trial decryption per encrypted payload"},
	{"./bench/api", "^BenchmarkAPIExport$/^clients=1$", "3s", "API single exports, 1 client"},
	{"./bench/api", "^BenchmarkAPIExport$/^clients=8$", "3s", "API single exports, 8 clients"},
	{"./bench/api", "^BenchmarkAPIExport$/^clients=64$", "3s", "API single exports, 64 clients"},
	{"./bench/api", "^BenchmarkAPIExportEncrypted$/^clients=1$", "3s", "API single exports, each payload sealed to an archive content key (HPKE ML-KEM-768+X25519), 1 client"},
	{"./bench/api", "^BenchmarkAPIExportEncrypted$/^clients=8$", "3s", "API single exports, each payload sealed to an archive content key, 8 clients"},
	{"./bench/api", "^BenchmarkAPIExportEncrypted$/^clients=64$", "3s", "API single exports, each payload sealed to an archive content key, 64 clients"},
	{"./bench/api", "^BenchmarkHTTPFloor$/^clients=64$", "3s", "HTTP floor: Go net/http on a unix socket answering 201 and doing nothing else, 64 clients"},
	{"./bench/api", "^BenchmarkHTTPFloor$/^journal$/^clients=64$", "3s", "durable floor: the HTTP floor journaling each body (a small record, the body as its payload, encrypted) before its 201, 64 clients"},
	{"./bench/api", "^BenchmarkAPIBatch$/^lines=100$", "3s", "API batch, 100 lines a request, 4 clients"},
	{"./bench/api", "^BenchmarkAPIBatch$/^lines=1000$", "3s", "API batch, 1000 lines a request, 4 clients"},
	{"./sync/drainbench", "^BenchmarkDrain$", "1x", "long-offline drain: 200,000 exports journaled offline, then sent through mosquitto to the archive until the outbox is empty"},
	{"./sync/drainbench", "^BenchmarkDrainEncrypted$", "1x", "long-offline drain in clear, then with every payload sealed to an archive content key (the archive opens each): 200,000 exports each, one site, broker and archive"},
}

// apiNote explains the API benchmarks' rows.
const apiNote = `The API rows (bench/api) start the real ` + "`edgeseal agent`" + ` binary (in-process TPM
simulator, default seal settings, unix socket) and post 1 KiB JSON exports validated against a
JSON Schema; p50/p99 are per request (a batch request for the batch rows); agent RSS is the agent
process's VmHWM; agent-cpu-us/item is the agent's CPU time (user and system) per export,
agent-sys-% the system part of it, agent-faults/item the agent's minor page faults per export. The
load generator runs on the same cores: one keep-alive HTTP/1.1 connection per client, each request
written in one write and its answer read with net/http's parser (as wrk does; http.Client's
transport cost twice the CPU); client-cpu-us/item is its CPU time per export. The HTTP floor row
runs the same load against a server in its own process that checks the token, reads the body and
answers 201 with a body the size of the agent's, and does nothing else: the most a Go HTTP daemon
answers here, for reading the agent's rate against (in those rows "agent" means that server). The
durable floor row is the same server journaling each body first (store.Journal as the agent opens
it: encrypted, its memtable and memory limit; a small record and the body as its payload) and
answering once that is durable: no decoding, policy, schema, record building or sealing, so an
upper bound for the agent's single exports here. For these rows the peak RSS column is the largest process of the benchmark's tree
(its ` + "`go build`" + ` of the agent, the agent, or the client), not the agent's.
The encrypted rows run the same load against an agent configured with an archive content key
(encryption.content_key): each payload is sealed with HPKE (ML-KEM-768+X25519, HKDF-SHA256,
AES-256-GCM) before it is journaled, and the journal keeps the ciphertext only; the encryption
targets compare their agent-cpu-us/item with the unencrypted rows of the same run.
`

// drainNote explains the drain row.
const drainNote = `The drain row (sync/drainbench) journals the exports through the agent core (in-process
TPM simulator, a seal every 1000 exports) with no publisher running, then starts the sync publisher
(defaults: window 8, 256 KiB messages, no rate limit) against a real Mosquitto the archive is
subscribed on (sync subscriber with archive.Admit: each bundle read and verified in arrival
order, then made durable in groups: write-once objects, one log commit, one index commit, signed
receipts), and times it until the outbox is empty: each bundle leaves only after its receipt is
journaled. MB/s is bundle bytes over that time. The paho baseline publishes the same messages
(sizes and count of the drain's frames) at QoS 1 to the same broker, asynchronously, with a plain
QoS 1 subscriber taking them, timed until the last one arrived; it runs three times and the
median is reported (single runs of it varied by a factor of two here). admit-ms/bundle is the archive's
time reading and verifying a bundle; receive-ms/bundle is from admission to answer (bundles
overlap). The archive (with its sync subscriber) runs in a child process, so the benchmark
process over the drain is the agent alone (core, outbox, publisher and its MQTT client; each
process reads its own rusage over the same span): agent-cpu-ms/bundle is its CPU time per bundle,
archive-cpu-ms/bundle the archive process's, archive-rss-MiB its peak resident memory (VmHWM, to
hold against the archive unit's MemoryHigh=), cpu-ms/bundle both, broker-cpu-ms/bundle Mosquitto's,
and cores all three over the drain's wall time. The paho subscriber runs in a child process too:
paho-pub-cpu-ms/bundle is the publishing client's CPU (the agent's counterpart in the agent's CPU
target), agent-sys-% the system part of the agent's CPU, agent-read-cpu-ms/bundle the CPU of only
reading each bundle from the outbox as the publisher does (file read and decrypted, the median of
three passes before the drain: work the agent cannot skip and paho's run does not do),
agent-idle-cpu-ms/bundle the CPU the agent's process uses with nothing to send (publisher
connected, outbox empty; three seconds measured once the process is quiet after the drain) over a span as long as the drain,
per bundle: the part of its CPU that grows with the drain's wall time, which the archive sets,
not with the bundles (paho's run lasts a fraction of it),
paho-cpu-ms/bundle both clients', paho-broker-cpu-ms/bundle Mosquitto's, for the median
paho run. The floor- columns
are the essential floor, run three times (median kept) before the drain while the outbox is full:
the same frames over the same broker at QoS 1 with only the work the issue makes part of delivery
(each bundle read and decrypted from the outbox; reassembled and its SHA-256 checked; read and
verified against the device's trust, each bundle's state chained to the next; stored write-once
with fsync; and its custody made durable in groups of what is verified meanwhile, as the
archive's committer groups them: the log entries in one synced journal commit, one signed
checkpoint, a signed receipt with its inclusion proof for each bundle, the acceptances with the
receipts in one synced journal commit, the device's chain state in one synced advance; without
these a receipt proves nothing, so no archive can skip them), and none of the rest (the
archive's export index, which is derived from the log and the objects and acknowledges nothing;
the receipts' way back, their journaling, the outbox deletes): an upper bound for the drain on
this machine. The archive's export indexer yields to admission (while bundles are admitted it
waits, at most 256 log entries or 5 s): archive-index-after-cpu-ms/bundle is the archive's CPU
after the drain until its export index covered the log, the indexing a drain leaves behind.
archive-rss-MiB is the archive's process's own peak RSS (VmHWM, read once its export index
covered the log); the drain row's peak RSS column is the largest process of the benchmark's
tree. The archive unit's MemoryHigh= is sized over archive-rss-MiB (systemd/limits_test.go).
The encrypted drain row runs the drain twice in one process on one site, broker and archive
(no paho baseline, no floor): first in clear (plain-), then with the agent sealing every payload
to the archive's content key (enc-: HPKE ML-KEM-768+X25519; the archive opens each payload before
it accepts the bundle). A sealed payload carries its 1,088-byte encapsulated key and a tag, so
the encrypted backlog is larger: exports/s is the comparable rate, MB/s the bytes. cpu-ms/bundle
is the process's CPU over each drain (the archive's decryption lands there),
journal-cpu-us/export the process's CPU journaling each backlog offline (the agent's sealing
lands there), enc-%-drain-time how much longer the encrypted drain took.
`

func main() {
	out := flag.String("out", "bench/RESULTS.md", "where to write the results")
	only := flag.String("run", "", "run only the benchmarks whose package and name match this regexp (for a partial report)")
	flag.Parse()
	sel, err := regexp.Compile(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report: -run:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "edgeseal-bench-")
	if err != nil {
		fatal(log, err)
	}
	defer os.RemoveAll(dir)

	// Every test binary is built before the first benchmark runs, so no
	// build (nor the writeback of what it wrote) overlaps a measurement.
	bins := map[string]string{}
	var selected []bench
	for _, b := range benches {
		if !sel.MatchString(b.pkg + " " + b.name) {
			continue
		}
		selected = append(selected, b)
		if _, ok := bins[b.pkg]; ok {
			continue
		}
		bin := filepath.Join(dir, strings.ReplaceAll(strings.Trim(b.pkg, "./"), "/", "_")+".test")
		cmd := exec.CommandContext(ctx, "go", "test", "-c", "-o", bin, b.pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fatal(log, fmt.Errorf("build %s: %w", b.pkg, err))
		}
		bins[b.pkg] = bin
	}
	if bin, ok := bins["./archive"]; ok {
		if err := prepareArchiveIndex(ctx, bin); err != nil {
			fatal(log, err)
		}
	}
	var results []result
	for _, b := range selected {
		idle := quiesce()
		log.Info("bench", "pkg", b.pkg, "name", b.name, "idle_before", idle)
		r := run(ctx, bins[b.pkg], b)
		if r.err != nil {
			log.Error("bench failed", "name", b.name, "err", r.err)
		}
		results = append(results, r)
	}
	var buf bytes.Buffer
	write(&buf, results)
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		fatal(log, err)
	}
	os.Stdout.Write(buf.Bytes())
}

// quiesce settles the machine before a benchmark: it writes back every
// dirty page (the files the previous benchmark left, which the kernel
// would otherwise flush during this one), then waits until, over a
// quarter second, the CPUs were at most 10% busy and the disks at most
// 10% (writeback and the discards of the files the previous benchmark
// deleted may still be in flight), for at most 60 s. It reports whether
// they were.
func quiesce() bool {
	syscall.Sync()
	const window = 250 * time.Millisecond
	for start := time.Now(); time.Since(start) < 60*time.Second; {
		b0, t0, ok0 := cpuBusy()
		io0 := diskBusy()
		time.Sleep(window)
		b1, t1, ok1 := cpuBusy()
		io1 := diskBusy()
		if !ok0 || !ok1 {
			return false
		}
		if t1 > t0 && float64(b1-b0) <= 0.1*float64(t1-t0) && io1-io0 <= (window/10).Milliseconds() {
			return true
		}
	}
	return false
}

// diskBusy is the milliseconds the machine's disks (not loop, ram or
// zram devices) have spent with I/O in flight, from /proc/diskstats; 0
// when unreadable.
func diskBusy() int64 {
	raw, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return 0
	}
	var ms int64
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 13 || strings.HasPrefix(f[2], "loop") || strings.HasPrefix(f[2], "ram") || strings.HasPrefix(f[2], "zram") {
			continue
		}
		if n, err := strconv.ParseInt(f[12], 10, 64); err == nil {
			ms += n
		}
	}
	return ms
}

// cpuBusy reads the busy and total jiffies of all CPUs from /proc/stat.
func cpuBusy() (busy, total uint64, ok bool) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total, true
}

func fatal(log *slog.Logger, err error) {
	log.Error("bench report", "err", err)
	os.Exit(1)
}

// run executes one benchmark in a child process, in the package directory as
// go test would, and reads the metrics of its result line.
func run(ctx context.Context, bin string, b bench) result {
	r := result{bench: b, metrics: map[string]float64{}}
	cmd := exec.CommandContext(ctx, bin, "-test.run=^$", "-test.bench="+b.name,
		"-test.benchtime="+b.time, "-test.benchmem", "-test.timeout=20m")
	cmd.Dir = b.pkg
	if env := benchEnv(b); len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout bytes.Buffer
	cmd.Stdout = io.MultiWriter(&stdout, os.Stderr)
	cmd.Stderr = os.Stderr
	r.err = cmd.Run()
	if ps := cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			r.maxRSS = ru.Maxrss * 1024 // Linux reports KiB
		}
	}
	out := stdout.String()
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err == nil {
				r.metrics[f[i+1]] = v
			}
		}
	}
	if r.err == nil && len(r.metrics) == 0 {
		r.err = fmt.Errorf("no result line")
	}
	if r.err != nil {
		if why := failure(out); why != "" {
			r.err = fmt.Errorf("%w: %s", r.err, why)
		}
	}
	return r
}

// failure is the first message a failed benchmark logged (the line after
// "--- FAIL"), clipped, with table pipes escaped.
func failure(out string) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.Contains(l, "--- FAIL") && i+1 < len(lines) {
			msg := strings.TrimSpace(lines[i+1])
			if strings.Contains(msg, "--- FAIL") {
				continue
			}
			if len(msg) > 240 {
				msg = msg[:240] + "..."
			}
			return strings.ReplaceAll(msg, "|", "\\|")
		}
	}
	return ""
}

func find(rs []result, name string) *result {
	for i := range rs {
		if rs[i].name == name && rs[i].err == nil {
			return &rs[i]
		}
	}
	return nil
}

func machine() string {
	var b strings.Builder
	cpu := "unknown"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	mem := "unknown"
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = strings.TrimSpace(strings.SplitN(strings.SplitN(string(data), "\n", 2)[0], ":", 2)[1])
	}
	var u syscall.Utsname
	kernel := "unknown"
	if syscall.Uname(&u) == nil {
		kernel = charsToString(u.Release[:])
	}
	fmt.Fprintf(&b, "- CPU: %s, %d cores visible (GOMAXPROCS %d)\n", cpu, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	fmt.Fprintf(&b, "- Memory: %s\n", mem)
	fmt.Fprintf(&b, "- Kernel: %s, Go: %s %s/%s\n", kernel, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "- Disk: the temp directory's filesystem (%s)\n", os.TempDir())
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(&b, "- Load average when the report was written (1, 5, 15 min): %s (other work on the machine lowers every figure)\n",
			strings.Join(strings.Fields(string(data))[:3], ", "))
	}
	return b.String()
}

func charsToString(ca []int8) string {
	s := make([]byte, 0, len(ca))
	for _, c := range ca {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func write(w io.Writer, rs []result) {
	fmt.Fprintf(w, "# Benchmark results\n\nWritten by `make bench` (bench/report) on %s. Every figure and its\nbaseline below come from this one run on this machine; each benchmark ran in its own\nprocess, whose peak RSS is given, after every dirty page was written back and the CPUs were\nidle (all test binaries are built first).\n\n## Machine\n\n%s\n",
		time.Now().UTC().Format(time.RFC3339), machine())
	fmt.Fprintf(w, "## Figures\n\n| benchmark | what | result | peak RSS |\n| --- | --- | --- | --- |\n")
	for _, r := range rs {
		val := "FAILED: " + fmt.Sprint(r.err)
		if r.err == nil {
			var parts []string
			for _, u := range append([]string{"appends/s", "appends/commit", "exports/s", "records/s", "p50-ms", "p99-ms", "agent-rss-MiB", "ms/open", "ms/seal", "MB/s", "paho-MB/s", "%-of-paho", "backlog-MB", "drain-s", "window", "admit-ms/bundle", "receive-ms/bundle", "slot-ms/bundle", "agent-journal-ms/bundle", "agent-delete-ms/bundle", "receipts/commit", "cpu-ms/bundle", "agent-cpu-ms/bundle", "agent-read-cpu-ms/bundle", "agent-idle-cpu-ms/bundle", "archive-cpu-ms/bundle", "archive-index-after-cpu-ms/bundle", "archive-rss-MiB", "broker-cpu-ms/bundle", "cores", "paho-cpu-ms/bundle", "paho-pub-cpu-ms/bundle", "paho-broker-cpu-ms/bundle", "paho-cores", "floor-MB/s", "floor-%-of-paho", "floor-cpu-ms/bundle", "floor-broker-cpu-ms/bundle", "floor-cores", "plain-MB/s", "enc-MB/s", "plain-exports/s", "enc-exports/s", "plain-backlog-MB", "enc-backlog-MB", "plain-cpu-ms/bundle", "enc-cpu-ms/bundle", "plain-broker-cpu-ms/bundle", "enc-broker-cpu-ms/bundle", "plain-journal-cpu-us/export", "enc-journal-cpu-us/export", "enc-%-drain-time", "agent-cpu-us/item", "agent-sys-%", "agent-faults/item", "client-cpu-us/item", "cpu-us/append", "cpu-us/record"}, append(replicaUnits, "ns/op")...) {
				if v, ok := r.metrics[u]; ok {
					f := "%.1f %s"
					if v < 1 && strings.HasSuffix(u, "-ms") {
						f = "%.3f %s" // sub-millisecond latencies
					}
					parts = append(parts, fmt.Sprintf(f, v, u))
				}
			}
			val = strings.Join(parts, ", ")
		}
		fmt.Fprintf(w, "| `%s %s` | %s | %s | %.1f MiB |\n", r.pkg, r.name, r.label, val, float64(r.maxRSS)/(1<<20))
	}
	fmt.Fprintf(w, "\n## Targets\n\n| target | measured | held |\n| --- | --- | --- |\n")
	ratio := func(a, b *result, unit string) (float64, bool) {
		if a == nil || b == nil || b.metrics[unit] == 0 {
			return 0, false
		}
		return a.metrics[unit] / b.metrics[unit], true
	}
	app := find(rs, "^BenchmarkAppend$/^writers=64$")
	writeJournalTargets(w, rs)
	ver := find(rs, "^BenchmarkVerify$")
	sha := find(rs, "^BenchmarkSHA256$")
	if q, ok := ratio(ver, sha, "MB/s"); ok {
		fmt.Fprintf(w, "| verify throughput >= 60%% of plain SHA-256 | %.0f%% (%.1f vs %.1f MB/s) | %s |\n",
			q*100, ver.metrics["MB/s"], sha.metrics["MB/s"], yes(q >= 0.6))
	} else {
		fmt.Fprintf(w, "| verify throughput >= 60%% of plain SHA-256 | not measured | no |\n")
	}
	var peak int64
	for _, r := range rs {
		if strings.Contains(r.name, "BenchmarkAppend") && r.maxRSS > peak {
			peak = r.maxRSS
		}
	}
	fmt.Fprintf(w, "| peak RSS of the append benchmark < 96 MiB | %.1f MiB | %s |\n", float64(peak)/(1<<20), yes(peak > 0 && peak < 96<<20))
	if o := find(rs, "^BenchmarkOpen$/^records=1000000$"); o != nil {
		fmt.Fprintf(w, "| opening a journal of 1M records < 1 s | %.0f ms | %s |\n", o.metrics["ms/open"], yes(o.metrics["ms/open"] < 1000))
	} else {
		fmt.Fprintf(w, "| opening a journal of 1M records < 1 s | not measured | no |\n")
	}
	if enc := find(rs, "^BenchmarkAppend$/^encrypted$/^writers=64$"); enc != nil {
		app = enc // the API rows compare with the journal as the agent runs it
	}
	writeAPITargets(w, rs, app)
	writeEncryptionTargets(w, rs)
	writeArchiveTargets(w, rs)
	writeDrainTargets(w, find(rs, "^BenchmarkDrain$"))
	writeReplicaTargets(w, find(rs, "^BenchmarkReplicas$"))
	fmt.Fprintf(w, "\n%s\n%s\n%s\n%s", apiNote, drainNote, replicaNote, archiveNote())
}

// drainBudget says what CPU time per bundle the 70% target leaves on this
// machine's cores, beside what the paho baseline and the drain used.
func drainBudget(d *result) string {
	m := d.metrics
	if m["bundles"] == 0 || m["paho-MB/s"] == 0 || m["paho-cores"] == 0 {
		return ""
	}
	perBundle := m["backlog-MB"] / m["bundles"] / m["paho-MB/s"] * 1e3 // ms of wall time per bundle at the paho rate
	budget := float64(runtime.NumCPU()) * perBundle / 0.7
	s := fmt.Sprintf("; at 70%% of paho a bundle may take %.1f ms of CPU on %d cores, all told; paho's run took %.1f ms (clients %.1f, broker %.1f; %.1f cores busy), the drain %.1f ms (process %.1f, broker %.1f; %.1f cores busy)",
		budget, runtime.NumCPU(), m["paho-cpu-ms/bundle"]+m["paho-broker-cpu-ms/bundle"], m["paho-cpu-ms/bundle"], m["paho-broker-cpu-ms/bundle"], m["paho-cores"],
		m["cpu-ms/bundle"]+m["broker-cpu-ms/bundle"], m["cpu-ms/bundle"], m["broker-cpu-ms/bundle"], m["cores"])
	if f, ok := m["floor-MB/s"]; ok {
		s += fmt.Sprintf("; the essential floor (paho plus only the outbox read, reassembly, verification, write-once store and custody commit) %.1f MB/s = %.0f%% of paho, %.1f ms of CPU per bundle (process %.1f, broker %.1f)",
			f, m["floor-%-of-paho"], m["floor-cpu-ms/bundle"]+m["floor-broker-cpu-ms/bundle"], m["floor-cpu-ms/bundle"], m["floor-broker-cpu-ms/bundle"])
	}
	return s
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
