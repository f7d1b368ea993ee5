package store

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

const openKillChildEnv = "EDGESEAL_STORE_OPENKILL_CHILD"

// openKillAppends is what the child appends before it is killed: 30
// batches of small records, about a memtable (2 MiB) of write-ahead log.
const openKillAppends = 30 * 256

// openKillChild is the child of BenchmarkOpenAfterKill (TestMain runs it
// when openKillChildEnv names dir): it opens the journal, appends
// openKillAppends records, prints "ready" and waits to be killed.
func openKillChild(dir string) {
	ctx := context.Background()
	j, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	es := make([]Entry, 256)
	for i := range es {
		es[i] = Entry{Build: build("open-bench")}
	}
	for range openKillAppends / len(es) {
		if _, err := j.AppendBatch(ctx, es); err != nil {
			fmt.Fprintln(os.Stderr, "child append:", err)
			os.Exit(2)
		}
	}
	fmt.Println("ready")
	time.Sleep(time.Minute) // killed long before; do not outlive a dead parent for long
}

// BenchmarkOpenAfterKill opens a journal of 1M records whose writer was
// SIGKILLed (no Close) right after acknowledging openKillAppends more:
// on top of the clean case Open replays the memtable write-ahead logs
// (each bounded by MemTableSize) and drops half-written tables. Each
// iteration starts from a copy of the cleanly closed journal.
func BenchmarkOpenAfterKill(b *testing.B) {
	const n = 1_000_000
	ctx := context.Background()
	tmpl := b.TempDir()
	fillClosedJournal(b, tmpl, n)
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	work := filepath.Join(b.TempDir(), "j")
	for b.Loop() {
		b.StopTimer()
		if err := os.RemoveAll(work); err != nil {
			b.Fatal(err)
		}
		copyDir(b, tmpl, work)
		killAfterAppends(b, exe, work)
		b.StartTimer()
		j, err := Open(ctx, Options{Dir: work})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if got := j.Size(); got != n+openKillAppends {
			b.Fatalf("size %d after kill, want %d", got, n+openKillAppends)
		}
		if err := j.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/open")
}

// killAfterAppends runs openKillChild on dir and SIGKILLs it once it
// has acknowledged its appends.
func killAfterAppends(b *testing.B, exe, dir string) {
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), openKillChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	ready := false
	for !ready && sc.Scan() {
		ready = sc.Text() == "ready"
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_, _ = io.Copy(io.Discard, out)
	_ = cmd.Wait()
	if !ready {
		b.Fatal("kill child ended before its appends were acknowledged")
	}
}

// copyDir copies the regular files of src (a closed journal) into dst.
func copyDir(b *testing.B, src, dst string) {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		b.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			b.Fatal(err)
		}
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
