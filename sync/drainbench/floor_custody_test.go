package drainbench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"path/filepath"
	gosync "sync"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/edgeseal/edgeseal/archive/state"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/sync"
)

// floorGroup bounds the bundles of one custody commit and floorQueue the
// bundles verified and waiting for it, as the archive's committer
// bounds a group and its queue.
const (
	floorGroup = 32
	floorQueue = 16
)

// custodyFloor is the custody work no archive can leave out of
// admission, done the plain way on the same engines: a receipt is only
// worth something once the bundle's entry is in the archive log, the
// receipt is signed against a signed checkpoint that covers it, the
// acceptance is recorded with the receipt, and the device's chain state
// has moved past the bundle (the next bundle is judged on it), each
// durable. For a group of verified and stored bundles: one synced
// journal commit of the log entries (the canonical receipt entry of
// each), one checkpoint signature, a signed receipt with its inclusion
// proof for each bundle, one synced journal commit of the acceptances
// (the verify state and the receipt of each), one synced chain-state
// advance. Left out: the log's stored tiles (the proofs come from the
// leaf hashes in memory), the witness consistency proofs, the export
// index, the alerts, and everything the archive does for features other
// than admission.
type custodyFloor struct {
	log, index *store.Journal
	chain      *state.Badger
	key        ed25519.PrivateKey
	notes      note.Signer    // the checkpoints' signer
	version    uint64         // the device's chain version
	bundles    uint64         // the device's bundles accepted
	tree       merkle.Partial // the log's leaf hashes
	closeOnce  gosync.Once
}

// floorBundle is a verified bundle on its way to custody; put gives the
// result of its store, started once it was verified.
type floorBundle struct {
	c   *sync.Complete
	st  *verify.State
	put chan error
}

func openCustodyFloor(b *testing.B, dir string) *custodyFloor {
	ctx := context.Background()
	var f custodyFloor
	var err error
	if f.log, err = store.Open(ctx, store.Options{Dir: filepath.Join(dir, "log")}); err != nil {
		b.Fatal(err)
	}
	if f.index, err = store.Open(ctx, store.Options{Dir: filepath.Join(dir, "index")}); err != nil {
		b.Fatal(err)
	}
	if f.chain, err = state.OpenBadger(ctx, filepath.Join(dir, "state")); err != nil {
		b.Fatal(err)
	}
	if _, f.key, err = ed25519.GenerateKey(rand.Reader); err != nil {
		b.Fatal(err)
	}
	skey, _, err := note.GenerateKey(rand.Reader, "floor")
	if err != nil {
		b.Fatal(err)
	}
	if f.notes, err = note.NewSigner(skey); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(f.close)
	return &f
}

// close closes the floor's stores, once. The floor closes them as soon
// as its run is over: the benchmark's process is the agent's during the
// drain, and their background work (Badger's compactors, three stores a
// run) would count as the agent's CPU there and in its idle CPU.
func (f *custodyFloor) close() {
	f.closeOnce.Do(func() { f.chain.Close(); f.index.Close(); f.log.Close() })
}

// commit makes a group of stored bundles of device durable as above.
func (f *custodyFloor) commit(ctx context.Context, device string, g []floorBundle) error {
	entries := make([]archivesig.ReceiptEntry, len(g))
	cps := make([]merkle.Checkpoint, len(g))
	log := make([]store.Entry, len(g))
	for i, fb := range g {
		cp, err := merkle.ParseCheckpoint([]byte(fb.st.Checkpoint))
		if err != nil {
			return err
		}
		cps[i] = cp
		entries[i] = archivesig.ReceiptEntry{BundleDigest: wire.FormatHash(fb.c.Digest), Device: device, CheckpointSize: cp.Size, CheckpointRoot: wire.FormatHash(cp.Root)}
		rec, err := entries[i].Marshal()
		if err != nil {
			return err
		}
		log[i] = store.Entry{Build: func(uint64, [32]byte) ([]byte, error) { return rec, nil }, Key: fb.c.Digest[:]}
		f.tree.Leaves = append(f.tree.Leaves, merkle.LeafHash(rec))
	}
	if _, err := f.log.AppendBatch(ctx, log); err != nil {
		return fmt.Errorf("floor log: %w", err)
	}
	size := f.tree.Size()
	root, err := f.tree.Hash(0, size)
	if err != nil {
		return err
	}
	signed, err := note.Sign(&note.Note{Text: string(merkle.Checkpoint{Origin: "floor", Size: size, Root: root}.Marshal())}, f.notes)
	if err != nil {
		return err
	}
	events := make([]store.Entry, len(g))
	to := state.Chain{Epoch: 1}
	var accepted []state.Checkpoint
	for i, fb := range g {
		r := &archivesig.Receipt{BundleDigest: entries[i].BundleDigest, Device: device, CheckpointSize: entries[i].CheckpointSize,
			CheckpointRoot: entries[i].CheckpointRoot, LogIndex: size - uint64(len(g)-i), ArchiveCheckpoint: string(signed),
			RetentionUntil: "2036-12-07T00:00:00.000000Z"}
		proof, err := merkle.InclusionProof(f.tree.Hash, r.LogIndex, size)
		if err != nil {
			return err
		}
		r.InclusionProof = merkle.ProofBytes(proof)
		receipt, err := archivesig.SignReceipt(r, "floor", f.key)
		if err != nil {
			return err
		}
		vj, err := fb.st.Marshal()
		if err != nil {
			return err
		}
		ev, err := json.Marshal(map[string]any{"type": "accept", "bundle": r.BundleDigest, "device": device, "logIndex": r.LogIndex,
			"checkpoint": fb.st.Checkpoint, "state": json.RawMessage(vj), "receipt": wire.FormatHash(sha256.Sum256(receipt))})
		if err != nil {
			return err
		}
		events[i] = store.Entry{Build: func(uint64, [32]byte) ([]byte, error) { return ev, nil },
			Payloads: []store.Payload{{Digest: sha256.Sum256(receipt), Data: receipt}}, Key: fb.c.Digest[:]}
		to.Bundles, to.Head, to.LogIndex, to.Size, to.Root, to.Verify = f.bundles+uint64(i)+1, fb.c.Digest, r.LogIndex, cps[i].Size, cps[i].Root, vj
		to.Accepted = append(to.Accepted, state.Accepted{Bundle: fb.c.Digest, Device: device, LogIndex: r.LogIndex, Receipt: receipt})
		accepted = append(accepted, state.Checkpoint{Epoch: 1, Size: cps[i].Size, Root: cps[i].Root, Bundle: fb.c.Digest})
	}
	if _, err := f.index.AppendBatch(ctx, events); err != nil {
		return fmt.Errorf("floor index: %w", err)
	}
	c, err := f.chain.Advance(ctx, device, f.version, to, accepted...)
	if err != nil {
		return fmt.Errorf("floor chain: %w", err)
	}
	f.version, f.bundles = c.Version, to.Bundles
	return nil
}
