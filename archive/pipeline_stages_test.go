package archive_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// gatedStore holds the Put of one object until released and fails the
// first Put of another.
type gatedStore struct {
	archive.ObjectStore
	gate, fail [32]byte
	release    chan struct{}
	failed     atomic.Bool
}

func (s *gatedStore) Put(ctx context.Context, digest [32]byte, data []byte) error {
	if digest == s.gate {
		<-s.release
	}
	if digest == s.fail && s.failed.CompareAndSwap(false, true) {
		return errors.New("disk on fire")
	}
	return s.ObjectStore.Put(ctx, digest, data)
}

// stagesEnv is an archive whose objects are a gatedStore and whose commit
// hook blocks on one bundle until released.
type stagesEnv struct {
	*env
	store          *gatedStore
	hold           [32]byte
	entered, freed chan struct{}
}

func newStagesEnv(t *testing.T, setup func(*gatedStore)) *stagesEnv {
	dir := t.TempDir()
	fs, err := archive.NewFSStore(filepath.Join(dir, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	s := &stagesEnv{store: &gatedStore{ObjectStore: fs, release: make(chan struct{})},
		entered: make(chan struct{}), freed: make(chan struct{})}
	setup(s.store)
	a, err := archive.Open(t.Context(), archive.Options{Dir: dir, Key: testKey, Objects: s.store})
	if err != nil {
		t.Fatal(err)
	}
	s.env = &env{t: t, dir: dir, key: testKey, a: a}
	t.Cleanup(func() { s.a.Close() })
	archive.SetCommitHook(a, func(d [32]byte) error {
		if d == s.hold {
			close(s.entered)
			<-s.freed
		}
		return nil
	})
	return s
}

// waitEntered waits until the commit hook holds its bundle (t: its
// ticket, whose answer, should it come first, says why not).
func (s *stagesEnv) waitEntered(t *archive.Ticket) {
	s.t.Helper()
	answered := make(chan error, 1)
	go func() { _, err := t.Wait(s.t.Context()); answered <- err }()
	select {
	case <-s.entered:
	case err := <-answered:
		s.t.Fatalf("answered before the commit hook held it: %v", err)
	case <-time.After(20 * time.Second):
		s.t.Fatal("the commit hook did not hold the bundle")
	}
}

func waitLog(t *testing.T, a *archive.Archive, n uint64) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); a.LogSize() < n; {
		if time.Now().After(end) {
			t.Fatalf("log size %d, want %d", a.LogSize(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCommitStagesOverlap: while a group waits in the committer's second
// stage (its checkpoint, receipts, index, answers), the next bundles are
// logged; every bundle is then receipted, each device's in order.
func TestCommitStagesOverlap(t *testing.T) {
	ca := newChain(t, 2, bundletest.Options{Site: "site1", Device: "dev-a"})
	cb := newChain(t, 1, bundletest.Options{Site: "site1", Device: "dev-b"})
	s := newStagesEnv(t, func(*gatedStore) {})
	s.approve(ca)
	s.approve(cb)
	s.hold = sha256Sum(raw(t, ca.Bundles[0]))
	first, raws := admitAll(s.env, ca, ca.Bundles[0])
	s.waitEntered(first[0]) // A0 logged, its group held in the second stage
	more, moreRaws := admitAll(s.env, ca, ca.Bundles[1])
	other, otherRaws := admitAll(s.env, cb, cb.Bundles[0])
	waitLog(t, s.a, 3) // A1 and B0 logged meanwhile
	early, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	if _, err := more[0].Wait(early); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("A1 answered before A0: %v", err)
	}
	cancel()
	close(s.freed)
	for i, tk := range append(append(first, more...), other...) {
		reply, err := tk.Wait(t.Context())
		if err != nil {
			t.Fatalf("bundle %d: %v", i, err)
		}
		data, dev := append(append(raws, moreRaws...), otherRaws...)[i], ca.DeviceName()
		if i == 2 {
			dev = cb.DeviceName()
		}
		s.checkReceipt(reply, data, dev)
	}
	if st := s.a.Stats(); st.Accepted != 3 || s.a.LogSize() != 3 {
		t.Fatalf("stats %+v, log %d", st, s.a.LogSize())
	}
}

// TestCommitStagesFailingDevice: a device's bundle that failed to be
// stored, in a group still in the second stage, keeps the device's next
// bundle out of the log (no entry past a missing one): it fails too (no
// answer), and once both are sent again they are logged in order.
func TestCommitStagesFailingDevice(t *testing.T) {
	cx := newChain(t, 1, bundletest.Options{Site: "site1", Device: "dev-x"})
	ca := newChain(t, 2, bundletest.Options{Site: "site1", Device: "dev-a"})
	cb := newChain(t, 1, bundletest.Options{Site: "site1", Device: "dev-b"})
	s := newStagesEnv(t, func(g *gatedStore) {
		g.gate = sha256Sum(raw(t, cx.Bundles[0]))
		g.fail = sha256Sum(raw(t, ca.Bundles[0]))
	})
	for _, c := range []*bundletest.Chain{cx, ca, cb} {
		s.approve(c)
	}
	s.hold = sha256Sum(raw(t, cb.Bundles[0]))
	// X0's Put holds the committer on its group; B0 and A0 make the next
	// one, held in the second stage by B0 while A0's Put failed.
	tx, _ := admitAll(s.env, cx, cx.Bundles[0])
	tb, _ := admitAll(s.env, cb, cb.Bundles[0])
	ta, _ := admitAll(s.env, ca, ca.Bundles[0])
	close(s.store.release)
	s.waitEntered(tb[0])
	ta1, _ := admitAll(s.env, ca, ca.Bundles[1]) // verified on top of A0, still in flight
	close(s.freed)
	for name, tk := range map[string]*archive.Ticket{"X0": tx[0], "B0": tb[0]} {
		if _, err := tk.Wait(t.Context()); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for name, tk := range map[string]*archive.Ticket{"A0": ta[0], "A1": ta1[0]} {
		reply, err := tk.Wait(t.Context())
		if _, refused := errors.AsType[*archive.RejectedError](err); err == nil || refused || reply != nil {
			t.Fatalf("%s: reply %d bytes, err %v; want an error and no reply", name, len(reply), err)
		}
	}
	if n := s.a.LogSize(); n != 2 {
		t.Fatalf("log size %d after A0 failed, want 2 (X0, B0: A1 not logged past A0)", n)
	}
	for i, b := range ca.Bundles { // the agent sends them again
		r := s.checkReceipt(s.accept(ca, b), raw(t, b), ca.DeviceName())
		if r.LogIndex != uint64(2+i) {
			t.Fatalf("A%d at log index %d, want %d", i, r.LogIndex, 2+i)
		}
	}
}
