package archive_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/state"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/mariadbtest"
	"github.com/edgeseal/edgeseal/sync"
)

// replicas are archives sharing one MariaDB database (log engine mysql,
// chain state, device registry and operator statements in it) and one
// object directory, each with a data directory of its own, as archive
// processes on several machines.
type replicas struct {
	t      *testing.T
	dsn    string
	root   string
	mu     gosync.Mutex
	alerts []archive.Alert
	rs     []*archive.Archive
	sts    []*state.SQL        // each replica's store, by index
	ops    []ed25519.PublicKey // the operator keys (none: unsigned)
}

func newReplicas(t *testing.T, n int, ops ...ed25519.PublicKey) *replicas {
	t.Helper()
	srv := mariadbtest.Start(t)
	r := &replicas{t: t, dsn: srv.Database(t), root: t.TempDir(), ops: ops, sts: make([]*state.SQL, n)}
	for i := range n {
		r.rs = append(r.rs, r.open(i))
	}
	t.Cleanup(func() {
		for _, a := range r.rs {
			if a != nil {
				a.Close()
			}
		}
	})
	return r
}

func (r *replicas) open(i int) *archive.Archive {
	r.t.Helper()
	ctx := r.t.Context()
	st, err := state.OpenMySQL(ctx, r.dsn)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { st.Close() })
	r.sts[i] = st
	objects, err := archive.NewFSStore(filepath.Join(r.root, "objects"))
	if err != nil {
		r.t.Fatal(err)
	}
	devs, err := archive.OpenDevicesOn(st.Registry(), nil, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	a, err := archive.Open(ctx, archive.Options{
		Dir: filepath.Join(r.root, fmt.Sprintf("replica%d", i)), Key: testKey, Objects: objects, State: st,
		Devices: devs, Statements: st.Statements(), OperatorKeys: r.ops,
		LogEngine: archive.LogEngineMySQL, LogDSN: r.dsn, LogCheckpointInterval: time.Second,
		Quarantine: archive.QuarantineLimits{AlertInterval: -1},
		Alert: func(_ context.Context, al archive.Alert) {
			r.mu.Lock()
			r.alerts = append(r.alerts, al)
			r.mu.Unlock()
		},
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return a
}

// approve enrolls and approves the chain's device at one replica: the
// registry is shared.
func (r *replicas) approve(c *bundletest.Chain) {
	r.t.Helper()
	raw, err := c.Trust.Marshal()
	if err != nil {
		r.t.Fatal(err)
	}
	req, err := archive.ParseEnrollRequest(raw)
	if err != nil {
		r.t.Fatal(err)
	}
	tr := req.ParsedTrust()
	for _, a := range r.rs {
		if a == nil {
			continue
		}
		if _, err := a.Devices().Enroll(r.t.Context(), req); err != nil {
			r.t.Fatal(err)
		}
		if _, err := a.Devices().Approve(r.t.Context(), tr.DeviceName(), tr.KeyID, "test"); err != nil {
			r.t.Fatal(err)
		}
		return
	}
}

// verify checks a receipt: signature, checkpoint note, inclusion proof.
func (r *replicas) verify(reply, data []byte, device string) *archivesig.Receipt {
	r.t.Helper()
	e := &env{t: r.t, a: r.rs[0]}
	for _, a := range r.rs {
		if a != nil {
			e.a = a
			break
		}
	}
	return e.checkReceipt(reply, data, device)
}

// logged counts the log's bundle entries by digest.
func (r *replicas) logged(a *archive.Archive) map[string]int {
	r.t.Helper()
	recs, err := archive.LogEntries(r.t.Context(), a)
	if err != nil {
		r.t.Fatal(err)
	}
	n := map[string]int{}
	for _, rec := range recs {
		var e struct {
			Type         *string `json:"type"`
			BundleDigest string  `json:"bundleDigest"`
		}
		if json.Unmarshal(rec, &e) == nil && e.Type == nil && e.BundleDigest != "" {
			n[e.BundleDigest]++
		}
	}
	return n
}

func (r *replicas) noAlerts() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, al := range r.alerts {
		r.t.Errorf("alert raised: %s %s %v", al.Kind, al.Device, al.Reasons)
	}
}

// TestReplicasAdmitOnce: three archives on one database and one object
// directory take the chains of three devices delivered at once, each
// bundle to a random replica, some to two replicas at once, later ones
// before earlier ones. Every bundle is accepted exactly once (one log
// entry, every copy the same receipt, which verifies), bundles that came
// before their predecessor was committed are answered held and accepted
// when sent again, and nothing is refused or alarmed.
func TestReplicasAdmitOnce(t *testing.T) {
	r := newReplicas(t, 3)
	const devices, bundles = 3, 5
	chains := make([]*bundletest.Chain, devices)
	for i := range chains {
		chains[i] = newChain(t, bundles, bundletest.Options{Site: "site1", Device: fmt.Sprintf("dev%d", i), Records: 3})
		r.approve(chains[i])
	}
	var wg gosync.WaitGroup
	var mu gosync.Mutex
	receipts := map[string][]byte{} // bundle digest -> its receipt
	for ci, c := range chains {
		rng := rand.New(rand.NewPCG(uint64(ci), 7))
		wg.Go(func() {
			data := make([][]byte, bundles)
			for i, b := range c.Bundles {
				data[i] = raw(t, b)
			}
			done := make([]bool, bundles)
			// An agent's rounds: every bundle not receipted is sent at
			// once (the later ones first in the first round), each to a
			// random replica, a third of them to a second one too.
			for round := 0; slices.Contains(done, false); round++ {
				if round > 20 {
					t.Errorf("%s: bundles not accepted after %d rounds: %v", c.DeviceName(), round, done)
					return
				}
				var rw gosync.WaitGroup
				for i := range slices.Backward(data) {
					if done[i] {
						continue
					}
					to := []int{rng.IntN(len(r.rs))}
					if rng.IntN(3) == 0 {
						to = append(to, (to[0]+1+rng.IntN(len(r.rs)-1))%len(r.rs))
					}
					for _, k := range to {
						rw.Go(func() {
							reply, err := r.rs[k].Receive(t.Context(), c.Opts.Site, c.Opts.Device, data[i])
							if rj, ok := errors.AsType[*archive.RejectedError](err); ok {
								got, verr := sync.VerifyRejection(reply, r.rs[k].KeyID(), r.rs[k].PublicKey())
								if verr != nil || !rj.Has(archive.CheckHeld) || len(got.Checks) != 1 || got.Checks[0] != sync.HeldCheck {
									t.Errorf("%s bundle %d refused by replica %d: %v (%v)", c.DeviceName(), i, k, err, verr)
								}
								return
							}
							if err != nil {
								t.Errorf("%s bundle %d at replica %d: %v", c.DeviceName(), i, k, err)
								return
							}
							r.verify(reply, data[i], c.DeviceName())
							d := digestOf(data[i])
							mu.Lock()
							defer mu.Unlock()
							if first, ok := receipts[d]; ok && !bytes.Equal(first, reply) && logIndexOf(t, first) != logIndexOf(t, reply) {
								t.Errorf("%s bundle %d: receipts of two log entries", c.DeviceName(), i)
							}
							receipts[d] = reply
							done[i] = true
						})
					}
				}
				rw.Wait()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	var st archive.Stats
	for _, a := range r.rs {
		s := a.Stats()
		st.Accepted += s.Accepted
		st.Held += s.Held
		st.Refused += s.Refused
		st.Alarms += s.Alarms
		st.Duplicates += s.Duplicates
	}
	if st.Accepted != devices*bundles || st.Refused != 0 || st.Alarms != 0 {
		t.Fatalf("replicas accepted %d (want %d), refused %d, alarms %d", st.Accepted, devices*bundles, st.Refused, st.Alarms)
	}
	if st.Held == 0 {
		t.Fatal("no bundle was answered held, though later bundles came first")
	}
	t.Logf("accepted %d, held %d, duplicates %d", st.Accepted, st.Held, st.Duplicates)
	r.noAlerts()
	for i := range r.rs {
		q, err := os.ReadDir(filepath.Join(r.root, fmt.Sprintf("replica%d", i), "quarantine"))
		if err != nil || len(q) != 0 {
			t.Fatalf("replica %d quarantined %d entries (%v): a held bundle is not quarantined", i, len(q), err)
		}
	}
	n := r.logged(r.rs[0])
	if len(n) != devices*bundles {
		t.Fatalf("the log has %d bundles, want %d", len(n), devices*bundles)
	}
	for d, k := range n {
		if k != 1 {
			t.Fatalf("bundle %s is %d times in the log", d, k)
		}
		if _, ok := receipts[d]; !ok {
			t.Fatalf("bundle %s logged without a receipt", d)
		}
	}
	// Each device's receipts are in the order of its chain.
	for _, c := range chains {
		var last uint64
		for i, b := range c.Bundles {
			rc, err := archivesig.VerifyReceipt(receipts[digestOf(raw(t, b))], r.rs[0].KeyID(), r.rs[0].PublicKey())
			if err != nil {
				t.Fatal(err)
			}
			if i > 0 && rc.LogIndex <= last {
				t.Fatalf("%s bundle %d logged at %d, before its predecessor at %d", c.DeviceName(), i, rc.LogIndex, last)
			}
			last = rc.LogIndex
		}
	}
}

// TestReplicaKilledMidBundle: a replica dies after a bundle's log entry
// and before its chain advance (no answer). Another replica takes the
// device's bundles: the bundle sent again keeps its log entry (the log
// has it once) and is receipted, and the chain goes on at a third.
func TestReplicaKilledMidBundle(t *testing.T) {
	r := newReplicas(t, 3)
	c := newChain(t, 3, bundletest.Options{Site: "site1", Device: "dev1", Records: 3})
	r.approve(c)
	data := raws(t, c.Bundles)
	killed := errors.New("replica killed")
	d1 := sha256.Sum256(data[1])
	archive.SetCommitHook(r.rs[0], func(d [32]byte) error {
		if d == d1 {
			return killed
		}
		return nil
	})
	ctx := t.Context()
	reply, err := r.rs[0].Receive(ctx, c.Opts.Site, c.Opts.Device, data[0])
	if err != nil {
		t.Fatal(err)
	}
	r.verify(reply, data[0], c.DeviceName())
	if _, err := r.rs[0].Receive(ctx, c.Opts.Site, c.Opts.Device, data[1]); !errors.Is(err, killed) {
		t.Fatalf("bundle 1 at the dying replica: %v", err)
	}
	if n := r.logged(r.rs[0]); n[wire.FormatHash(d1)] != 1 {
		t.Fatalf("bundle 1 is %d times in the log before the replica dies", n[wire.FormatHash(d1)])
	}
	r.rs[0].Close()
	r.rs[0] = nil
	// The device's lease is free at once: the next replica answers
	// without waiting for it.
	start := time.Now()
	reply, err = r.rs[1].Receive(ctx, c.Opts.Site, c.Opts.Device, data[1])
	if err != nil {
		t.Fatalf("bundle 1 sent again to another replica: %v", err)
	}
	if el := time.Since(start); el > archive.DefaultGapWait {
		t.Fatalf("bundle 1 waited %v", el)
	}
	rc := r.verify(reply, data[1], c.DeviceName())
	r1 := reply
	reply, err = r.rs[2].Receive(ctx, c.Opts.Site, c.Opts.Device, data[2])
	if err != nil {
		t.Fatalf("bundle 2 at a third replica: %v", err)
	}
	rc2 := r.verify(reply, data[2], c.DeviceName())
	if rc2.LogIndex <= rc.LogIndex {
		t.Fatalf("bundle 2 at %d, bundle 1 at %d", rc2.LogIndex, rc.LogIndex)
	}
	// A copy at a replica that did not accept it gets the same receipt.
	again, err := r.rs[2].Receive(ctx, c.Opts.Site, c.Opts.Device, data[1])
	if err != nil || !bytes.Equal(again, r1) {
		t.Fatalf("bundle 1 again at another replica: %v, or another receipt", err)
	}
	n := r.logged(r.rs[1])
	if len(n) != 3 {
		t.Fatalf("the log has %d bundles, want 3", len(n))
	}
	for d, k := range n {
		if k != 1 {
			t.Fatalf("bundle %s is %d times in the log", d, k)
		}
	}
	r.noAlerts()
}

// TestReplicaAdvanceFailed: a replica whose chain advance fails (after
// the bundle's log entry and index event) does not answer the bundle;
// sent again to the same replica it is accepted on its log entry (not
// answered from that replica's index alone), so the next bundle at
// another replica follows it instead of being held.
func TestReplicaAdvanceFailed(t *testing.T) {
	r := newReplicas(t, 2)
	c := newChain(t, 3, bundletest.Options{Site: "site1", Device: "dev1", Records: 3})
	r.approve(c)
	data := raws(t, c.Bundles)
	failed := errors.New("chain advance failed")
	d1 := sha256.Sum256(data[1])
	var once gosync.Once
	archive.SetCommitHook(r.rs[0], func(d [32]byte) error {
		var err error
		if d == d1 {
			once.Do(func() { err = failed })
		}
		return err
	})
	ctx := t.Context()
	for i, want := range []error{nil, failed, nil} {
		reply, err := r.rs[0].Receive(ctx, c.Opts.Site, c.Opts.Device, data[min(i, 1)])
		if !errors.Is(err, want) {
			t.Fatalf("delivery %d: %v, want %v", i, err, want)
		}
		if err == nil {
			r.verify(reply, data[min(i, 1)], c.DeviceName())
		}
	}
	reply, err := r.rs[1].Receive(ctx, c.Opts.Site, c.Opts.Device, data[2])
	if err != nil {
		t.Fatalf("bundle 2 at the other replica: %v", err)
	}
	r.verify(reply, data[2], c.DeviceName())
	n := r.logged(r.rs[1])
	if len(n) != 3 {
		t.Fatalf("the log has %d bundles, want 3", len(n))
	}
	for d, k := range n {
		if k != 1 {
			t.Fatalf("bundle %s is %d times in the log", d, k)
		}
	}
	if st := r.rs[0].Stats(); st.Held != 0 || st.Refused != 0 {
		t.Fatalf("replica 0: %+v", st)
	}
	r.noAlerts()
}

// TestReplicaLeaseBusyWaits: a bundle whose device's lease another
// replica holds (it is committing the predecessor) waits for the lease
// past the gap wait, up to the hold wait, and is accepted, not answered
// held; a bundle after a true gap (its predecessor never sent) is
// answered held after the gap wait, long before the hold wait.
func TestReplicaLeaseBusyWaits(t *testing.T) {
	r := newReplicas(t, 2)
	c := newChain(t, 4, bundletest.Options{Site: "site1", Device: "dev1", Records: 3})
	r.approve(c)
	data := raws(t, c.Bundles)
	const busy = archive.DefaultGapWait + time.Second // < DefaultHoldWait
	d0 := sha256.Sum256(data[0])
	committing := make(chan struct{})
	archive.SetAdvancedHook(r.rs[0], func(d [32]byte) error {
		if d == d0 {
			close(committing)
			time.Sleep(busy) // the lease stays busy meanwhile
		}
		return nil
	})
	ctx := t.Context()
	first := make(chan error, 1)
	go func() {
		reply, err := r.rs[0].Receive(ctx, c.Opts.Site, c.Opts.Device, data[0])
		if err == nil {
			r.verify(reply, data[0], c.DeviceName())
		}
		first <- err
	}()
	select {
	case <-committing:
	case err := <-first:
		t.Fatalf("bundle 0 answered before its commit: %v", err)
	}
	start := time.Now()
	reply, err := r.rs[1].Receive(ctx, c.Opts.Site, c.Opts.Device, data[1])
	el := time.Since(start)
	if err != nil {
		t.Fatalf("bundle 1 while its device's lease was busy: %v (after %v)", err, el)
	}
	r.verify(reply, data[1], c.DeviceName())
	if el < archive.DefaultGapWait || el >= archive.DefaultHoldWait {
		t.Fatalf("bundle 1 waited %v for the lease, want between %v and %v", el, archive.DefaultGapWait, archive.DefaultHoldWait)
	}
	if err := <-first; err != nil {
		t.Fatalf("bundle 0: %v", err)
	}
	// Bundle 3 without bundle 2: held after the gap wait.
	start = time.Now()
	_, err = r.rs[1].Receive(ctx, c.Opts.Site, c.Opts.Device, data[3])
	el = time.Since(start)
	if rj, ok := errors.AsType[*archive.RejectedError](err); !ok || !rj.Has(archive.CheckHeld) {
		t.Fatalf("bundle 3 after a gap: %v, want held", err)
	}
	if el < archive.DefaultGapWait || el >= archive.DefaultHoldWait {
		t.Fatalf("bundle 3 held after %v, want between %v and %v", el, archive.DefaultGapWait, archive.DefaultHoldWait)
	}
	for i, a := range r.rs {
		if st := a.Stats(); st.Held != uint64(i) || st.Refused != 0 {
			t.Fatalf("replica %d: %+v, want %d held and none refused", i, st, i)
		}
	}
	r.noAlerts()
}

// logIndexOf is the log index a receipt names.
func logIndexOf(t *testing.T, reply []byte) uint64 {
	t.Helper()
	_, r, err := archivesig.ParseReceipt(reply)
	if err != nil {
		t.Fatal(err)
	}
	return r.LogIndex
}
