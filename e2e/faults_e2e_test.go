package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/internal/soaktest"
)

// faultWindow is how long a fault stays injected when nothing fails
// sooner (the randomized set); the deterministic set waits for its first
// failure up to faultHit.
const (
	faultWindow = 2 * time.Second
	faultHit    = 20 * time.Second
	// faultRounds is the randomized set's injections per EDGESEAL_SOAK
	// unit: make soak (SOAK=10) runs 200.
	faultRounds = 20
	// faultRegressionSeed is the plan make test replays: its third
	// fault (every fsync of the archive failing from the second on)
	// once left the archive's export index unopenable.
	faultRegressionSeed = 1796646779224695750
)

// objectDirs are the fan-out directories of the archive's object store,
// the paths its directory syncs use.
func objectDirs(adata string) []string {
	dirs := make([]string, 0, 256)
	for i := range 256 {
		dirs = append(dirs, filepath.Join(adata, "objects", "sha256", fmt.Sprintf("%02x", i)))
	}
	return dirs
}

// TestFaultsDeterministic injects one failure into each durable write
// path of the real daemons, the first call failing and every later one
// until strace detaches: the agent's journal commit under export load and
// while it journals receipts (delivery), the spool's moves and directory
// syncs (every round drops pairs in the spool folder; a receipt file
// written there counts as an acknowledgement), the archive's log and index
// commit, and the archive's object store (the object's fsync, its link,
// the directory sync). Each must hit. After each: a journal fault ends its
// daemon with exit status 1 and the alarm; an object-store fault raises
// the alarm object.write-failed (the bundle is not receipted) and leaves
// the archive running, unless it also failed a journal's fsync (every
// fsync fails: then the archive exits as for a journal); then both daemons are
// stopped and checked (every export answered 201 journaled once, the
// journal scrubs, every receipt on the agent names a bundle the archive
// logged and stores, the archive's log, index and objects agree), started
// again, and at the end the backlog drains. The spool's own faults
// (spoolFaults: a failed receipt lookup, a pair half moved by a failed
// rename and a crash) must end with the pair's receipt under its name.
// Then the quarantine's fault (quarantineFault) and the export index's
// MANIFEST failing its fsync while the archive stops (searchIndexFault).
func TestFaultsDeterministic(t *testing.T) {
	start := time.Now()
	r := newFaultRig(t)
	ctx := t.Context()
	faults := []struct {
		f       fault
		provoke func(r *faultRig) faultOpts
		alert   string // in the target's log
		mayExit bool   // the fault also reaches the journals' own fsyncs
	}{
		{f: fault{Name: "agent journal commit", Target: "agent", Syscalls: []string{"msync"}, Errno: "EIO", When: 1, Plus: true, Fatal: true}},
		{f: fault{Name: "agent receipts and outbox deletes", Target: "agent", Syscalls: []string{"msync"}, Errno: "ENOSPC", When: 1, Plus: true, Fatal: true},
			provoke: (*faultRig).receiptsPending},
		{f: fault{Name: "agent spool moves and directory syncs", Target: "agent", Syscalls: []string{"rename", "renameat", "renameat2", "fsync"}, Errno: "EIO", When: 1, Plus: true,
			Paths: []string{r.spoolDir, filepath.Join(r.spoolDir, "done")}}},
		{f: fault{Name: "archive log and index commit", Target: "archive", Syscalls: []string{"msync"}, Errno: "EIO", When: 1, Plus: true, Fatal: true},
			alert: "ALERT storage.failed"},
		{f: fault{Name: "archive object fsync", Target: "archive", Syscalls: []string{"fsync", "fdatasync"}, Errno: "EIO", When: 1, Plus: true},
			alert: "ALERT object.write-failed", mayExit: true},
		{f: fault{Name: "archive object link", Target: "archive", Syscalls: []string{"linkat", "link"}, Errno: "ENOSPC", When: 1, Plus: true},
			alert: "ALERT object.write-failed"},
		{f: fault{Name: "archive object directory sync", Target: "archive", Syscalls: []string{"fsync"}, Errno: "EIO", When: 1, Plus: true, Paths: objectDirs(r.adata)},
			alert: "ALERT object.write-failed"},
	}
	for i, c := range faults {
		var fo faultOpts
		if c.provoke != nil {
			fo = c.provoke(r)
		}
		o := r.runFault(ctx, i, c.f, faultHit, fo)
		if o.injected == 0 {
			t.Fatalf("%s: no call failed: the fault did not hit its path", c.f)
		}
		if c.alert != "" && !(c.mayExit && o.exited) && !strings.Contains(o.logs, c.alert) {
			t.Errorf("%s: no %q in the %s's log", c.f, c.alert, c.f.Target)
		}
		if !c.f.Fatal && !c.mayExit && o.exited {
			t.Errorf("%s: the %s stopped (%s); an object-store failure must only fail the bundle", c.f, c.f.Target, o.status)
		}
	}
	r.spoolFaults(ctx)
	r.quarantineFault()
	r.searchIndexFault(ctx)
	r.drain(ctx)
	t.Logf("%d faults, the quarantine's and the search index's, each checked after a restart; took %v", len(faults), time.Since(start).Round(time.Millisecond))
}

// TestFaultsRandom injects randomized failures (system call, errno, the
// N-th call, once or from then on, agent or archive) under export load,
// EDGESEAL_SOAK x 20 of them that hit (make soak: 200), each followed by
// a restart and the full check. The seed is logged first;
// EDGESEAL_FAULT_SEED=N replays the same plan (strace counts per thread,
// so the interleaving may differ). Without EDGESEAL_SOAK (make test) it
// runs 3 faults of a fixed plan, faultRegressionSeed. Skipped under
// -short.
func TestFaultsRandom(t *testing.T) {
	if testing.Short() {
		t.Skip("randomized faults: -short")
	}
	want := faultRounds * soaktest.Scale(t)
	seed := uint64(time.Now().UnixNano())
	if os.Getenv(soaktest.Env) == "" {
		// make test: a taste, replaying a plan that once found a bug
		// so that a green run means the same thing every time; make
		// soak draws a new plan and runs the full set.
		want, seed = 3, faultRegressionSeed
	}
	if s := os.Getenv("EDGESEAL_FAULT_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("EDGESEAL_FAULT_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (EDGESEAL_FAULT_SEED=%d replays this plan)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	start := time.Now()
	r := newFaultRig(t)
	ctx := t.Context()
	hits, fatal := 0, 0
	for round := 0; hits < want; round++ {
		if round >= 3*want {
			t.Fatalf("seed %d: only %d of %d faults hit in %d rounds", seed, hits, want, round)
		}
		f := randomFault(rng, r.spoolDir, r.adata)
		o := r.runFault(ctx, round, f, faultWindow, faultOpts{})
		if o.injected > 0 {
			hits++
		}
		if o.exited {
			fatal++
		}
		if t.Failed() {
			t.Fatalf("seed %d, round %d: %s", seed, round, f)
		}
	}
	r.drain(ctx)
	t.Logf("seed %d: %d faults hit, %d stopped their daemon; 0 acknowledged exports lost, 0 receipts for bundles not stored, 0 corrupt journals; took %v",
		seed, hits, fatal, time.Since(start).Round(time.Millisecond))
}

// randomFault draws one fault: a target, a system call family, an errno
// and when. write(2) is not among them: failing every write of a Go
// process fails the runtime's own (its netpoller's eventfd), which no disk
// does, and the one file written with write(2) that a path can name,
// Badger's MANIFEST, is written too rarely to be hit in a round.
func randomFault(rng *rand.Rand, spoolDir, archiveData string) fault {
	type family struct {
		name  string
		calls []string
		paths []string
		fatal bool
	}
	agentFams := []family{
		{"journal commit (msync)", []string{"msync"}, nil, true},
		{"fsync", []string{"fsync", "fdatasync"}, nil, false},
		{"open", []string{"openat"}, nil, false},
		{"spool moves and directory syncs", []string{"rename", "renameat", "renameat2", "fsync"}, []string{spoolDir, filepath.Join(spoolDir, "done")}, false},
	}
	archiveFams := []family{
		{"log and index commit (msync)", []string{"msync"}, nil, true},
		{"object, quarantine and log fsync", []string{"fsync", "fdatasync"}, nil, false},
		{"object directory sync", []string{"fsync"}, objectDirs(archiveData), false},
		{"open", []string{"openat"}, nil, false},
		{"rename and link", []string{"rename", "renameat", "renameat2", "linkat"}, nil, false},
	}
	errnos := []string{"EIO", "ENOSPC", "EROFS"}
	f := fault{Target: "agent", Errno: errnos[rng.IntN(len(errnos))], When: 1 + rng.IntN(6), Plus: rng.IntN(2) == 0}
	fams := agentFams
	if rng.IntN(2) == 0 {
		f.Target, fams = "archive", archiveFams
	}
	fam := fams[rng.IntN(len(fams))]
	f.Name, f.Syscalls, f.Paths, f.Fatal = f.Target+" "+fam.name, fam.calls, fam.paths, fam.fatal
	switch {
	case fam.paths != nil:
		// Few calls on these paths: the first or the second.
		f.When = 1 + rng.IntN(2)
	case !f.Fatal:
		// Unfiltered: the N-th call of a thread, up to 12, so that
		// it lands at varied places.
		f.When = 1 + rng.IntN(12)
	}
	return f
}

// receiptsPending stops the archive and lets the clients build an
// outbox, then stops them; the round starts the archive again once the
// agent is traced, so that the agent's next commits are the receipts'
// and outbox deletes' (and the seal of their records).
func (r *faultRig) receiptsPending() faultOpts {
	r.ar.kill()
	stop := r.load(-1)
	time.Sleep(time.Second)
	stop()
	time.Sleep(time.Second) // sealed into the outbox, undelivered
	return faultOpts{noLoad: true, provoke: func() { r.ar = startArchiveProc(r.t, r.acfg) }}
}

// quarantineFault imports, with both daemons stopped, a file the archive
// refuses (not a bundle) while strace fails every sync of the quarantine
// folder: the refusal cannot be kept, so the import fails and answers
// nothing; the archive's log, index and objects still agree; the same
// import without the fault then refuses and quarantines it. Both daemons
// start again.
func (r *faultRig) quarantineFault() {
	t := r.t
	t.Helper()
	r.stopBoth()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "junk.tar"), []byte("not a bundle"), 0o644); err != nil {
		t.Fatal(err)
	}
	quar := filepath.Join(r.adata, "quarantine")
	if err := os.MkdirAll(quar, 0o750); err != nil {
		t.Fatal(err)
	}
	f := fault{Name: "archive quarantine", Target: "archive import", Syscalls: []string{"fsync"}, Errno: "EIO", When: 1, Plus: true, Paths: []string{quar}}
	trace := filepath.Join(t.TempDir(), "strace.out")
	args := f.straceArgs(0, trace)
	args = append(args[:len(args)-2], "--", agentBin, "archive", "import", dir, "--config", r.acfg) // strace runs the command: no -p
	out, err := exec.Command(needStrace(t), args...).CombinedOutput()
	injected := strings.Count(readFileString(trace), "(INJECTED)")
	if err == nil || injected == 0 {
		t.Fatalf("%s: import under the fault: %v, %d calls failed\n%s", f, err, injected, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "receipts", "junk.tar.rejection.json")); err == nil || !strings.Contains(string(out), "0 accepted, 0 refused") {
		t.Fatalf("%s: the import answered a refusal it could not keep:\n%s", f, out)
	}
	if out, code := bundlesCLI(t, "archive", "check", "--config", r.acfg); code != 0 {
		t.Fatalf("%s: archive check: exit %d\n%s", f, code, out)
	}
	if out, code := bundlesCLI(t, "archive", "import", dir, "--config", r.acfg); code != 1 || !strings.Contains(out, "0 accepted, 1 refused") {
		t.Fatalf("%s: import without the fault: exit %d\n%s", f, code, out)
	}
	sum := sha256.Sum256([]byte("not a bundle"))
	if _, err := os.Stat(filepath.Join(quar, hex.EncodeToString(sum[:])+".json")); err != nil {
		t.Fatalf("%s: not quarantined after the fault: %v", f, err)
	}
	t.Logf("%s: %d calls failed; the import failed without an answer, then refused and quarantined it", f, injected)
	r.restart()
}

func readFileString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
