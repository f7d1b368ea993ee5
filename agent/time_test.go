package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
	"github.com/edgeseal/edgeseal/tpm/simulator"
)

// Record times never go back in sequence order, so every bundle passes
// the verifier's records.time: 16 goroutines export at once (each takes
// the clock before the sequencer numbers its record) with a clock that
// runs backwards on every call, and across a restart.
func TestRecordTimesFollowSequence(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var calls atomic.Int64
	backwards := func() time.Time { return base.Add(-time.Duration(calls.Add(1)) * time.Millisecond) }

	open := func() (*tpm.TPM, *store.Journal, *Core) {
		tp, err := tpm.Open(ctx, "simulator:"+filepath.Join(dir, "sim"), tpm.Options{StateDir: filepath.Join(dir, "tpm"), Simulator: simulator.Open, Create: true})
		if err != nil {
			t.Fatal(err)
		}
		j, err := store.Open(ctx, store.Options{Dir: filepath.Join(dir, "journal")})
		if err != nil {
			t.Fatal(err)
		}
		c, err := Open(ctx, Options{Site: "site-a", Device: "dev-1", Now: backwards}, j, tp)
		if err != nil {
			t.Fatal(err)
		}
		return tp, j, c
	}
	exportAll := func(c *Core, round int) {
		var wg gosync.WaitGroup
		for g := range 16 {
			wg.Go(func() {
				for i := range 20 {
					_, err := c.Export(ctx, Export{
						Actor:    custody.Actor{Kind: "principal", ID: "tester", Via: "test"},
						ExportID: fmt.Sprintf("r%d-g%d-%d", round, g, i), App: "n8n", Workflow: "wf",
						Schema: "s@1", Classification: "internal", Retention: "1y", Destination: "dst",
						Policy: wire.FormatHash(sha256.Sum256([]byte("policy"))), MediaType: "text/csv",
						Data: fmt.Appendf(nil, "a,b\n%d,%d\n", g, i),
					})
					if err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}

	tp, j, c := open()
	tr, err := trustfile.NewTrust("site-a", "dev-1", BundleIdentity(tp.Identity()))
	if err != nil {
		t.Fatal(err)
	}
	exportAll(c, 0)
	res, err := c.Seal(ctx)
	if err != nil || res == nil {
		t.Fatalf("seal: %v", err)
	}
	b1 := readBundle(t, outboxBytes(t, j, res))
	st := mustVerify(t, b1, tr, nil)
	j.Close()
	tp.Close()

	// Reopened, the clock still behind: the times continue from the last
	// record's.
	tp, j, c = open()
	defer tp.Close()
	defer j.Close()
	exportAll(c, 1)
	if res, err = c.Seal(ctx); err != nil || res == nil {
		t.Fatalf("seal after reopen: %v", err)
	}
	mustVerify(t, readBundle(t, outboxBytes(t, j, res)), tr, st)
}

func readBundle(t *testing.T, raw []byte) *bundle.Bundle {
	t.Helper()
	b, err := bundle.Read(bytes.NewReader(raw), bundle.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
