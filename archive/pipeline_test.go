package archive_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/sync"
)

// admitAll admits a device's bundles back to back, as the subscriber
// does, without waiting for the answers.
func admitAll(e *env, c *bundletest.Chain, bs ...*bundle.Bundle) ([]*archive.Ticket, [][]byte) {
	e.t.Helper()
	var ts []*archive.Ticket
	var raws [][]byte
	for _, b := range bs {
		data := raw(e.t, b)
		ts = append(ts, e.a.Admit(e.t.Context(), c.Opts.Site, c.Opts.Device, data, sha256Sum(data)))
		raws = append(raws, data)
	}
	return ts, raws
}

// TestAdmitPipelined: a device's bundles admitted back to back (each
// verified against the state the ones in flight will leave) are all
// accepted, logged in order, and receipted; a copy of a bundle in flight
// gets its receipt once it is durable.
func TestAdmitPipelined(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 7, bundletest.Options{})
	e.approve(c)
	ts, raws := admitAll(e, c, c.Bundles[:6]...)
	again := e.a.Admit(t.Context(), c.Opts.Site, c.Opts.Device, raws[2], sha256Sum(raws[2]))
	for i, tk := range ts {
		reply, err := tk.Wait(t.Context())
		if err != nil {
			t.Fatalf("bundle %d: %v", i, err)
		}
		r := e.checkReceipt(reply, raws[i], c.DeviceName())
		if r.LogIndex != uint64(i) {
			t.Fatalf("bundle %d at log index %d", i, r.LogIndex)
		}
		if i == 2 {
			dup, err := again.Wait(t.Context())
			if err != nil || !bytes.Equal(dup, reply) {
				t.Fatalf("copy of an in-flight bundle: %v, same receipt %v", err, bytes.Equal(dup, reply))
			}
		}
	}
	if st := e.a.Stats(); st.Accepted != 6 || st.Duplicates != 1 || st.Refused != 0 || e.a.LogSize() != 6 {
		t.Fatalf("stats %+v, log %d", st, e.a.LogSize())
	}
	// What the pipeline left is what a restart rebuilds: the next
	// bundle follows.
	e.reopen()
	e.accept(c, c.Bundles[6])
}

// TestAdmitRefusalBehindInFlight: a bundle refused against the state of
// bundles still in flight is judged again once they are durable, and its
// rejection is not answered before them.
func TestAdmitRefusalBehindInFlight(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 3, bundletest.Options{})
	e.approve(c)
	ts, raws := admitAll(e, c, c.Bundles[0], c.Bundles[2]) // bundle 1 missing: a gap
	first, err := ts[0].Wait(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	e.checkReceipt(first, raws[0], c.DeviceName())
	reply, err := ts[1].Wait(t.Context())
	var rj *archive.RejectedError
	if !errors.As(err, &rj) || !rj.Has(archive.CheckGap) {
		t.Fatalf("bundle 2 after 0: %v", err)
	}
	if _, err := sync.VerifyRejection(reply, e.a.KeyID(), e.a.PublicKey()); err != nil {
		t.Fatal(err)
	}
	e.accept(c, c.Bundles[1])
	e.accept(c, c.Bundles[2])
}

// flakyStore fails the first Put of one object, once released.
type flakyStore struct {
	archive.ObjectStore
	fail    [32]byte
	release chan struct{}
	failed  atomic.Bool
}

func (s *flakyStore) Put(ctx context.Context, digest [32]byte, data []byte) error {
	if digest == s.fail && !s.failed.Load() {
		<-s.release
		s.failed.Store(true)
		return errors.New("disk on fire")
	}
	return s.ObjectStore.Put(ctx, digest, data)
}

// TestAdmitFailureFailsLater: when a bundle in flight fails to become
// durable, it and the device's later bundles verified on top of it get
// no answer (an error, not a rejection: the agent sends them again), the
// earlier ones are accepted, and the resent bundles are accepted after.
func TestAdmitFailureFailsLater(t *testing.T) {
	dir := t.TempDir()
	fs, err := archive.NewFSStore(filepath.Join(dir, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	c := newChain(t, 4, bundletest.Options{})
	flaky := &flakyStore{ObjectStore: fs, fail: sha256Sum(raw(t, c.Bundles[1])), release: make(chan struct{})}
	a, err := archive.Open(t.Context(), archive.Options{Dir: dir, Key: testKey, Objects: flaky})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, key: testKey, a: a}
	t.Cleanup(func() { e.a.Close() })
	e.approve(c)

	ts, raws := admitAll(e, c, c.Bundles[0], c.Bundles[1], c.Bundles[2])
	close(flaky.release)
	if reply, err := ts[0].Wait(t.Context()); err != nil {
		t.Fatal(err)
	} else {
		e.checkReceipt(reply, raws[0], c.DeviceName())
	}
	for i := 1; i < 3; i++ {
		reply, err := ts[i].Wait(t.Context())
		if _, refused := errors.AsType[*archive.RejectedError](err); err == nil || refused || reply != nil {
			t.Fatalf("bundle %d after a failed Put: reply %d bytes, err %v; want an error and no reply", i, len(reply), err)
		}
	}
	if n := a.LogSize(); n != 1 {
		t.Fatalf("log size %d after the failure, want 1", n)
	}
	for _, b := range c.Bundles[1:] { // the agent sends them again
		e.accept(c, b)
	}
	if st := a.Stats(); st.Accepted != 4 || st.Refused != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCloseAnswersAdmitted: Close answers every admitted bundle (a
// receipt if it became durable, else an error), and after a restart the
// bundles are accepted with the receipts already given.
func TestCloseAnswersAdmitted(t *testing.T) {
	e := newEnv(t)
	c := newChain(t, 5, bundletest.Options{})
	e.approve(c)
	ts, _ := admitAll(e, c, c.Bundles...)
	if err := e.a.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	given := map[int][]byte{}
	for i, tk := range ts {
		reply, err := tk.Wait(ctx)
		switch {
		case err == nil:
			given[i] = reply
		case errors.Is(err, context.DeadlineExceeded):
			t.Fatalf("bundle %d not answered after Close", i)
		}
	}
	e.a = nil
	e.open()
	for i, b := range c.Bundles {
		reply := e.accept(c, b)
		if g, ok := given[i]; ok {
			e.repeated(g, reply, raw(t, b), c.DeviceName())
		}
	}
	t.Logf("%d of %d answered before Close", len(given), len(ts))
}
