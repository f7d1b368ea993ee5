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
	"strings"
	"syscall"
	"testing"
	"time"
)

const tornChildEnv = "EDGESEAL_STORE_TORN_CHILD"

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

// tornChild commits tornBatches batches, prints "ready" and waits to be
// killed (no Close: the memtable write-ahead log is what the next Open
// replays).
func tornChild(dir string) {
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
	for range tornBatches {
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
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), tornChildEnv+"="+dir)
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

	// The last commit's records are the last tornPerBatch entries of the
	// newest value-log file that holds any: zero the last half of them.
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

	const want = (tornBatches - 1) * tornPerBatch
	for round := range 2 {
		j := openT(t, dir)
		if got := j.Size(); got != want+uint64(round) {
			t.Fatalf("open %d: size %d, want %d", round, got, want+uint64(round))
		}
		var n uint64
		if err := j.Scrub(context.Background(), func(seq uint64, rec []byte, prev [32]byte) error {
			n++
			return checkEmbedded(seq, rec, prev)
		}); err != nil {
			t.Fatalf("open %d: scrub: %v", round, err)
		}
		if n != j.Size() {
			t.Fatalf("open %d: scrub saw %d records, size %d", round, n, j.Size())
		}
		if _, err := j.Root(j.Size()); err != nil {
			t.Fatalf("open %d: root: %v", round, err)
		}
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
