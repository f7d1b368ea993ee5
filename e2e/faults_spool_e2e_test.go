package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// spoolFaults are the deterministic faults of the spool's own moves
// beyond "agent spool moves and directory syncs" (which fails every
// rename and sync of the folders, so that nothing moves until strace
// detaches): each leaves a pair in a state a failing disk can leave, and
// the pair must then get its receipt under its own name (liveness), its
// export journaled once (the rig's check).
func (r *faultRig) spoolFaults(ctx context.Context) {
	r.spoolLookupFault(ctx)
	r.spoolHalfMoveFault(ctx)
}

// dropSpoolPair drops one export pair named name into the spool folder,
// as faultRig.spool does (data file renamed in after its sidecar), and
// counts it among the pairs that must get a receipt.
func (r *faultRig) dropSpoolPair(name string, n int) string {
	r.t.Helper()
	id := "spool-" + strings.TrimSuffix(name, ".csv")
	meta := fmt.Sprintf(`{"id":%q,"workflow":"monthly-report","app":"desktop","classification":"internal","destination":"archive","principal":"n8n-prod"}`, id)
	if err := os.WriteFile(filepath.Join(r.spoolDir, "."+name), fmt.Appendf(nil, "month,total\n2024-06,%d\n", n), 0o640); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.spoolDir, name+".meta.json"), []byte(meta), 0o640); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(r.spoolDir, "."+name), filepath.Join(r.spoolDir, name)); err != nil {
		r.t.Fatal(err)
	}
	r.spooled[name] = id
	return id
}

// spoolEntries lists where the pair name is: its entries in the spool
// folder and in done/ (any slot, NAME~k included).
func (r *faultRig) spoolEntries(name string) []string {
	var out []string
	for _, sub := range []string{"", "done", "rejected"} {
		ents, _ := os.ReadDir(filepath.Join(r.spoolDir, sub))
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), name) {
				out = append(out, filepath.Join(sub, e.Name()))
			}
		}
	}
	slices.Sort(out)
	return out
}

// spoolWhere says where each pair still without a receipt is.
func (r *faultRig) spoolWhere() map[string][]string {
	out := make(map[string][]string, len(r.spooled))
	for name := range r.spooled {
		out[name] = r.spoolEntries(name)
	}
	return out
}

// waitSpool waits up to d for the pair name's entries to be want.
func (r *faultRig) waitSpool(label, name string, want []string, d time.Duration) {
	r.t.Helper()
	want = slices.Sorted(slices.Values(want))
	deadline := time.Now().Add(d)
	for got := r.spoolEntries(name); !slices.Equal(got, want); got = r.spoolEntries(name) {
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: %s is at %v after %v, want %v\nagent:\n%s", label, name, got, d, want, tail(r.ag.stderr.String()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// spoolLookupFault: every open of the pair's receipt name in done/ fails
// with ENOSPC while the agent takes it (the lookup that picks the pair's
// name in done/). The pair must wait in the spool folder and, once the
// disk answers again, end under its own name with its receipt: a failed
// lookup once counted as a name in use, and the pair went to NAME~2
// (what left three pairs of a 200-fault soak, all in agent openat
// rounds, without their receipt).
func (r *faultRig) spoolLookupFault(ctx context.Context) {
	t := r.t
	t.Helper()
	name := "lookup-00.csv"
	f := fault{Name: "agent spool receipt lookup", Target: "agent", Syscalls: []string{"openat"}, Errno: "ENOSPC", When: 1, Plus: true,
		Paths: []string{filepath.Join(r.spoolDir, "done", name+".receipt.json"), name + ".receipt.json"}}
	label := f.String()
	in := inject(t, r.ag.cmd.Process.Pid, f)
	r.dropSpoolPair(name, 1)
	if n := in.waitInjected(faultHit, r.ag.exited); n == 0 {
		t.Fatalf("%s: no call failed: the fault did not hit its path", label)
	}
	time.Sleep(500 * time.Millisecond) // a few polls under the fault
	injected := in.injected()
	in.detach()
	if got := r.spoolEntries(name); slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "done/"+name+"~") }) {
		t.Fatalf("%s: the pair went to another name: %v", label, got)
	}
	r.waitSpool(label, name, []string{"done/" + name + ".meta.json", "done/" + name + ".receipt.json"}, faultHit)
	r.stopBoth()
	r.check(ctx, label)
	r.restart()
	t.Logf("%s: %d calls failed; the pair waited, then got its receipt under its name", label, injected)
}

// spoolHalfMoveFault: the sidecar's rename into done/ fails with EIO
// after the data file moved (its receipt written), and so does every
// later attempt to move it, until the agent is killed: a crash with the
// pair half moved. The next start must move the sidecar beside its
// receipt and drop the payload copy from done/.
func (r *faultRig) spoolHalfMoveFault(ctx context.Context) {
	t := r.t
	t.Helper()
	name := "halfmoved-00.csv"
	f := fault{Name: "agent spool half-moved pair", Target: "agent", Syscalls: []string{"rename", "renameat", "renameat2"}, Errno: "EIO", When: 1, Plus: true,
		Paths: []string{name + ".meta.json"}} // the renameat relative to the spool folder names it
	label := f.String()
	in := inject(t, r.ag.cmd.Process.Pid, f)
	r.dropSpoolPair(name, 2)
	if n := in.waitInjected(faultHit, r.ag.exited); n == 0 {
		t.Fatalf("%s: no call failed: the fault did not hit its path", label)
	}
	half := []string{"done/" + name, "done/" + name + ".receipt.json", name + ".meta.json"} // sorted
	r.waitSpool(label, name, half, faultHit)
	time.Sleep(300 * time.Millisecond) // the polls retry the sidecar's move, and fail
	r.ag.kill()
	injected := in.injected()
	in.detach()
	if got := r.spoolEntries(name); !slices.Equal(got, half) {
		t.Fatalf("%s: after the crash %s is at %v, want half moved %v", label, name, got, half)
	}
	if injected < 2 {
		t.Fatalf("%s: %d calls failed; the polls did not retry the move under the fault", label, injected)
	}
	r.stopBoth()
	r.check(ctx, label)
	r.restart()
	r.waitSpool(label, name, []string{"done/" + name + ".meta.json", "done/" + name + ".receipt.json"}, faultHit)
	t.Logf("%s: %d calls failed, the agent was killed with the pair half moved; the restart finished the move", label, injected)
}
