package tlog_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/archive/tlog"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/internal/soaktest"
)

const (
	crashDirEnv = "EDGESEAL_TLOG_CRASH_DIR"
	crashKeyEnv = "EDGESEAL_TLOG_CRASH_KEY"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(klogChildEnv); dir != "" {
		klogChild(dir) // before any routing, as a process whose first log is opened without it
		os.Exit(0)
	}
	tlog.RouteLibraryLogs(slog.New(slog.DiscardHandler))
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(dir, os.Getenv(crashKeyEnv))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashChild appends from 16 goroutines until killed, printing
// "index entry" for each acknowledged append.
func crashChild(dir, skey string) {
	s, v, err := crashKeys(skey)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child key:", err)
		os.Exit(2)
	}
	l, err := tlog.OpenPOSIX(context.Background(), tlog.POSIXOptions{Dir: dir, Signer: s, Verifier: v, CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	run := mrand.Uint64()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				e := fmt.Sprintf("run%x-g%d-i%d", run, g, i)
				idx, err := l.Append(context.Background(), []byte(e))
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "%d %s\n", idx, e) // unbuffered: one write per ack
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// crashKeys opens the note keys passed as "skey vkey".
func crashKeys(keys string) (note.Signer, note.Verifier, error) {
	skey, vkey, _ := strings.Cut(keys, " ")
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, nil, err
	}
	v, err := note.NewVerifier(vkey)
	return s, v, err
}

// TestCrashKeepsAcknowledgedEntries kills (SIGKILL) a process appending
// from 16 goroutines at a random moment, three times over the same log,
// and checks after each that every acknowledged entry is at its index,
// that the tree is whole (a checkpoint of it is published on reopen, its
// root matches the entries, the checkpoint before the crash is consistent
// with it) and that appends go on.
func TestCrashKeepsAcknowledgedEntries(t *testing.T) {
	dir := t.TempDir()
	skey, vkey, err := note.GenerateKey(rand.Reader, "edgeseal-archive")
	if err != nil {
		t.Fatal(err)
	}
	keys := skey + " " + vkey
	s, v, err := crashKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	acked := map[uint64]string{}
	var before tlog.Checkpoint
	for round := range 3 * soaktest.Scale(t) { // make soak: more kills
		target := 50 + mrand.IntN(400)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashKeyEnv+"="+keys)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		n := 0
		killed := false
		for sc.Scan() {
			idx, e, ok := strings.Cut(sc.Text(), " ")
			i, err := strconv.ParseUint(idx, 10, 64)
			if !ok || err != nil {
				t.Fatalf("child said %q", sc.Text())
			}
			if old, dup := acked[i]; dup {
				t.Fatalf("round %d: index %d acknowledged for %q and %q", round, i, old, e)
			}
			acked[i] = e
			if n++; n == target && !killed {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				killed = true // lines already written are acknowledgements too
			}
		}
		if err := cmd.Wait(); !killed || err == nil {
			t.Fatalf("round %d: child ended by itself after %d acks: %v", round, n, err)
		}

		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		l, err := tlog.OpenPOSIX(ctx, tlog.POSIXOptions{Dir: dir, Signer: s, Verifier: v, CheckpointInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		size, err := l.Size(ctx)
		if err != nil {
			t.Fatal(err)
		}
		leaves := make([][32]byte, size)
		for i := range size {
			e, err := l.Entry(ctx, i)
			if err != nil {
				t.Fatalf("round %d: entry %d of %d: %v", round, i, size, err)
			}
			if want, ok := acked[i]; ok && string(e) != want {
				t.Fatalf("round %d: entry %d is %q, acknowledged as %q", round, i, e, want)
			}
			leaves[i] = merkle.LeafHash(e)
		}
		for i := range acked {
			if i >= size {
				t.Fatalf("round %d: acknowledged entry %d lost (size %d)", round, i, size)
			}
		}
		c, err := l.AwaitCheckpoint(ctx, size)
		if err != nil {
			t.Fatalf("round %d: no checkpoint after reopen: %v", round, err)
		}
		if c.Size != size || c.Root != merkle.RangeRoot(merkle.CompactRange(leaves)) {
			t.Fatalf("round %d: checkpoint %d %x does not match the %d entries", round, c.Size, c.Root, size)
		}
		if before.Size > 0 {
			p, err := l.ConsistencyProof(ctx, before.Size, c.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := merkle.VerifyConsistency(p, before.Size, c.Size, before.Root, c.Root); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		idx, err := l.Append(ctx, []byte(fmt.Sprintf("after crash %d", round)))
		if err != nil || idx != size {
			t.Fatalf("round %d: append after reopen = %d, %v; want %d", round, idx, err, size)
		}
		acked[idx] = fmt.Sprintf("after crash %d", round)
		if before, err = l.AwaitCheckpoint(ctx, idx+1); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		t.Logf("round %d: %d acknowledged before the kill, log of %d after", round, n, size)
	}
}
