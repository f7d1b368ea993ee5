package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	tornChildEnv   = "EDGESEAL_STORE_TORN_CHILD"
	tornBatchesEnv = "EDGESEAL_STORE_TORN_BATCHES" // tornChild's batches, if not tornBatches
)

// tornBatches and tornPerBatch are what tornChild commits: one group
// commit (one Badger transaction) a batch, every record over the value
// threshold, so each batch writes tornPerBatch entries to the value log.
const (
	tornBatches  = 4
	tornPerBatch = 10
)

// tornRecord is a 1 KiB record (in the value log), embedding seq and prev.
func tornRecord(seq uint64, prev [32]byte) ([]byte, error) {
	b := fmt.Appendf(nil, `{"seq":%d,"prev":"%x","body":"`, seq, prev)
	b = append(b, strings.Repeat("t", 1024-len(b)-2)...)
	return append(b, `"}`...), nil
}

// tornChild commits tornBatches batches (or tornBatchesEnv's), prints
// "ready" and waits to be killed (no Close: the memtable write-ahead log
// is what the next Open replays).
func tornChild(dir string) {
	batches := tornBatches
	if n, err := strconv.Atoi(os.Getenv(tornBatchesEnv)); err == nil {
		batches = n
	}
	ctx := context.Background()
	j, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	es := make([]Entry, tornPerBatch)
	for i := range es {
		es[i] = Entry{Build: tornRecord}
	}
	for range batches {
		if _, err := j.AppendBatch(ctx, es); err != nil {
			fmt.Fprintln(os.Stderr, "child append:", err)
			os.Exit(2)
		}
	}
	fmt.Println("ready")
	time.Sleep(time.Minute) // killed long before
}

// TestCrashTornValueLog: Badger syncs a commit's value-log entries and
// its write-ahead log at the same time (third_party/README.md), so a
// power cut can leave the write-ahead log of the last, unanswered commit
// on disk without its value-log bytes. The test makes that state (a child
// commits 4 batches of 1 KiB records and is killed; the last value-log
// entries are then zeroed, as pages that never reached the disk) and
// checks that Open drops that commit whole: the journal opens at the size
// before it, every record and hash below reads and Scrub passes, the
// next append takes the dropped seq, and a second open agrees. Without
// the replay's pointer check Open fails on the lost record.
func TestCrashTornValueLog(t *testing.T) {
	dir := t.TempDir()
	runTornChild(t, dir, tornBatches)
	tearLastCommit(t, dir)

	const want = (tornBatches - 1) * tornPerBatch
	for round := range 2 {
		j := openT(t, dir)
		checkTornJournal(t, j, want+uint64(round))
		if round == 0 {
			a, err := j.Append(context.Background(), Entry{Build: tornRecord})
			if err != nil {
				t.Fatal(err)
			}
			if a.Seq != want {
				t.Fatalf("append after the torn commit got seq %d, want %d", a.Seq, want)
			}
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCrashTornValueLogTwice: after the torn commit of
// TestCrashTornValueLog, a second process opens the journal (the replay
// cuts the write-ahead log), commits a batch and is killed too, and the
// cut log then reappears whole (its truncation and its deletion after the
// flush are not synced, so a power cut can undo them). The next Open cuts
// it again and keeps what the second process committed after the cut,
// which lives in a later write-ahead log.
func TestCrashTornValueLogTwice(t *testing.T) {
	dir := t.TempDir()
	runTornChild(t, dir, tornBatches)
	tearLastCommit(t, dir)
	wals, err := filepath.Glob(filepath.Join(dir, "*.mem"))
	if err != nil || len(wals) == 0 {
		t.Fatalf("no write-ahead log after the kill: %v", err)
	}
	saved := map[string][]byte{}
	for _, w := range wals {
		b, err := os.ReadFile(w)
		if err != nil {
			t.Fatal(err)
		}
		saved[w] = b
	}
	runTornChild(t, dir, 1) // cuts the torn commit, then commits seq 30 to 39
	for w, b := range saved {
		if err := os.WriteFile(w, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	j := openT(t, dir)
	defer j.Close()
	checkTornJournal(t, j, tornBatches*tornPerBatch)
}

// runTornChild runs tornChild with batches batches on dir and kills it
// once they are acknowledged.
func runTornChild(t *testing.T, dir string, batches int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), tornChildEnv+"="+dir, tornBatchesEnv+"="+strconv.Itoa(batches))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child: %q, %v, stderr: %s", line, err, stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
}

// tearLastCommit zeroes the value-log bytes of the last half of the last
// commit's records: the last entries of the newest value-log file that
// holds any, as pages that never reached the disk.
func tearLastCommit(t *testing.T, dir string) {
	t.Helper()
	vlog, end := lastValueLogData(t, dir)
	f, err := os.OpenFile(vlog, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	lost := int64(tornPerBatch / 2 * 1100)
	if _, err := f.WriteAt(make([]byte, lost), end-lost); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkTornJournal checks that j holds size records, that each embeds its
// seq and prev (Scrub, which also checks every stored hash), and that the
// root of that size reads.
func checkTornJournal(t *testing.T, j *Journal, size uint64) {
	t.Helper()
	if got := j.Size(); got != size {
		t.Fatalf("size %d, want %d", got, size)
	}
	var n uint64
	if err := j.Scrub(context.Background(), func(seq uint64, rec []byte, prev [32]byte) error {
		n++
		return checkEmbedded(seq, rec, prev)
	}); err != nil {
		t.Fatalf("scrub: %v", err)
	}
	if n != size {
		t.Fatalf("scrub saw %d records, size %d", n, size)
	}
	if _, err := j.Root(size); err != nil {
		t.Fatalf("root: %v", err)
	}
}

// lastValueLogData returns the newest *.vlog file in dir holding data
// past its header, and the offset where its non-zero bytes end.
func lastValueLogData(t *testing.T, dir string) (string, int64) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(files)))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		end := len(bytes.TrimRight(b, "\x00"))
		if end > 4096 {
			return name, int64(end)
		}
	}
	t.Fatal(errors.New("no value-log file holds records"))
	return "", 0
}
