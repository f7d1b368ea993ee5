package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/internal/testenv"
)

const crashEnv = "EDGESEAL_STORE_CRASH_CHILD"

var bodyRE = regexp.MustCompile(`"body":"([^"]*)"`)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashChild(dir)
		os.Exit(0)
	}
	if dir := os.Getenv(manifestFaultEnv); dir != "" {
		manifestFaultChild(dir)
		os.Exit(0)
	}
	if dir := os.Getenv(syncsEnv); dir != "" {
		syncsChild(dir)
		os.Exit(0)
	}
	if dir := os.Getenv(memTableEnv); dir != "" {
		memTableChild(dir)
		os.Exit(0)
	}
	if dir := os.Getenv(diskFullChildEnv); dir != "" {
		diskFullChild(dir)
		os.Exit(0)
	}
	if dir := os.Getenv(openKillChildEnv); dir != "" {
		openKillChild(dir)
		os.Exit(0)
	}
	if dir := os.Getenv(tornChildEnv); dir != "" {
		tornChild(dir)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashChild appends from 32 goroutines forever and prints
// "seq leafhex key" for each acknowledged append, until it is killed. Most
// entries carry an idempotency key equal to their body ("k-..."); every
// seventh is sent twice and the repeat must be a *DuplicateError naming
// the same seq. Unkeyed entries print "-" as key. Every fifth entry has a
// payload; every other of those is split from a prefix shared by the
// payloads of a window (a new one every few payloads, as payload cipher
// windows share their encapsulated key), and the line then ends with the
// payload's digest in hex.
func crashChild(dir string) {
	j, err := Open(context.Background(), Options{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	run := rand.Uint64() // keys must not repeat across children
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := 0; ; i++ {
				body, key := fmt.Sprintf("k-%x-g%d-i%d", run, g, i), []byte(nil)
				if i%4 == 3 {
					body = fmt.Sprintf("g%d-i%d-run%x", g, i, run)
				} else {
					key = []byte(body)
				}
				e := Entry{Build: build(body), Key: key}
				split := ""
				if i%5 == 0 {
					data := fmt.Appendf(nil, "payload g%d i%d run%x", g, i, run)
					p := Payload{Digest: sha256.Sum256(data), Data: data}
					if i%10 == 0 {
						prefix := fmt.Appendf(nil, "window %d run%x ", i/40, run)
						p.Data = append(prefix, data...)
						p.Digest, p.Prefix = sha256.Sum256(p.Data), len(prefix)
						split = fmt.Sprintf(" %x", p.Digest)
					}
					e.Payloads = []Payload{p}
				}
				a, err := j.Append(context.Background(), e)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(3)
				}
				if key != nil && i%7 == 0 {
					var de *DuplicateError
					if _, err := j.Append(context.Background(), e); !errors.As(err, &de) || de.Seq != a.Seq {
						fmt.Fprintf(os.Stderr, "child repeat of seq %d: %v\n", a.Seq, err)
						os.Exit(5)
					}
				}
				k := "-"
				if key != nil {
					k = string(key)
				}
				line := fmt.Sprintf("%d %x %s%s\n", a.Seq, a.Leaf, k, split)
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
// acknowledged append survived with its leaf hash, that every acknowledged
// idempotency key maps to its seq, that every record holding a key body
// has its key (record and key are committed together or not at all) and
// that Scrub passes.
func TestCrashKill9(t *testing.T) {
	if testing.Short() && !testenv.CI() {
		t.Skip("crash test skipped in -short mode")
	}
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	acked := map[uint64][32]byte{}
	ackedKeys := map[string]uint64{}
	ackedSplit := map[[32]byte]bool{} // split payloads acknowledged
	var maxAcked, checked uint64      // checked: records whose key was verified
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
		got = got[:bytes.LastIndexByte(got, '\n')+1] // drop a line torn by the kill
		sc := bufio.NewScanner(bytes.NewReader(got))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 4 {
				d, err := hex.DecodeString(f[3])
				if err != nil || len(d) != 32 {
					continue // a line torn by the kill
				}
				ackedSplit[[32]byte(d)] = true
				f = f[:3]
			}
			if len(f) != 3 {
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
			if f[2] != "-" {
				if !strings.HasPrefix(f[2], "k-") {
					t.Fatalf("round %d: bad key in line %q", round, sc.Text())
				}
				if old, dup := ackedKeys[f[2]]; dup && old != seq {
					t.Fatalf("round %d: key %s acknowledged as seq %d and %d", round, f[2], old, seq)
				}
				ackedKeys[f[2]] = seq
			}
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
		for d := range ackedSplit {
			got, err := j.Payload(d)
			if err != nil || sha256.Sum256(got) != d {
				t.Fatalf("round %d: acknowledged split payload %x: %v", round, d[:8], err)
			}
		}
		for key, seq := range ackedKeys {
			if got, err := j.Lookup([]byte(key)); err != nil || got != seq {
				t.Fatalf("round %d: acknowledged key %s: Lookup = %d, %v; want seq %d", round, key, got, err, seq)
			}
		}
		// Records added since the last round (acknowledged or not): a keyed
		// body has its key, pointing at that record.
		err = j.Records(context.Background(), checked, j.Size(), func(seq uint64, rec []byte) error {
			m := bodyRE.FindSubmatch(rec)
			if m == nil || !bytes.HasPrefix(m[1], []byte("k-")) {
				return nil
			}
			if got, err := j.Lookup(m[1]); err != nil || got != seq {
				return fmt.Errorf("record %d with key %s: Lookup = %d, %v", seq, m[1], got, err)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		checked = j.Size()
		if err := j.Scrub(context.Background(), checkEmbedded); err != nil {
			t.Fatalf("round %d: scrub: %v", round, err)
		}
		t.Logf("round %d: %d acknowledged this round, size %d, %d keys, %d split payloads", round, n, j.Size(), len(ackedKeys), len(ackedSplit))
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if len(acked) < rounds || len(ackedKeys) == 0 || len(ackedSplit) == 0 {
		t.Fatalf("only %d appends acknowledged over %d rounds; the test proved little", len(acked), rounds)
	}
}
