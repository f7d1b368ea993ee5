package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/keystore"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/sync"
)

// keyAgent is a device's sync publisher with the agent's archive keyring
// (agent.ArchiveKeyring over its journal) and receipt journaling.
type keyAgent struct {
	p    *sync.Publisher
	out  *store.Journal
	ring *agent.ArchiveKeyring
	logs *lockedBuffer
	stop func()

	mu       gosync.Mutex
	receipts map[string][]byte
}

func startKeyAgent(t *testing.T, brokerURL string, out *store.Journal, dataDir string, root ed25519.PublicKey) *keyAgent {
	t.Helper()
	ka := &keyAgent{out: out, logs: &lockedBuffer{}, receipts: map[string][]byte{}}
	log := slog.New(slog.NewTextHandler(ka.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rj, err := agent.NewReceiptJournal(agent.Options{Site: "site1", Device: "dev1", Logger: log}, out)
	if err != nil {
		t.Fatal(err)
	}
	if ka.ring, err = rj.ArchiveKeyring(filepath.Join(dataDir, agent.ArchiveKeysFile), archive.DefaultName, root); err != nil {
		t.Fatal(err)
	}
	ka.p, err = sync.NewPublisher(sync.PublisherOptions{
		Broker: brokerURL, Site: "site1", Device: "dev1", Outbox: out, ArchiveKeys: ka.ring,
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
	go func() { done <- ka.p.Start(ctx) }()
	var once gosync.Once
	ka.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(ka.stop)
	return ka
}

func (ka *keyAgent) receipt(id string) []byte {
	ka.mu.Lock()
	defer ka.mu.Unlock()
	return ka.receipts[id]
}

func (ka *keyAgent) waitDrained(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		left := 0
		if err := ka.out.Outbox(t.Context(), func(string, []byte) error { left++; return nil }); err != nil {
			t.Fatal(err)
		}
		ka.mu.Lock()
		got := len(ka.receipts)
		ka.mu.Unlock()
		if left == 0 && got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox not drained: %d left, %d receipts; publisher %+v\n%s", left, got, ka.p.Stats(), ka.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func enrollChain(t *testing.T, a *archive.Archive, c *bundletest.Chain) {
	t.Helper()
	raw, err := c.Trust.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, err := archive.ParseEnrollRequest(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Devices().Enroll(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Devices().Approve(t.Context(), c.DeviceName(), c.Trust.KeyID, "test-operator"); err != nil {
		t.Fatal(err)
	}
}

// TestArchiveKeyRotationMQTT: the archive daemon (embedded broker)
// rotates its key while a device's publisher, configured with the old
// key only, delivers over MQTT: every receipt verifies, the agent
// journals the announcement as an archive.key record and keeps it, the
// receipts after the rotation name the new key, the outbox drains. Then
// an archive with a key never announced answers: its receipt is refused
// with an error naming the key, and the bundle stays in the outbox.
func TestArchiveKeyRotationMQTT(t *testing.T) {
	ea := startEmbeddedArchive(t)
	c, err := bundletest.NewChain(t.Context(), nil, 8, bundletest.Options{Site: "site1", Device: "dev1"})
	if err != nil {
		t.Fatal(err)
	}
	enrollChain(t, ea.a, c)
	rootPub, err := readEd25519Public(ea.keyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	oldID := ea.a.KeyID()
	out := newOutbox(t)
	agentDir := t.TempDir()
	put := func(from, to int) {
		for i := from; i < to; i++ {
			raw, _ := c.Bundles[i].Bytes()
			if err := out.PutOutbox(t.Context(), fmt.Sprintf("b-%04d", i+1), raw); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(0, 4)
	ka := startKeyAgent(t, ea.b.URL(), out, agentDir, rootPub)

	// Rotate as soon as the first receipt is in: later bundles are in
	// flight meanwhile.
	deadline := time.Now().Add(60 * time.Second)
	for ka.receipt("b-0001") == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no first receipt: %+v\n%s", ka.p.Stats(), ka.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	next, err := keystore.Generate()
	if err != nil {
		t.Fatal(err)
	}
	nextID := archivesig.ArchiveKeyID(next.Public().(ed25519.PublicKey))
	ann, err := ea.a.RotateKey(t.Context(), next, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	put(4, 8)
	ka.waitDrained(t, 8)

	verifier := archivesig.NewArchiveKeys(archive.DefaultName, rootPub)
	for i := range 8 {
		id := fmt.Sprintf("b-%04d", i+1)
		raw := ka.receipt(id)
		r, _, err := verifier.VerifyReceipt(raw, time.Now())
		if err != nil {
			t.Fatalf("receipt %s: %v", id, err)
		}
		env, _, _ := archivesig.ParseReceipt(raw)
		keyID := env.Signatures[0].KeyID
		if i >= 4 && keyID != nextID {
			t.Fatalf("receipt %s after the rotation by %s, want the new key %s", id, keyID, nextID)
		}
		if i == 0 && keyID != oldID {
			t.Fatalf("receipt %s before the rotation by %s, want the old key", id, keyID)
		}
		if want, _ := c.Bundles[i].Bytes(); r.BundleDigest != wire.FormatHash(sha256.Sum256(want)) {
			t.Fatalf("receipt %s for %s", id, r.BundleDigest)
		}
	}
	var journaled [][]byte
	var delivered int
	if err := out.Records(t.Context(), 0, out.Size(), func(_ uint64, rec []byte) error {
		r, err := custody.ParseRecord(rec)
		if err != nil {
			return err
		}
		switch r.Type {
		case custody.TypeArchiveKey:
			journaled = append(journaled, r.Body)
		case custody.TypeDeliveryReceipt:
			delivered++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	annEnv, _ := dsse.ParseEnvelope(ann)
	annCanon, _ := annEnv.Marshal()
	if len(journaled) != 1 || string(journaled[0]) != string(annCanon) || delivered != 8 {
		t.Fatalf("journal: %d archive.key records (want 1, the announcement), %d delivery.receipt (want 8)", len(journaled), delivered)
	}
	if _, err := os.Stat(filepath.Join(agentDir, agent.ArchiveKeysFile)); err != nil {
		t.Fatalf("learned key not kept: %v", err)
	}
	ka.stop()

	// An archive whose key was never announced (another key file).
	rogue := startEmbeddedArchive(t)
	enrollChain(t, rogue.a, c)
	raw, _ := c.Bundles[0].Bytes()
	if err := out.PutOutbox(t.Context(), "b-0009", raw); err != nil {
		t.Fatal(err)
	}
	ka2 := startKeyAgent(t, rogue.b.URL(), out, agentDir, rootPub)
	deadline = time.Now().Add(60 * time.Second)
	for ka2.p.Stats().BadReplies == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the rogue archive's receipt was not refused: %+v\n%s", ka2.p.Stats(), ka2.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ka2.receipt("b-0009") != nil {
		t.Fatal("a receipt by an unannounced key was accepted")
	}
	if logs := ka2.logs.String(); !strings.Contains(logs, rogue.a.KeyID()) || !strings.Contains(logs, "not a trusted archive key") {
		t.Fatalf("the refusal does not name the unannounced key %s:\n%s", rogue.a.KeyID(), logs)
	}
	if _, ok, err := out.OutboxGet(t.Context(), "b-0009"); err != nil || !ok {
		t.Fatalf("the bundle left the outbox: %v", err)
	}
}
