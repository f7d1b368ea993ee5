package e2etest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"log/slog"
	"path/filepath"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/sync"
)

// KeyAgent is device site1/dev1's sync publisher with the agent's archive
// keyring (agent.ArchiveKeyring over its journal) and receipt journaling.
type KeyAgent struct {
	P    *sync.Publisher
	Out  *store.Journal
	Ring *agent.ArchiveKeyring
	Logs *LockedBuffer // its log, level debug and up
	// Stop stops the publisher (once; also when the test ends).
	Stop func()

	mu       gosync.Mutex
	receipts map[string][]byte
}

// StartKeyAgent starts a KeyAgent on brokerURL sending out's outbox; the
// keyring starts from root and keeps what it learns under dataDir.
func StartKeyAgent(t testing.TB, brokerURL string, out *store.Journal, dataDir string, root ed25519.PublicKey) *KeyAgent {
	t.Helper()
	ka := &KeyAgent{Out: out, Logs: &LockedBuffer{}, receipts: map[string][]byte{}}
	log := slog.New(slog.NewTextHandler(ka.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rj, err := agent.NewReceiptJournal(agent.Options{Site: "site1", Device: "dev1", Logger: log}, out)
	if err != nil {
		t.Fatal(err)
	}
	if ka.Ring, err = rj.ArchiveKeyring(filepath.Join(dataDir, agent.ArchiveKeysFile), archive.DefaultName, root); err != nil {
		t.Fatal(err)
	}
	ka.P, err = sync.NewPublisher(sync.PublisherOptions{
		Broker: brokerURL, Site: "site1", Device: "dev1", Outbox: out, ArchiveKeys: ka.Ring,
		Tick: 100 * time.Millisecond, BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second, ResendAfter: 2 * time.Second,
		OnReceipt: func(ctx context.Context, id string, receipt []byte) error {
			if err := rj.JournalReceipt(ctx, id, receipt); err != nil {
				return err
			}
			ka.mu.Lock()
			ka.receipts[id] = bytes.Clone(receipt)
			ka.mu.Unlock()
			return nil
		},
		Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- ka.P.Start(ctx) }()
	var once gosync.Once
	ka.Stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(ka.Stop)
	return ka
}

// Receipt is the receipt journaled for outbox entry id, nil before one.
func (ka *KeyAgent) Receipt(id string) []byte {
	ka.mu.Lock()
	defer ka.mu.Unlock()
	return ka.receipts[id]
}

// WaitDrained waits (at most 60 s) until n receipts arrived and the
// outbox is empty.
func (ka *KeyAgent) WaitDrained(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		left := 0
		if err := ka.Out.Outbox(t.Context(), func(string, []byte) error { left++; return nil }); err != nil {
			t.Fatal(err)
		}
		ka.mu.Lock()
		got := len(ka.receipts)
		ka.mu.Unlock()
		if left == 0 && got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox not drained: %d left, %d receipts; publisher %+v\n%s", left, got, ka.P.Stats(), ka.Logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
