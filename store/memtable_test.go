package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
)

const memTableEnv = "EDGESEAL_STORE_MEMTABLE_CHILD"

// memTableChild appends 3 MiB with 8 MiB memtables (as the agent daemon
// does), so it all sits in the memtable's write-ahead log, prints the
// size and waits to be killed.
func memTableChild(dir string) {
	j, err := Open(context.Background(), Options{Dir: dir, MemTableSize: 8 << 20})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	body := strings.Repeat("x", 1000)
	var wg sync.WaitGroup
	for g := range 30 { // concurrent appends share commits: quicker
		wg.Go(func() {
			for i := range 100 {
				if _, err := j.Append(context.Background(), Entry{Build: build(fmt.Sprint(g, i, body))}); err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(3)
				}
			}
		})
	}
	wg.Wait()
	fmt.Printf("%d\n", j.Size())
	select {}
}

// TestOpenAfterKillWithLargerMemTable: a journal written with 8 MiB
// memtables and killed opens with the default (2 MiB) size, as tools and
// tests open the agent's journal; badger would otherwise exit the process
// replaying the memtable log ("Arena too small").
func TestOpenAfterKillWithLargerMemTable(t *testing.T) {
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), memTableEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child: %v", err)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	var size uint64
	if _, err := fmt.Sscan(line, &size); err != nil || size != 3000 {
		t.Fatalf("child wrote %q", line)
	}
	j := openT(t, dir) // default memtable size
	defer j.Close()
	if j.Size() != size {
		t.Fatalf("size %d after reopen, want %d", j.Size(), size)
	}
	if err := j.Scrub(context.Background(), func(seq uint64, rec []byte, prev [32]byte) error { return checkEmbedded(seq, rec, prev) }); err != nil {
		t.Fatal(err)
	}
}
