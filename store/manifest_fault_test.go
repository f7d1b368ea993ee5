package store

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/internal/testenv"
)

const manifestFaultEnv = "EDGESEAL_STORE_MANIFEST_CHILD"

// manifestFaultBatches is how many batches the child writes: about seven
// memtables of manifestFaultMemTable, so that tables are flushed and
// compacted.
const (
	manifestFaultBatches  = 100
	manifestFaultMemTable = 4 << 20
)

// manifestFaultChild writes manifestFaultBatches batches of small
// entries into the index in dir, printing "ok N" once batch N is
// acknowledged, then "done", and waits to be killed. Its first line is
// "pid N".
func manifestFaultChild(dir string) {
	fmt.Printf("pid %d\n", os.Getpid())
	indexMemTable = manifestFaultMemTable
	x, err := OpenIndex(context.Background(), IndexOptions{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	for i := range manifestFaultBatches {
		if err := x.Write(context.Background(), manifestFaultBatch(i, x.MaxBatchBytes())); err != nil {
			fmt.Fprintln(os.Stderr, "child write:", err)
			os.Exit(3)
		}
		fmt.Printf("ok %d\n", i)
	}
	fmt.Println("done")
	select {}
}

// manifestFaultBatch is batch i: as many 200-byte values (kept in the
// LSM tree, below the value threshold) as fit in max.
func manifestFaultBatch(i, max int) []IndexOp {
	var ops []IndexOp
	for n, size := 0, 0; ; n++ {
		op := IndexOp{Kind: IndexPut, Key: manifestFaultKey(i, n), Value: bytes.Repeat([]byte{byte('a' + n%26)}, 200)}
		if size += len(op.Key) + len(op.Value) + 16; size > max {
			return ops
		}
		ops = append(ops, op)
	}
}

func manifestFaultKey(i, n int) []byte { return fmt.Appendf(nil, "b%04d-%06d", i, n) }

// TestIndexOpensAfterManifestSyncFails: strace fails the fsync of the
// index's MANIFEST (the first one, or every one from the third on) while
// a child writes enough to flush memtables and compact tables, then the
// child is killed. A failed fsync leaves the bytes written in the page
// cache, so the MANIFEST may name the tables of the change whose sync
// failed: Badger must keep their files. The index must reopen and hold
// every batch the child acknowledged. (Badger as published removed them
// and the index no longer opened: "file does not exist for table N".)
func TestIndexOpensAfterManifestSyncFails(t *testing.T) {
	if testing.Short() {
		t.Skip("writes ~20 MiB a case under strace: -short")
	}
	straceBin, err := exec.LookPath("strace")
	if err != nil {
		testenv.Missing(t, "strace not installed (scripts/deps.sh test installs it)")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, when := range []string{"1+", "3+"} {
		t.Run("when="+when, func(t *testing.T) {
			dir := t.TempDir()
			x, err := OpenIndex(t.Context(), IndexOptions{Dir: dir, Logger: testLogger(t)}) // the MANIFEST, for strace -P
			if err != nil {
				t.Fatal(err)
			}
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
			trace := filepath.Join(t.TempDir(), "strace.out")
			cmd := exec.Command(straceBin, "-f", "-qq", "-o", trace, "-e", "trace=fsync,fdatasync",
				"-e", "inject=fsync,fdatasync:error=EIO:when="+when, "-P", filepath.Join(dir, "MANIFEST"),
				"--", exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), manifestFaultEnv+"="+dir)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := make(chan string)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					lines <- sc.Text()
				}
			}()
			// Until an injected failure is behind the child (its flushes
			// then fail and its writes stall) or it is gone.
			acked, pid := -1, 0
			deadline := time.After(90 * time.Second)
			var doneAt time.Time // the child wrote everything
		wait:
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						break wait
					}
					if l == "done" {
						doneAt = time.Now()
					} else if v, ok := strings.CutPrefix(l, "pid "); ok {
						pid, _ = strconv.Atoi(v)
					} else if n, err := strconv.Atoi(strings.TrimPrefix(l, "ok ")); err == nil {
						acked = n
					}
				case <-time.After(time.Second):
					if strings.Contains(readFile(trace), "(INJECTED)") {
						time.Sleep(time.Second) // what Badger does next
						break wait
					}
					if !doneAt.IsZero() && time.Since(doneAt) > 10*time.Second {
						break wait // background flushes and compactions are over
					}
				case <-deadline:
					break wait
				}
			}
			// The child dies as in a crash, with what it wrote in the
			// page cache; strace then exits.
			if pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			_ = cmd.Process.Kill()
			go func() {
				for range lines {
				}
			}()
			_ = cmd.Wait()
			injected := strings.Count(readFile(trace), "(INJECTED)")
			t.Logf("when=%s: %d batches acknowledged, %d fsyncs of the MANIFEST failed; child stderr:\n%s", when, acked+1, injected, lastLines(stderr.String(), 8))
			if injected == 0 {
				t.Fatalf("no fsync of the MANIFEST failed")
			}
			x, err = OpenIndex(t.Context(), IndexOptions{Dir: dir, Logger: testLogger(t)})
			if err != nil {
				t.Fatalf("reopen after the MANIFEST's fsync failed: %v", err)
			}
			defer x.Close()
			for i := 0; i <= acked; i++ {
				if _, err := x.Get(t.Context(), manifestFaultKey(i, 0)); err != nil {
					t.Fatalf("batch %d, acknowledged: %v", i, err)
				}
			}
		})
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
