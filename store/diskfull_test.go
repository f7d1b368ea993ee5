package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/internal/tmpfstest"
)

// writeFiller fills a file of n real bytes (tmpfs allocates pages on write).
func writeFiller(t *testing.T, path string, n int) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Repeat([]byte{0xa5}, n), 0o600); err != nil {
		t.Fatalf("filler: %v", err)
	}
}

// fullEntry is a record with a 4 KiB payload unique to tag.
func fullEntry(tag string) Entry {
	data := []byte(strings.Repeat(tag+";", 4096/(len(tag)+1)+1)[:4096])
	return Entry{Build: build(tag), Payloads: []Payload{{Digest: sha256.Sum256(data), Data: data}}}
}

// checkAcked reopens dir and checks that every acknowledged record is
// there with its leaf hash, that Scrub passes, and that appends work.
func checkAcked(t *testing.T, dir string, acked map[uint64][32]byte) {
	t.Helper()
	j := openT(t, dir, func(o *Options) { o.MinFreeBytes = 4 << 20 })
	defer j.Close()
	for seq, leaf := range acked {
		rec, err := j.Record(seq)
		if err != nil {
			t.Fatalf("acknowledged record %d: %v", seq, err)
		}
		if leafHash(rec) != leaf {
			t.Fatalf("acknowledged record %d changed", seq)
		}
	}
	if err := j.Scrub(context.Background(), checkEmbedded); err != nil {
		t.Fatalf("scrub after disk full: %v", err)
	}
	if _, err := j.Append(context.Background(), fullEntry("after-reopen")); err != nil {
		t.Fatalf("append after reopen: %v", err)
	}
}

// TestDiskFullMinFree fills a 48 MiB tmpfs through the journal with a
// 12 MiB margin (Badger's flushes and compactions need room beside the
// appends): appends fail fast with *SpaceError (errors.Is ENOSPC),
// nothing acknowledged is lost, and appends resume once a filler file is
// deleted.
func TestDiskFullMinFree(t *testing.T) {
	mnt := tmpfstest.Mount(t, 48<<20)
	writeFiller(t, filepath.Join(mnt, "filler"), 16<<20)
	dir := filepath.Join(mnt, "journal")
	j := openT(t, dir, func(o *Options) { o.MinFreeBytes = 12 << 20 })
	defer func() {
		if j != nil {
			j.Close()
		}
	}()

	var mu sync.Mutex
	acked := map[uint64][32]byte{}
	var firstErr error
	var slowest time.Duration
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				start := time.Now()
				a, err := j.Append(context.Background(), fullEntry(fmt.Sprintf("g%d-%d", g, i)))
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					slowest = max(slowest, time.Since(start))
					mu.Unlock()
					return
				}
				acked[a.Seq] = a.Leaf
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	var se *SpaceError
	if !errors.As(firstErr, &se) {
		t.Fatalf("filling the disk: want *SpaceError, got %T %v", firstErr, firstErr)
	}
	if !errors.Is(firstErr, syscall.ENOSPC) {
		t.Fatalf("SpaceError does not match syscall.ENOSPC: %v", firstErr)
	}
	if slowest > 500*time.Millisecond {
		t.Errorf("a refused append took %v; it should fail fast", slowest)
	}
	t.Logf("%d records acknowledged before: %v", len(acked), firstErr)

	// Still refused while the disk stays full, and quickly.
	start := time.Now()
	if _, err := j.Append(context.Background(), fullEntry("still-full")); !errors.As(err, &se) {
		t.Fatalf("append on a full disk: want *SpaceError, got %v", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("refusal took %v", d)
	}

	// Space returns: appends resume on the same journal.
	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		a, err := j.Append(context.Background(), fullEntry("resumed"))
		if err == nil {
			acked[a.Seq] = a.Leaf
			break
		}
		if !errors.As(err, &se) || time.Now().After(deadline) {
			t.Fatalf("append after freeing space: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = nil
	checkAcked(t, dir, acked)
}

const diskFullChildEnv = "EDGESEAL_STORE_DISKFULL_CHILD"

// diskFullChild is the child of TestDiskFullNoMargin (TestMain runs it
// when diskFullChildEnv names dir): it appends with the free-space check
// off until an append fails or the process dies, printing "seq leafhex"
// for each acknowledged append and, on an error, "ERR <ENOSPC?> <type>:
// <error>" on stderr.
func diskFullChild(dir string) {
	j, err := Open(context.Background(), Options{Dir: dir, MinFreeBytes: -1})
	if err != nil {
		fmt.Fprintf(os.Stderr, "ERR %v %T: %v\n", errors.Is(err, syscall.ENOSPC), err, err)
		os.Exit(3)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				a, err := j.Append(context.Background(), fullEntry(fmt.Sprintf("c%d-%d", g, i)))
				mu.Lock()
				if err != nil {
					fmt.Fprintf(os.Stderr, "ERR %v %T: %v\n", errors.Is(err, syscall.ENOSPC), errors.Unwrap(err), err)
					os.Exit(3)
				}
				fmt.Printf("%d %x\n", a.Seq, a.Leaf)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestDiskFullNoMargin fills a tmpfs through the journal with the
// free-space check off, in a child process. Badger writes through
// memory-mapped sparse files, so the child either gets an error (which
// must match syscall.ENOSPC) or dies of SIGBUS; either way, after the
// filler is deleted, every acknowledged record is there, Scrub passes and
// appends resume.
func TestDiskFullNoMargin(t *testing.T) {
	mnt := tmpfstest.Mount(t, 32<<20)
	writeFiller(t, filepath.Join(mnt, "filler"), 16<<20)
	dir := filepath.Join(mnt, "journal")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), diskFullChildEnv+"="+dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()

	acked := map[uint64][32]byte{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue // the test framework's own lines
		}
		seq, err1 := strconv.ParseUint(f[0], 10, 64)
		raw, err2 := hex.DecodeString(f[1])
		if err1 != nil || err2 != nil || len(raw) != 32 {
			continue
		}
		acked[seq] = [32]byte(raw)
	}
	if len(acked) == 0 {
		t.Fatalf("child acknowledged nothing: %v\n%s", runErr, stderr.String())
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled():
		t.Logf("child died of %v after %d acknowledged appends", ws.Signal(), len(acked))
	case ws.ExitStatus() == 2 && strings.Contains(stderr.String(), "signal SIGBUS"):
		// The Go runtime turns a SIGBUS on a mapped file into a fatal error.
		t.Logf("child died of SIGBUS after %d acknowledged appends (Badger writes mmap'd sparse files; MinFreeBytes prevents this)", len(acked))
	case ws.ExitStatus() == 3:
		line, _, _ := strings.Cut(stderr.String()[strings.Index(stderr.String(), "ERR "):], "\n")
		t.Logf("child refused after %d acknowledged appends: %s", len(acked), line)
		if !strings.HasPrefix(line, "ERR true ") {
			t.Errorf("the disk-full error does not match syscall.ENOSPC: %s", line)
		}
	default:
		t.Fatalf("child ended without filling the disk: %v\n%.2000s", runErr, stderr.String())
	}

	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	checkAcked(t, dir, acked)
}
