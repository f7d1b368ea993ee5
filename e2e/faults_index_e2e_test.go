package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// searchIndexFault stops the archive (SIGTERM) while strace fails every
// fsync of its export index's MANIFEST (Dir/search): at close Badger
// flushes the index's memtable, which holds the bundles indexed since the
// archive started, into a new table and records it in the MANIFEST, whose
// fsync fails. strace fails the call without performing it, so the bytes
// written stay in the page cache and the MANIFEST on disk may name the
// table: its file must stay. The archive must stop; with both daemons
// stopped the full check (edgeseal archive check opens the index) passes,
// and both start again. (Badger as published deleted the table, retried
// the flush forever, and the index no longer opened: "file does not exist
// for table N"; damagedSearchIndex then checks what the archive does with
// such an index.)
func (r *faultRig) searchIndexFault(ctx context.Context) {
	t := r.t
	t.Helper()
	before := r.ar.stats(t).LogSize
	stop := r.load(90) // bundles accepted now are indexed in the memtable
	for deadline := time.Now().Add(30 * time.Second); r.ar.stats(t).LogSize < before+2; {
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("archive search index fault: no bundle accepted in 30s (log %d)", before)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	time.Sleep(500 * time.Millisecond) // the indexer follows the log within milliseconds
	f := fault{Name: "archive search index MANIFEST at close", Target: "archive", Syscalls: []string{"fsync", "fdatasync"}, Errno: "EIO", When: 1, Plus: true,
		Paths: []string{filepath.Join(r.adata, "search", "MANIFEST")}}
	in := inject(t, r.ar.proc.cmd.Process.Pid, f)
	logStart := len(r.ar.stderr.String())
	if err := r.ar.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	hung := false
	select {
	case <-r.ar.proc.exited:
	case <-time.After(30 * time.Second):
		hung = true // Badger retrying the flush: detach, and it completes
	}
	injected := in.injected()
	in.detach()
	<-r.ar.proc.exited
	logs, status := r.ar.stderr.String()[logStart:], r.ar.proc.waitErr
	label := f.String()
	if injected == 0 {
		t.Fatalf("%s: no call failed: the index flushed nothing at close\n%s", label, tail(logs))
	}
	if hung {
		t.Errorf("%s: the archive did not stop in 30s under the fault\n%s", label, tail(logs))
	}
	if !strings.Contains(logs, "not retried") {
		t.Errorf("%s: no log line of the failed flush\n%s", label, tail(logs))
	}
	r.stopBoth()
	r.check(ctx, label)
	r.damagedSearchIndex()
	r.restart()
	t.Logf("%s: %d calls failed; the archive stopped (exit: %v), the index opens whole", label, injected, status)
}

// damagedSearchIndex removes the tables of the stopped archive's export
// index, as Badger once left it: edgeseal archive check must set the index
// aside, say so and pass (the index is rebuilt from the archive log).
func (r *faultRig) damagedSearchIndex() {
	t := r.t
	t.Helper()
	tables, _ := filepath.Glob(filepath.Join(r.adata, "search", "*.sst"))
	if len(tables) == 0 {
		t.Fatal("damaged search index: no table in the export index")
	}
	for _, f := range tables {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	out, code := bundlesCLI(t, "archive", "check", "--config", r.acfg)
	if code != 0 || !strings.Contains(out, "REBUILT  export index") || !strings.Contains(out, " 0 missing, 0 corrupt, 0 disagreements") {
		t.Fatalf("damaged search index: edgeseal archive check: exit %d\n%s", code, out)
	}
	if aside, _ := filepath.Glob(filepath.Join(r.adata, "search.damaged-*")); len(aside) != 1 {
		t.Fatalf("damaged search index: set aside as %v", aside)
	}
}
