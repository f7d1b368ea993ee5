package archivesig_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// witnessLog is an archive log in memory whose receipts carry the
// consistency members; tag makes the entries of a forked log differ.
type witnessLog struct {
	t      *testing.T
	tag    string
	leaves [][32]byte
	signer note.Signer
	pub    ed25519.PublicKey
	priv   ed25519.PrivateKey
}

func newWitnessLog(t *testing.T, tag string) *witnessLog {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, "archive.example")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &witnessLog{t: t, tag: tag, signer: signer, pub: pub, priv: priv}
}

// accept logs an entry and returns the parsed receipt for it, with the
// consistency proof from size from (0: none).
func (l *witnessLog) accept(from uint64) *archivesig.Receipt {
	t := l.t
	t.Helper()
	i := len(l.leaves)
	d := sha256.Sum256(fmt.Appendf(nil, "%s bundle %d", l.tag, i))
	r := &archivesig.Receipt{
		BundleDigest: wire.FormatHash(d), Device: "site1/dev1", CheckpointSize: uint64(i + 1),
		CheckpointRoot: wire.FormatHash(sha256.Sum256(d[:])), LogIndex: uint64(i), RetentionUntil: "2033-11-26T00:00:00.000000Z",
	}
	entry, err := r.Entry().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	l.leaves = append(l.leaves, merkle.LeafHash(entry))
	tree := &merkle.Partial{Leaves: l.leaves}
	size := uint64(len(l.leaves))
	root, err := tree.Hash(0, size)
	if err != nil {
		t.Fatal(err)
	}
	body := merkle.Checkpoint{Origin: "edgeseal-archive/example", Size: size, Root: root}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(body)}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	incl, err := merkle.InclusionProof(tree.Hash, r.LogIndex, size)
	if err != nil {
		t.Fatal(err)
	}
	r.ArchiveCheckpoint, r.InclusionProof = string(signed), merkle.ProofBytes(incl)
	if from > 0 {
		cons, err := merkle.ConsistencyProof(tree.Hash, from, size)
		if err != nil {
			t.Fatal(err)
		}
		r.WitnessFrom = from
		if len(cons) > 0 {
			r.WitnessProof = merkle.ProofBytes(cons)
		}
	}
	raw, err := archivesig.SignReceipt(r, "k1", l.priv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := archivesig.VerifyReceipt(raw, "k1", l.pub)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func mustRoot(t *testing.T, r *archivesig.Receipt) merkle.Checkpoint {
	t.Helper()
	cp, err := r.ArchiveRoot()
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// TestCheckConsistency: a checkpoint that extends the accepted one with a
// valid proof is accepted; a forked log, a smaller size, another root at
// the same size are ErrInconsistent; a larger checkpoint without a proof
// from the accepted size is ErrNoConsistency; a device with no accepted
// checkpoint needs no proof.
func TestCheckConsistency(t *testing.T) {
	l := newWitnessLog(t, "main")
	r2 := func() *archivesig.Receipt { l.accept(0); return l.accept(0) }()
	cp2 := mustRoot(t, r2)
	if got, err := archivesig.CheckConsistency(nil, r2); err != nil || got != cp2 {
		t.Fatalf("first receipt: %v, %v", got, err)
	}
	l.accept(2)
	l.accept(3)
	r5 := l.accept(2)
	cp5, err := archivesig.CheckConsistency(&cp2, r5)
	if err != nil || cp5.Size != 5 {
		t.Fatalf("consistent receipt: %v, %v", cp5, err)
	}
	if _, err := archivesig.CheckConsistency(&cp5, r5); err != nil {
		t.Fatalf("same checkpoint again: %v", err)
	}
	if _, err := archivesig.CheckConsistency(&cp5, r2); !errors.Is(err, archivesig.ErrInconsistent) {
		t.Fatalf("smaller size: %v", err)
	}

	// A fork: the same first two entries, then others.
	f := newWitnessLog(t, "main")
	f.accept(0)
	f.accept(0)
	f.tag = "fork"
	f.accept(2)
	f.accept(2)
	fr5 := f.accept(2)
	if _, err := archivesig.CheckConsistency(&cp2, fr5); err != nil {
		t.Fatalf("the fork's own prefix is consistent: %v", err)
	}
	if _, err := archivesig.CheckConsistency(&cp5, fr5); !errors.Is(err, archivesig.ErrInconsistent) {
		t.Fatalf("another root at the same size: %v", err)
	}
	f6 := f.accept(5)
	if _, err := archivesig.CheckConsistency(&cp5, f6); !errors.Is(err, archivesig.ErrInconsistent) {
		t.Fatalf("fork with its own proof: %v", err)
	}

	// A proof that is missing, or from another size.
	r6 := l.accept(0)
	if _, err := archivesig.CheckConsistency(&cp5, r6); !errors.Is(err, archivesig.ErrNoConsistency) {
		t.Fatalf("missing proof: %v", err)
	}
	r7 := l.accept(3)
	if _, err := archivesig.CheckConsistency(&cp5, r7); !errors.Is(err, archivesig.ErrNoConsistency) {
		t.Fatalf("proof from another size: %v", err)
	}
}

// TestReceiptConsistencyMembers: the consistency members are checked
// in form when a receipt is parsed.
func TestReceiptConsistencyMembers(t *testing.T) {
	l := newWitnessLog(t, "main")
	l.accept(0)
	good := l.accept(1)
	for name, mod := range map[string]func(r *archivesig.Receipt){
		"from beyond size":   func(r *archivesig.Receipt) { r.WitnessFrom = 3 },
		"proof without from": func(r *archivesig.Receipt) { r.WitnessFrom, r.WitnessProof = 0, [][]byte{make([]byte, 32)} },
		"short hash":         func(r *archivesig.Receipt) { r.WitnessProof = [][]byte{make([]byte, 31)} },
		"too long":           func(r *archivesig.Receipt) { r.WitnessProof = make([][]byte, merkle.MaxProofLen+1) },
	} {
		r := *good
		mod(&r)
		if _, err := archivesig.SignReceipt(&r, "k1", l.priv); err == nil {
			t.Errorf("%s: signed", name)
		}
		payload, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := archivesig.SignEnvelope(archivesig.ReceiptPayloadType, payload, "k1", l.priv)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := archivesig.ParseReceipt(raw); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}
