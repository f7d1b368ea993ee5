package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/internal/testenv"
)

const (
	syncsEnv      = "EDGESEAL_STORE_SYNCS_CHILD"
	syncsSmallEnv = "EDGESEAL_STORE_SYNCS_SMALL_ONLY" // the first phase only
)

// syncsAppends is how many appends the child makes in each phase.
const syncsAppends = 24

// syncsPayload is payload i of the child's second phase: larger than the
// value threshold, so Badger writes it to its value log.
func syncsPayload(i int) []byte {
	p := fmt.Appendf(nil, "payload %d ", i)
	return append(p, bytes.Repeat([]byte{'v'}, 4*valueThreshold)...)
}

// syncsChild appends from one goroutine, one entry a commit: first
// syncsAppends small records (every value in the memtable's write-ahead
// log), printing "small N" once append N is acknowledged, then
// syncsAppends records each with a payload above the value threshold
// (the payload in the value log), printing "large N" (not with
// syncsSmallEnv set). It then prints "done" and exits without closing
// the journal, as in a crash.
func syncsChild(dir string) {
	j, err := Open(context.Background(), Options{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	ack := func(format string, a ...any) {
		if _, err := fmt.Printf(format, a...); err != nil {
			os.Exit(4)
		}
	}
	for i := range syncsAppends {
		if _, err := j.Append(context.Background(), Entry{Build: build(fmt.Sprintf("small %d", i))}); err != nil {
			fmt.Fprintln(os.Stderr, "child append:", err)
			os.Exit(3)
		}
		ack("small %d\n", i)
	}
	if os.Getenv(syncsSmallEnv) != "" {
		ack("done\n")
		os.Exit(0)
	}
	for i := range syncsAppends {
		p := syncsPayload(i)
		e := Entry{Build: build(fmt.Sprintf("large %d", i)), Payloads: []Payload{{Digest: sha256.Sum256(p), Data: p}}}
		if _, err := j.Append(context.Background(), e); err != nil {
			fmt.Fprintln(os.Stderr, "child append:", err)
			os.Exit(3)
		}
		ack("large %d\n", i)
	}
	ack("done\n")
	os.Exit(0)
}

// TestCommitSyncsWhatItWrote runs a child appending under strace and
// checks, commit by commit, which of Badger's files were synced before
// the append was acknowledged (each append is one commit, one Badger
// write round):
//
//   - every acknowledged append had the memtable's write-ahead log synced
//     (msync) since the previous acknowledgement;
//   - every append whose payload went to the value log had the value log
//     synced too: the patched Badger (third_party/README.md, "A write
//     round syncs the value log only when it wrote to it") must never
//     skip a sync the commit needs;
//   - an append whose values all stayed in the write-ahead log had no
//     value-log sync: one sync a commit, not two.
//
// It then reopens the journal the child left unclosed and finds every
// acknowledged record and payload.
func TestCommitSyncsWhatItWrote(t *testing.T) {
	straceBin, err := exec.LookPath("strace")
	if err != nil {
		testenv.Missing(t, "strace not installed (scripts/deps.sh test installs it)")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	trace := filepath.Join(t.TempDir(), "strace.out")
	cmd := exec.Command(straceBin, "-f", "-qq", "-y", "-s", "32", "-o", trace,
		"-e", "trace=mmap,mremap,munmap,msync,fsync,fdatasync,write", "-e", "signal=none",
		"--", exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), syncsEnv+"="+dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\n%s", err, lastLines(stderr.String(), 8))
	}
	if !strings.HasSuffix(stdout.String(), "done\n") {
		t.Fatalf("child did not finish:\n%s", lastLines(stdout.String(), 4))
	}
	acks, err := syncsPerAck(readFile(trace))
	if err != nil {
		t.Fatal(err)
	}
	if len(acks) != 2*syncsAppends {
		t.Fatalf("%d acknowledgements in the trace, want %d", len(acks), 2*syncsAppends)
	}
	var smallVlog, smallWAL, largeVlog, largeWAL int
	for _, a := range acks {
		if a.wal == 0 {
			t.Errorf("%s acknowledged without a sync of the memtable's write-ahead log", a.name)
		}
		large := strings.HasPrefix(a.name, "large ")
		if large && a.vlog == 0 {
			t.Errorf("%s acknowledged without a sync of the value log holding its payload", a.name)
		}
		if !large && a.vlog != 0 {
			t.Errorf("%s: %d value-log syncs for a commit that wrote nothing there", a.name, a.vlog)
		}
		if large {
			largeVlog, largeWAL = largeVlog+a.vlog, largeWAL+a.wal
		} else {
			smallVlog, smallWAL = smallVlog+a.vlog, smallWAL+a.wal
		}
	}
	t.Logf("small records: %.2f value-log and %.2f write-ahead-log syncs a commit; with a payload in the value log: %.2f and %.2f",
		float64(smallVlog)/syncsAppends, float64(smallWAL)/syncsAppends, float64(largeVlog)/syncsAppends, float64(largeWAL)/syncsAppends)

	j := openT(t, dir)
	defer j.Close()
	if j.Size() != 2*syncsAppends {
		t.Fatalf("reopened journal holds %d records, want %d", j.Size(), 2*syncsAppends)
	}
	for i := range syncsAppends {
		p := syncsPayload(i)
		got, err := j.Payload(sha256.Sum256(p))
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("payload %d after reopening: %v", i, err)
		}
	}
	if err := j.Scrub(t.Context(), checkEmbedded); err != nil {
		t.Fatal(err)
	}
}

// ackSyncs counts the syncs of Badger's logs between one acknowledgement
// and the one before it.
type ackSyncs struct {
	name      string // the child's line: "small N", "large N"
	vlog, wal int
}

var (
	straceLineRE = regexp.MustCompile(`^(\d+)\s+(.*)$`)
	resumedRE    = regexp.MustCompile(`^<\.\.\. \w+ resumed>(.*)$`)
	mmapRE       = regexp.MustCompile(`^mmap\(\w+, (\d+), [^,]+, [^,]+, \d+<([^>]+)>, \w+\)\s+= (0x[0-9a-f]+)`)
	mremapRE     = regexp.MustCompile(`^mremap\((0x[0-9a-f]+), \d+, (\d+), [^)]*\)\s+= (0x[0-9a-f]+)`)
	munmapRE     = regexp.MustCompile(`^munmap\((0x[0-9a-f]+), \d+\)\s+= 0`)
	msyncRE      = regexp.MustCompile(`^msync\((0x[0-9a-f]+), \d+, [A-Z_|]+\)\s+= (-?\d+)`)
	fsyncRE      = regexp.MustCompile(`^f(?:data)?sync\(\d+<([^>]+)>\)\s+= (-?\d+)`)
	ackRE        = regexp.MustCompile(`^write\(1<[^>]*>, "((?:small|large) \d+)\\n", \d+\)`)
)

// syncsPerAck reads an strace -f -y log of mmap, mremap, munmap, msync,
// fsync, fdatasync and write calls and returns, for each line the child
// wrote to its stdout ("small N", "large N"), the syncs of value-log
// (*.vlog) and write-ahead-log (*.mem) files that completed since the
// previous one. An msync is attributed through the mapping it syncs
// (Badger syncs a log file's whole mapping). A call split by another
// thread's (<unfinished ...>, <... resumed>) counts where it completed.
func syncsPerAck(trace string) ([]ackSyncs, error) {
	maps := map[string]string{} // mapping start -> file
	pending := map[string]string{}
	var out []ackSyncs
	cur := ackSyncs{}
	count := func(file string) {
		switch {
		case strings.HasSuffix(file, ".vlog"):
			cur.vlog++
		case strings.HasSuffix(file, ".mem"):
			cur.wal++
		}
	}
	sc := bufio.NewScanner(strings.NewReader(trace))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := straceLineRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		pid, call := m[1], m[2]
		if head, ok := strings.CutSuffix(call, " <unfinished ...>"); ok {
			pending[pid] = head
			continue
		}
		if r := resumedRE.FindStringSubmatch(call); r != nil {
			call = pending[pid] + r[1]
			delete(pending, pid)
		}
		switch {
		case mmapRE.MatchString(call):
			g := mmapRE.FindStringSubmatch(call)
			maps[g[3]] = g[2]
		case mremapRE.MatchString(call):
			g := mremapRE.FindStringSubmatch(call)
			f := maps[g[1]]
			delete(maps, g[1])
			maps[g[3]] = f
		case munmapRE.MatchString(call):
			delete(maps, munmapRE.FindStringSubmatch(call)[1])
		case msyncRE.MatchString(call):
			g := msyncRE.FindStringSubmatch(call)
			f, ok := maps[g[1]]
			if !ok {
				return nil, fmt.Errorf("msync of %s, no file mapped there: %s", g[1], call)
			}
			if g[2] != "0" {
				return nil, fmt.Errorf("msync of %s failed: %s", f, call)
			}
			count(f)
		case fsyncRE.MatchString(call):
			g := fsyncRE.FindStringSubmatch(call)
			if g[2] == "0" {
				count(g[1])
			}
		case ackRE.MatchString(call):
			cur.name = ackRE.FindStringSubmatch(call)[1]
			out = append(out, cur)
			cur = ackSyncs{}
		}
	}
	return out, sc.Err()
}

// TestOpensWithValueLogHeaderLost: a value-log file that no commit wrote
// to is never synced (Badger writes its header when it creates the file
// at open, and a write round syncs the value log only when it wrote to
// it), so a power loss may leave it all zeros. A child appends small
// records only (every value in the write-ahead log) and exits without
// closing; its value log's header is then zeroed, as the lost page would
// read. The journal must reopen with every record, take a payload in the
// value log, and reopen again.
func TestOpensWithValueLogHeaderLost(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), syncsEnv+"="+dir, syncsSmallEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if out, err := cmd.Output(); err != nil || !strings.HasSuffix(string(out), "done\n") {
		t.Fatalf("child: %v\n%s", err, lastLines(stderr.String(), 8))
	}
	vlogs, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if err != nil || len(vlogs) == 0 {
		t.Fatalf("no value log in %s: %v", dir, err)
	}
	last := vlogs[len(vlogs)-1] // zero-padded names: the newest sorts last
	f, err := os.OpenFile(last, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 4096), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	j := openT(t, dir)
	if j.Size() != syncsAppends {
		t.Fatalf("reopened journal holds %d records, want %d", j.Size(), syncsAppends)
	}
	if err := j.Scrub(t.Context(), checkEmbedded); err != nil {
		t.Fatal(err)
	}
	p := syncsPayload(0)
	e := Entry{Build: build("large 0"), Payloads: []Payload{{Digest: sha256.Sum256(p), Data: p}}}
	if _, err := j.Append(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = openT(t, dir)
	defer j.Close()
	if got, err := j.Payload(sha256.Sum256(p)); err != nil || !bytes.Equal(got, p) {
		t.Fatalf("payload after reopening: %v", err)
	}
	if j.Size() != syncsAppends+1 {
		t.Fatalf("size %d, want %d", j.Size(), syncsAppends+1)
	}
}
