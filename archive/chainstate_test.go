package archive

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/archive/state"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/internal/mariadbtest"
)

// chainEnv is an archive in dir taking the bundles of one test chain.
type chainEnv struct {
	t     *testing.T
	dir   string
	key   ed25519.PrivateKey
	c     *bundletest.Chain
	a     *Archive
	state state.Store // Options.State (nil: the default)
}

func newChainEnv(t *testing.T, n int) *chainEnv {
	t.Helper()
	c, err := bundletest.NewChain(t.Context(), nil, n, bundletest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &chainEnv{t: t, dir: t.TempDir(), key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)), c: c}
}

func (e *chainEnv) open() {
	e.t.Helper()
	a, err := Open(e.t.Context(), Options{Dir: e.dir, Key: e.key, State: e.state})
	if err != nil {
		e.t.Fatal(err)
	}
	e.a = a
	e.t.Cleanup(func() { a.Close() })
}

func (e *chainEnv) close() {
	e.t.Helper()
	if err := e.a.Close(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *chainEnv) approve() {
	e.t.Helper()
	trust, _ := e.c.Trust.Marshal()
	req, err := ParseEnrollRequest(trust)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.a.Devices().Enroll(e.t.Context(), req); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.a.Devices().Approve(e.t.Context(), e.c.DeviceName(), "", "test"); err != nil {
		e.t.Fatal(err)
	}
}

// send sends bundle i and returns its receipt (err: the refusal).
func (e *chainEnv) send(i int) (*archivesig.Receipt, error) {
	e.t.Helper()
	raw, _ := e.c.Bundles[i].Bytes()
	reply, err := e.a.Receive(e.t.Context(), e.c.Opts.Site, e.c.Opts.Device, raw)
	if err != nil {
		return nil, err
	}
	r, err := archivesig.VerifyReceipt(reply, e.a.KeyID(), e.a.PublicKey())
	if err != nil {
		e.t.Fatal(err)
	}
	return r, nil
}

func (e *chainEnv) accept(i int) *archivesig.Receipt {
	e.t.Helper()
	r, err := e.send(i)
	if err != nil {
		e.t.Fatalf("bundle %d: %v", i, err)
	}
	return r
}

// chain is the device's stored chain state.
func (e *chainEnv) chain() state.Chain {
	e.t.Helper()
	c, err := e.a.chainStore.Get(e.t.Context(), e.c.DeviceName())
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// wantChain checks the stored chain after bundles [0, n) were accepted,
// the last receipt last.
func (e *chainEnv) wantChain(n int, last *archivesig.Receipt) {
	e.t.Helper()
	c := e.chain()
	cp, _ := merkle.ParseCheckpoint([]byte(e.c.States[n-1].Checkpoint))
	raw, _ := e.c.Bundles[n-1].Bytes()
	arch, err := last.ArchiveRoot()
	if err != nil {
		e.t.Fatal(err)
	}
	if c.Epoch != 1 || c.Bundles != uint64(n) || c.Head != sha256.Sum256(raw) || c.Size != cp.Size || c.Root != cp.Root ||
		c.LogIndex != last.LogIndex || c.ReceiptLogIndex != last.LogIndex || c.ReceiptSize != arch.Size || c.ReceiptRoot != arch.Root {
		e.t.Fatalf("chain state %+v after %d bundles (checkpoint %d, receipt at %d over archive size %d)", c, n, cp.Size, last.LogIndex, arch.Size)
	}
}

// checkGoesOn: the archive admits the next bundle as it would have
// without a restart (its witness proof from the last receipt), answers
// a repeat with its receipt, and refuses an older bundle.
func (e *chainEnv) checkGoesOn(next int, last *archivesig.Receipt) *archivesig.Receipt {
	e.t.Helper()
	arch, _ := last.ArchiveRoot()
	r := e.accept(next)
	if r.WitnessFrom != arch.Size {
		e.t.Fatalf("receipt of bundle %d witnesses from %d, want the last receipt's archive size %d", next, r.WitnessFrom, arch.Size)
	}
	again := e.accept(next)
	if again.LogIndex != r.LogIndex {
		e.t.Fatalf("a repeat of bundle %d got log index %d, want %d", next, again.LogIndex, r.LogIndex)
	}
	if next >= 2 {
		var re *RejectedError
		if _, err := e.send(next - 2); err == nil || !errors.As(err, &re) {
			// Accepted before: the same receipt. Never a new entry.
			if e.a.LogSize() != r.LogIndex+1 {
				e.t.Fatalf("an older bundle was logged again: log size %d", e.a.LogSize())
			}
		}
	}
	return r
}

// TestOpenReadsNoIndex: an archive closed cleanly reopens without reading
// one index event, whatever its history, and goes on from its chain
// state.
func TestOpenReadsNoIndex(t *testing.T) {
	e := newChainEnv(t, 6)
	e.open()
	e.approve()
	var last *archivesig.Receipt
	for i := range 4 {
		last = e.accept(i)
	}
	e.close()
	e.open()
	if e.a.replayed != 0 {
		t.Fatalf("Open read %d index events of %d, want none", e.a.replayed, e.a.index.Size())
	}
	e.wantChain(4, last)
	last = e.checkGoesOn(4, last)
	e.wantChain(5, last)
	e.close()
	e.open()
	if e.a.replayed != 0 {
		t.Fatalf("second reopen read %d index events", e.a.replayed)
	}
	e.checkGoesOn(5, last)
}

// TestChainStateMigration: an archive as earlier versions left it (no
// chain-state store, no index mark: built here by today's code, both
// then removed) is read whole once, and from then on not at all.
func TestChainStateMigration(t *testing.T) {
	e := newChainEnv(t, 5)
	e.open()
	e.approve()
	var last *archivesig.Receipt
	for i := range 3 {
		last = e.accept(i)
	}
	e.close()
	if err := os.RemoveAll(filepath.Join(e.dir, chainStateDir)); err != nil {
		t.Fatal(err)
	}
	if err := removeIndexMark(e.dir); err != nil {
		t.Fatal(err)
	}
	e.open()
	e.checkMigrated(last)
	last = e.checkGoesOn(3, last)
	e.close()
	e.open()
	if e.a.replayed != 0 {
		t.Fatalf("Open after the migration read %d index events", e.a.replayed)
	}
	e.wantChain(4, last)
	e.checkGoesOn(4, last)
}

// TestChainStateLeftOut: state/ left out of a backup (the index mark
// restored): Open does not trust the mark and reads the index whole.
func TestChainStateLeftOut(t *testing.T) {
	e := newChainEnv(t, 5)
	e.open()
	e.approve()
	var last *archivesig.Receipt
	for i := range 3 {
		last = e.accept(i)
	}
	e.close()
	if err := os.RemoveAll(filepath.Join(e.dir, chainStateDir)); err != nil {
		t.Fatal(err)
	}
	e.open()
	e.checkMigrated(last)
	e.checkGoesOn(3, last)
}

// checkMigrated: the Open read the 3 events whole and the chain state
// holds what they say.
func (e *chainEnv) checkMigrated(last *archivesig.Receipt) {
	t := e.t
	t.Helper()
	if n := e.a.index.Size(); e.a.replayed != n || n != 3 {
		t.Fatalf("migrating Open read %d index events of %d", e.a.replayed, n)
	}
	e.wantChain(3, last)
	// Every accepted checkpoint is there for the fork checks.
	for i := range 3 {
		cp, _ := merkle.ParseCheckpoint([]byte(e.c.States[i].Checkpoint))
		raw, _ := e.c.Bundles[i].Bytes()
		got, err := e.a.chainStore.Checkpoint(t.Context(), e.c.DeviceName(), 1, cp.Size)
		if err != nil || got.Root != cp.Root || got.Bundle != sha256.Sum256(raw) {
			t.Fatalf("checkpoint %d after migration: %+v %v", cp.Size, got, err)
		}
	}
}

// TestChainStateCatchUp: the events after an older mark (a crash before
// the mark moved on) are read again; those the store has are not
// applied twice.
func TestChainStateCatchUp(t *testing.T) {
	e := newChainEnv(t, 6)
	e.open()
	e.approve()
	var last *archivesig.Receipt
	for i := range 2 {
		last = e.accept(i)
	}
	e.close()
	mark, err := os.ReadFile(filepath.Join(e.dir, indexMarkFile))
	if err != nil {
		t.Fatal(err)
	}
	e.open()
	for i := 2; i < 4; i++ {
		last = e.accept(i)
	}
	e.close()
	if err := fsutil.WriteFileAtomic(filepath.Join(e.dir, indexMarkFile), mark, 0o600); err != nil {
		t.Fatal(err)
	}
	e.open()
	if e.a.replayed != 2 {
		t.Fatalf("Open read %d index events, want the 2 after the mark", e.a.replayed)
	}
	e.wantChain(4, last)
	e.checkGoesOn(4, last)
}

// TestArchiveOnSQLState: the archive keeps its chain state in MariaDB
// (Options.State) and reopens on it without reading the index.
func TestArchiveOnSQLState(t *testing.T) {
	srv := mariadbtest.Start(t)
	db, err := sql.Open("mysql", srv.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := state.OpenSQL(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	e := newChainEnv(t, 4)
	e.state = s
	e.open()
	e.approve()
	var last *archivesig.Receipt
	for i := range 3 {
		last = e.accept(i)
	}
	e.close()
	if _, err := os.Stat(filepath.Join(e.dir, chainStateDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a Badger chain-state store beside the SQL one: %v", err)
	}
	e.open()
	if e.a.replayed != 0 {
		t.Fatalf("Open read %d index events", e.a.replayed)
	}
	e.wantChain(3, last)
	e.checkGoesOn(3, last)
}
