package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/sync"
)

const vectorsDir = "../../testdata/vectors"

func loadReplies(t *testing.T) (*Replies, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(vectorsDir, VectorsFile))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var v Replies
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return &v, raw
}

// TestRepliesVectors checks the committed reply vectors with the readers
// of this repository: the valid replies verify under the vector key, the
// receipt's entry is the proven log leaf under a valid signed note, and
// every changed copy is refused.
func TestRepliesVectors(t *testing.T) {
	v, _ := loadReplies(t)
	pub := ed25519.PublicKey(v.PublicKey)
	if archivesig.ArchiveKeyID(pub) != v.KeyID {
		t.Fatalf("key id %s, the key's is %s", v.KeyID, archivesig.ArchiveKeyID(pub))
	}
	r, err := archivesig.VerifyReceipt([]byte(v.Receipt), v.KeyID, pub)
	if err != nil {
		t.Fatalf("receipt: %v", err)
	}
	entry, err := r.Entry().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if r.LogIndex >= uint64(len(v.LogEntries)) || string(entry) != v.LogEntries[r.LogIndex] {
		t.Fatalf("receipt entry %s is not log entry %d", entry, r.LogIndex)
	}
	for i, e := range v.LogEntries {
		if got := wire.FormatHash(merkle.LeafHash([]byte(e))); got != v.LeafHashes[i] {
			t.Errorf("leaf %d hash %s, vector says %s", i, got, v.LeafHashes[i])
		}
	}
	verifier, err := note.NewVerifier(v.NoteKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open([]byte(r.ArchiveCheckpoint), note.VerifierList(verifier)); err != nil {
		t.Errorf("archive checkpoint note: %v", err)
	}
	if _, err := sync.VerifyRejection([]byte(v.Rejection), v.KeyID, pub); err != nil {
		t.Errorf("rejection: %v", err)
	}
	if _, err := sync.VerifyEnrollAck([]byte(v.EnrollAck), v.KeyID, pub); err != nil {
		t.Errorf("enrollment answer: %v", err)
	}
	keys := archivesig.NewArchiveKeys("edgeseal-archive", pub)
	now := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	an, err := keys.VerifyContentKey([]byte(v.ContentKey), now)
	if err != nil {
		t.Fatalf("content key announcement: %v", err)
	}
	ck, err := payloadcipher.DeriveKey([]byte(v.ContentKeyIKM))
	if err != nil || an.KeyID != ck.ID || an.Seq != 2 {
		t.Fatalf("content key announcement names %s seq %d, the derived key is %s (%v)", an.KeyID, an.Seq, ck.ID, err)
	}
	rc, err := archivesig.VerifyReceipt([]byte(v.ReceiptContentKey), v.KeyID, pub)
	if err != nil || string(rc.ContentKey) != v.ContentKey {
		t.Fatalf("receipt with the content key: %v", err)
	}
	rcons, err := archivesig.VerifyReceipt([]byte(v.ReceiptConsistency), v.KeyID, pub)
	if err != nil {
		t.Fatalf("receipt with a consistency proof: %v", err)
	}
	before, err := merkle.ParseAnyCheckpoint([]byte(v.ArchiveCheckpointBefore))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := archivesig.CheckConsistency(&before, rcons); err != nil {
		t.Errorf("consistency from the checkpoint before: %v", err)
	}
	forked, err := merkle.ParseAnyCheckpoint([]byte(v.ArchiveCheckpointForked))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := archivesig.CheckConsistency(&forked, rcons); !errors.Is(err, archivesig.ErrInconsistent) {
		t.Errorf("consistency from the forked checkpoint: %v", err)
	}
	for _, f := range v.Refused {
		var err error
		switch f.Kind {
		case "contentKey":
			_, err = keys.VerifyContentKey([]byte(f.Envelope), now)
		case "receipt":
			_, err = archivesig.VerifyReceipt([]byte(f.Envelope), v.KeyID, pub)
		case "rejection":
			_, err = sync.VerifyRejection([]byte(f.Envelope), v.KeyID, pub)
		case "enrollAck":
			_, err = sync.VerifyEnrollAck([]byte(f.Envelope), v.KeyID, pub)
		default:
			t.Errorf("%s: unknown kind %q", f.Name, f.Kind)
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted", f.Name)
		}
	}
}

// TestRepliesVectorsReproducible: the generator writes the committed
// bytes again (Ed25519 signatures are deterministic).
func TestRepliesVectorsReproducible(t *testing.T) {
	_, committed := loadReplies(t)
	v, err := replies()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := marshalReplies(v)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, committed) {
		t.Fatalf("replies() differ from %s: regenerate with go run ./internal/corpusgen", VectorsFile)
	}
}
