package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const crashEnv = "EDGESEAL_STORE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashChild(dir)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashChild appends from 32 goroutines forever and prints "seq leafhex"
// for each acknowledged append, until it is killed.
func crashChild(dir string) {
	j, err := Open(context.Background(), Options{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := 0; ; i++ {
				e := Entry{Build: build(fmt.Sprintf("g%d-i%d-pid%d", g, i, os.Getpid()))}
				if i%5 == 0 {
					data := fmt.Appendf(nil, "payload g%d i%d pid%d", g, i, os.Getpid())
					e.Payloads = []Payload{{Digest: sha256.Sum256(data), Data: data}}
				}
				a, err := j.Append(context.Background(), e)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(3)
				}
				line := fmt.Sprintf("%d %x\n", a.Seq, a.Leaf)
				mu.Lock()
				_, err = os.Stdout.WriteString(line)
				mu.Unlock()
				if err != nil {
					os.Exit(4)
				}
			}
		})
	}
	wg.Wait()
}

// TestCrashKill9 kills an appending child with SIGKILL at random moments,
// 20 times on the same directory, and checks after each kill that every
// acknowledged append survived with its leaf hash and that Scrub passes.
func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	acked := map[uint64][32]byte{}
	var maxAcked uint64
	rounds := 20
	for round := range rounds {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var got []byte
		readDone := make(chan error, 1)
		go func() {
			var err error
			got, err = io.ReadAll(out)
			readDone <- err
		}()
		time.Sleep(time.Duration(150+rand.IntN(700)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("round %d: kill: %v (child stderr: %s)", round, err, stderr.String())
		}
		if err := <-readDone; err != nil {
			t.Fatalf("round %d: read child: %v", round, err)
		}
		werr := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("round %d: child exited on its own: %v, stderr: %s", round, werr, stderr.String())
		}

		n := 0
		sc := bufio.NewScanner(bytes.NewReader(got))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 {
				continue
			}
			seq, err1 := strconv.ParseUint(f[0], 10, 64)
			leaf, err2 := hex.DecodeString(f[1])
			if err1 != nil || err2 != nil || len(leaf) != 32 {
				continue // a line torn by the kill
			}
			if old, dup := acked[seq]; dup && old != [32]byte(leaf) {
				t.Fatalf("round %d: seq %d acknowledged twice with different leaves", round, seq)
			}
			acked[seq] = [32]byte(leaf)
			maxAcked = max(maxAcked, seq)
			n++
		}

		j, err := Open(context.Background(), Options{Dir: dir, Logger: testLogger(t)})
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		if len(acked) > 0 && j.Size() <= maxAcked {
			t.Fatalf("round %d: size %d but seq %d was acknowledged", round, j.Size(), maxAcked)
		}
		for seq, leaf := range acked {
			rec, err := j.Record(seq)
			if err != nil {
				t.Fatalf("round %d: acknowledged seq %d lost: %v", round, seq, err)
			}
			if leafHash(rec) != leaf {
				t.Fatalf("round %d: seq %d has another leaf than acknowledged", round, seq)
			}
		}
		if err := j.Scrub(context.Background(), checkEmbedded); err != nil {
			t.Fatalf("round %d: scrub: %v", round, err)
		}
		t.Logf("round %d: %d acknowledged this round, size %d", round, n, j.Size())
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if len(acked) < rounds {
		t.Fatalf("only %d appends acknowledged over %d rounds; the test proved little", len(acked), rounds)
	}
}
