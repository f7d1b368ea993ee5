package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/simulator"
)

// rig is a core over a real journal and a real TPM (simulator or swtpm).
type rig struct {
	t    *testing.T
	dir  string
	spec string
	tpm  *tpm.TPM
	j    *store.Journal
	core *Core
}

func openSimRig(t *testing.T, dir string) *rig {
	t.Helper()
	return openRig(t, dir, "simulator:"+filepath.Join(dir, "sim"))
}

func openRig(t *testing.T, dir, spec string, mod ...func(*Options)) *rig {
	t.Helper()
	r, err := tryOpenRig(t, dir, spec, mod...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tryOpenRig is openRig, the core's Open error returned (the TPM and
// journal open, closed at the end of the test).
func tryOpenRig(t *testing.T, dir, spec string, mod ...func(*Options)) (*rig, error) {
	t.Helper()
	ctx := context.Background()
	r := &rig{t: t, dir: dir, spec: spec}
	var err error
	r.tpm, err = tpm.Open(ctx, spec, tpm.Options{StateDir: filepath.Join(dir, "tpm"), Simulator: simulator.Open, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	key, err := r.tpm.DataKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r.j, err = store.Open(ctx, store.Options{Dir: filepath.Join(dir, "journal"), EncryptionKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.close)
	opts := Options{Site: "site-a", Device: "dev-1"}
	for _, m := range mod {
		m(&opts)
	}
	r.core, err = Open(ctx, opts, r.j, r.tpm)
	return r, err
}

func (r *rig) close() {
	if r.j != nil {
		r.j.Close()
		r.j = nil
	}
	if r.tpm != nil {
		r.tpm.Close()
		r.tpm = nil
	}
}

func (r *rig) trust() *trustfile.Trust {
	r.t.Helper()
	tr, err := trustfile.NewTrust("site-a", "dev-1", BundleIdentity(r.tpm.Identity()))
	if err != nil {
		r.t.Fatal(err)
	}
	return tr
}

func (r *rig) export(n int, tag string) []ExportReceipt {
	r.t.Helper()
	var out []ExportReceipt
	for i := range n {
		rc, err := r.core.Export(context.Background(), Export{
			Actor:    custody.Actor{Kind: "principal", ID: "tester", Via: "test"},
			ExportID: fmt.Sprintf("%s-%d", tag, i), App: "n8n", Workflow: "wf", Purpose: "audit",
			Schema: "s@1", Classification: "internal", Retention: "1y", Destination: "dst",
			Policy: wire.FormatHash(sha256.Sum256([]byte("policy"))), MediaType: "text/csv",
			Data: []byte(fmt.Sprintf("a,b\n%s,%d\n", tag, i)),
		})
		if err != nil {
			r.t.Fatal(err)
		}
		out = append(out, rc)
	}
	return out
}

func (r *rig) seal() (*SealResult, *bundle.Bundle) {
	r.t.Helper()
	res, err := r.core.Seal(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	if res == nil {
		r.t.Fatal("nothing sealed")
	}
	b, err := bundle.Read(bytes.NewReader(outboxBytes(r.t, r.j, res)), bundle.DefaultLimits)
	if err != nil {
		r.t.Fatal(err)
	}
	return res, b
}

// outboxBytes reads the bundle a seal stored in the outbox.
func outboxBytes(t *testing.T, j *store.Journal, res *SealResult) []byte {
	t.Helper()
	raw, ok, err := j.OutboxGet(context.Background(), res.ID)
	if err != nil || !ok {
		t.Fatalf("outbox %s: %v (found %v)", res.ID, err, ok)
	}
	if len(raw) != res.Bytes || sha256.Sum256(raw) != res.Digest {
		t.Fatalf("outbox %s: %d bytes, not the %d-byte bundle sealed", res.ID, len(raw), res.Bytes)
	}
	return raw
}

func mustVerify(t *testing.T, b *bundle.Bundle, tr *trustfile.Trust, prev *verify.State) *verify.State {
	t.Helper()
	rep := verify.Verify(b, tr, prev)
	if !rep.OK() {
		t.Fatalf("bundle does not verify:\n%s", rep)
	}
	return rep.State
}

func TestSealedChainVerifies(t *testing.T) {
	r := openSimRig(t, t.TempDir())
	tr := r.trust()
	var prev *verify.State
	seen := map[string]bool{}
	for round := range 3 {
		rcs := r.export(5+round, fmt.Sprintf("r%d", round))
		res, b := r.seal()
		prev = mustVerify(t, b, tr, prev)
		if prev.Counter != res.Counter {
			t.Fatalf("state counter %d, seal counter %d", prev.Counter, res.Counter)
		}
		recs, err := b.Records()
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			pr, err := custody.ParseRecord(rec)
			if err != nil {
				t.Fatal(err)
			}
			if pr.Type == custody.TypeExport {
				eb, err := pr.ExportBody()
				if err != nil {
					t.Fatal(err)
				}
				seen[eb.ExportID] = true
			}
		}
		for _, rc := range rcs {
			if !seen[rc.ExportID] {
				t.Fatalf("export %s (seq %d) not in its bundle", rc.ExportID, rc.Seq)
			}
		}
	}
	// Nothing pending: no bundle.
	if res, err := r.core.Seal(context.Background()); err != nil || res != nil {
		t.Fatalf("empty seal = %v, %v", res, err)
	}
	// The outbox holds one bundle per seal.
	n := 0
	if err := r.j.Outbox(context.Background(), func(string, []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("outbox has %d bundles, want 3", n)
	}
}

// A bundle verified out of order (an old bundle after a newer one) is
// caught by the counter and the checkpoint.
func TestReplayedOldBundleFails(t *testing.T) {
	r := openSimRig(t, t.TempDir())
	tr := r.trust()
	r.export(3, "a")
	_, b1 := r.seal()
	s1 := mustVerify(t, b1, tr, nil)
	r.export(3, "b")
	_, b2 := r.seal()
	s2 := mustVerify(t, b2, tr, s1)
	rep := verify.Verify(b1, tr, s2)
	if rep.OK() {
		t.Fatal("old bundle verified after a newer one")
	}
	failed := strings.Join(rep.Failed(), ",")
	if !strings.Contains(failed, verify.CheckCounterRising) {
		t.Fatalf("replay failed %s, want %s among them", failed, verify.CheckCounterRising)
	}
}

// After a PCR changes the TPM refuses to sign: the seal fails with the typed
// error, nothing is written for it, and journaling goes on; the sealer
// loop raises the pcr.authorization alarm once.
func TestPCRChangeStopsSealingNotJournaling(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := openRig(t, dir, "simulator:"+filepath.Join(dir, "sim"), func(o *Options) { o.SealInterval = 50 * time.Millisecond })
	r.export(2, "before")
	r.seal()
	if err := r.tpm.ExtendPCR(ctx, 7, []byte("firmware update")); err != nil {
		t.Fatal(err)
	}
	r.export(2, "after")
	cpSize, _, err := r.j.LastCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.core.Seal(ctx)
	var pe *tpm.PCRMismatchError
	if !errors.As(err, &pe) {
		t.Fatalf("seal after PCR extend: %v, want *tpm.PCRMismatchError", err)
	}
	after, _, err := r.j.LastCheckpoint()
	if err != nil || after != cpSize {
		t.Fatalf("checkpoint moved to %d (%v) on a failed seal", after, err)
	}
	if _, err := r.core.Export(ctx, Export{ExportID: "still", App: "n8n", Policy: wire.FormatHash([32]byte{}), Actor: custody.Actor{Kind: "principal", ID: "t"}, Data: []byte("x")}); err != nil {
		t.Fatalf("journaling stopped after PCR change: %v", err)
	}
	// The sealer loop raises the pcr.authorization alarm once.
	alarms := make(chan Alarm, 8)
	r.core.SetAlarmSink(func(a Alarm) { alarms <- a })
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); r.core.Start(sctx) }()
	select {
	case a := <-alarms:
		if a.Kind != AlarmPCRAuthorization || !strings.Contains(a.Detail, "PCR") {
			t.Fatalf("alarm %+v", a)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no alarm from the sealer loop")
	}
	stop()
	<-done
	if len(alarms) != 0 {
		t.Fatalf("%d more alarms", len(alarms))
	}
}

// Reopening the same state keeps the keys and the chain: a bundle sealed
// after a restart verifies against the state before it.
func TestRestartKeepsChain(t *testing.T) {
	dir := t.TempDir()
	r := openSimRig(t, dir)
	tr := r.trust()
	r.export(4, "a")
	_, b1 := r.seal()
	s1 := mustVerify(t, b1, tr, nil)
	r.close()

	r2 := openSimRig(t, dir)
	r2.export(4, "b")
	_, b2 := r2.seal()
	s2 := mustVerify(t, b2, tr, s1)
	if s2.Counter <= s1.Counter {
		t.Fatalf("counter %d after restart, was %d", s2.Counter, s1.Counter)
	}
}

func TestStartSealsOnCountAndOnStop(t *testing.T) {
	r := openSimRig(t, t.TempDir())
	r.core.opts.SealEvery = 5
	r.core.opts.SealInterval = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.core.Start(ctx); close(done) }()
	r.export(5, "count")
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, _, err := r.j.LastCheckpoint()
		if err == nil && n >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no seal after SealEvery records (last checkpoint %d, %v)", n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.export(2, "tail")
	size := r.j.Size()
	cancel()
	<-done
	n, _, err := r.j.LastCheckpoint()
	if err != nil || n < size {
		t.Fatalf("stop left records unsealed: checkpoint %d, size was %d (%v)", n, size, err)
	}
}
