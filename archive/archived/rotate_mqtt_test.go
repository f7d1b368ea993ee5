package archived_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/agentd"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/keystore"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/internal/e2etest"
)

// TestArchiveKeyRotationMQTT: the archive daemon (embedded broker)
// rotates its key while a device's publisher, configured with the old
// key only, delivers over MQTT: every receipt verifies, the agent
// journals the announcement as an archive.key record and keeps it, the
// receipts after the rotation name the new key, the outbox drains. Then
// an archive with a key never announced answers: its receipt is refused
// with an error naming the key, and the bundle stays in the outbox.
func TestArchiveKeyRotationMQTT(t *testing.T) {
	ea := e2etest.StartEmbeddedArchive(t)
	c, err := bundletest.NewChain(t.Context(), nil, 8, bundletest.Options{Site: "site1", Device: "dev1"})
	if err != nil {
		t.Fatal(err)
	}
	e2etest.EnrollChain(t, ea.A, c)
	rootPub, err := agentd.ReadArchiveKey(ea.KeyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	oldID := ea.A.KeyID()
	out := e2etest.NewOutbox(t)
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
	ka := e2etest.StartKeyAgent(t, ea.B.URL(), out, agentDir, rootPub)

	// Rotate as soon as the first receipt is in: later bundles are in
	// flight meanwhile.
	deadline := time.Now().Add(60 * time.Second)
	for ka.Receipt("b-0001") == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no first receipt: %+v\n%s", ka.P.Stats(), ka.Logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	next, err := keystore.Generate()
	if err != nil {
		t.Fatal(err)
	}
	nextID := archivesig.ArchiveKeyID(next.Public().(ed25519.PublicKey))
	ann, err := ea.A.RotateKey(t.Context(), next, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	put(4, 8)
	ka.WaitDrained(t, 8)

	verifier := archivesig.NewArchiveKeys(archive.DefaultName, rootPub)
	for i := range 8 {
		id := fmt.Sprintf("b-%04d", i+1)
		raw := ka.Receipt(id)
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
	ka.Stop()

	// An archive whose key was never announced (another key file).
	rogue := e2etest.StartEmbeddedArchive(t)
	e2etest.EnrollChain(t, rogue.A, c)
	raw, _ := c.Bundles[0].Bytes()
	if err := out.PutOutbox(t.Context(), "b-0009", raw); err != nil {
		t.Fatal(err)
	}
	ka2 := e2etest.StartKeyAgent(t, rogue.B.URL(), out, agentDir, rootPub)
	deadline = time.Now().Add(60 * time.Second)
	for ka2.P.Stats().BadReplies == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the rogue archive's receipt was not refused: %+v\n%s", ka2.P.Stats(), ka2.Logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ka2.Receipt("b-0009") != nil {
		t.Fatal("a receipt by an unannounced key was accepted")
	}
	if logs := ka2.Logs.String(); !strings.Contains(logs, rogue.A.KeyID()) || !strings.Contains(logs, "not a trusted archive key") {
		t.Fatalf("the refusal does not name the unannounced key %s:\n%s", rogue.A.KeyID(), logs)
	}
	if _, ok, err := out.OutboxGet(t.Context(), "b-0009"); err != nil || !ok {
		t.Fatalf("the bundle left the outbox: %v", err)
	}
}
