package sync_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/internal/e2etest"
	"github.com/edgeseal/edgeseal/sync"
	"github.com/edgeseal/edgeseal/sync/mqtttest"
)

// TestReplyDropArchive: with the real archive behind the subscriber (as
// the archive daemon wires it), replies dropped while the broker is slow
// to confirm cost the agent nothing: it sends the unanswered bundles again
// and gets, for each, the receipt the archive stored when it accepted it
// (or, for the first bundle, a fresh receipt of the same log entry).
func TestReplyDropArchive(t *testing.T) {
	ctx := t.Context()
	brk := mqtttest.Start(t, nil)
	c, err := bundletest.NewChain(ctx, nil, 4, bundletest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := archive.Open(ctx, archive.Options{Dir: t.TempDir(), Key: ed25519.NewKeyFromSeed(make([]byte, 32)), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	e2etest.EnrollChain(t, a, c)

	release, dial := sync.HoldAcks(t, brk.URL)
	s, err := sync.NewSubscriber(sync.SubscriberOptions{Broker: brk.URL, ClientID: "archive", Dial: dial, MaxReplies: 1, Logger: logger,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
		Admit: func(ctx context.Context, d sync.Delivery) func(context.Context) ([]byte, error) {
			tk := a.AdmitHashed(ctx, d.Site, d.Device, d.Hashed)
			return tk.Wait
		}})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	sdone := make(chan struct{})
	go func() { _ = s.Start(sctx); close(sdone) }()
	defer func() { stop(); <-sdone }()

	ob := sync.NewTestOutbox()
	for i, b := range c.Bundles {
		data, err := b.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		ob.Put(fmt.Sprintf("%012d", i), data)
	}
	var mu gosync.Mutex
	receipts := map[string][][]byte{}
	p, err := sync.NewPublisher(sync.PublisherOptions{Broker: brk.URL, Site: c.Opts.Site, Device: c.Opts.Device, Outbox: ob,
		ArchiveKey: a.PublicKey(), Tick: 50 * time.Millisecond, ResendAfter: 2 * time.Second, Logger: logger,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
		OnReceipt: func(_ context.Context, id string, r []byte) error {
			mu.Lock()
			receipts[id] = append(receipts[id], bytes.Clone(r))
			mu.Unlock()
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	pctx, pstop := context.WithCancel(context.Background())
	pdone := make(chan struct{})
	go func() { _ = p.Start(pctx); close(pdone) }()
	defer func() { pstop(); <-pdone }()

	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("no %s in time: subscriber %+v, archive %+v", what, s.Stats(), a.Stats())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	wait("dropped reply", func() bool { return s.Stats().RepliesDropped > 0 })
	if ob.Len() == 0 {
		t.Fatal("every bundle receipted although replies were dropped")
	}
	release()
	wait("receipt for every bundle", func() bool { return ob.Len() == 0 })
	st := a.Stats()
	if st.Accepted != uint64(len(c.Bundles)) || st.Duplicates == 0 || st.Refused != 0 || a.LogSize() != uint64(len(c.Bundles)) {
		t.Fatalf("archive %+v, log %d: want each bundle accepted once and the repeats answered from the store", st, a.LogSize())
	}
	mu.Lock()
	defer mu.Unlock()
	for i, b := range c.Bundles {
		data, _ := b.Bytes()
		digest := sha256.Sum256(data)
		stored, err := a.Receive(ctx, c.Opts.Site, c.Opts.Device, data) // a repeat
		if err != nil {
			t.Fatal(err)
		}
		got := receipts[fmt.Sprintf("%012d", i)]
		if len(got) == 0 {
			t.Fatalf("bundle %d (%x): no receipt", i, digest[:4])
		}
		if !bytes.Equal(got[0], stored) {
			// The stored receipt of a device's first bundle has no
			// witness proof: a repeat after larger ones gets a fresh
			// receipt of the same log entry (archive/repeat.go).
			rg, err1 := archivesig.VerifyReceipt(got[0], a.KeyID(), a.PublicKey())
			rs, err2 := archivesig.VerifyReceipt(stored, a.KeyID(), a.PublicKey())
			if err1 != nil || err2 != nil || rg.LogIndex != rs.LogIndex || rg.BundleDigest != rs.BundleDigest || i != 0 {
				t.Fatalf("bundle %d (%x): the agent's receipt is not one of the archive's for its log entry (%v, %v)", i, digest[:4], err1, err2)
			}
		}
	}
	t.Logf("replies dropped %d, repeats answered %d", s.Stats().RepliesDropped, st.Duplicates)
}
