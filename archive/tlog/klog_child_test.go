package tlog_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/archive/tlog"
)

const klogChildEnv = "EDGESEAL_TLOG_KLOG_CHILD_DIR"

// klogChild opens a POSIX log before anything routed Tessera's klog
// lines (an archive that rotates its key before its daemon starts does
// so), appends while its checkpoints are published (Tessera logs at
// each), and routes the lines meanwhile, twice.
func klogChild(dir string) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "edgeseal-archive")
	if err != nil {
		fmt.Fprintln(os.Stderr, "child key:", err)
		os.Exit(2)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	l, err := tlog.OpenPOSIX(context.Background(), tlog.POSIXOptions{Dir: dir, Signer: s, Verifier: v, CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 20 {
				if _, err := l.Append(context.Background(), fmt.Appendf(nil, "g%d-i%d", g, i)); err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(3)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	time.Sleep(150 * time.Millisecond) // a checkpoint published, unrouted
	tlog.RouteLibraryLogs(slog.New(slog.DiscardHandler))
	time.Sleep(150 * time.Millisecond)
	tlog.RouteLibraryLogs(slog.New(slog.DiscardHandler))
	wg.Wait()
	if err := l.Close(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "child close:", err)
		os.Exit(4)
	}
}

// TestKlogRoutedBeforeTessera: a process that opens a Tessera log before
// any daemon routed Tessera's log lines, then routes them while the log
// works, has no data race on klog's settings (the test binary is built
// with -race by make test) and exits cleanly.
func TestKlogRoutedBeforeTessera(t *testing.T) {
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), klogChildEnv+"="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "DATA RACE") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
