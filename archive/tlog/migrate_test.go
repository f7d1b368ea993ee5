package tlog_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/transparency-dev/tessera/client"

	"github.com/edgeseal/edgeseal/archive/tlog"
	"github.com/edgeseal/edgeseal/archive/tlog/tlogtest"
	"github.com/edgeseal/edgeseal/bundle/merkle"
)

// TestMigrateJournalToPOSIX migrates a Badger journal log into a Tessera
// log and checks that the tree is the same: the same root, byte-identical
// inclusion proofs (those in receipts already issued stay valid), a
// consistency proof from the journal's earlier checkpoint to the Tessera
// log's, and appends that go on after the migrated entries.
func TestMigrateJournalToPOSIX(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	s, v := tlogtest.Keys(t, "edgeseal-archive")
	src := openJournal(t, t.TempDir(), s, v)
	defer src.Close(ctx)
	var old tlog.Checkpoint
	for i := range 700 {
		if _, err := src.Append(ctx, fmt.Appendf(nil, "journal entry %d", i)); err != nil {
			t.Fatal(err)
		}
		if i == 299 {
			var err error
			if old, err = src.AwaitCheckpoint(ctx, 300); err != nil {
				t.Fatal(err)
			}
		}
	}
	upTo, err := src.AwaitCheckpoint(ctx, 700)
	if err != nil {
		t.Fatal(err)
	}

	// A wrong root is refused.
	bad := upTo
	bad.Root[0] ^= 1
	if err := tlog.MigrateToPOSIX(ctx, src, t.TempDir(), bad); err == nil {
		t.Fatal("migration to a wrong root succeeded")
	}

	dir := t.TempDir()
	if err := tlog.MigrateToPOSIX(ctx, src, dir, upTo); err != nil {
		t.Fatal(err)
	}
	dst := openPOSIX(t, dir, s, v)
	defer dst.Close(ctx)
	c, err := dst.AwaitCheckpoint(ctx, 700)
	if err != nil {
		t.Fatal(err)
	}
	if c.Size != 700 || c.Root != upTo.Root {
		t.Fatalf("migrated checkpoint %d %x, want 700 %x", c.Size, c.Root, upTo.Root)
	}
	for _, i := range []uint64{0, 255, 256, 299} {
		want, err := src.InclusionProof(ctx, i, old.Size)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dst.InclusionProof(ctx, i, old.Size)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("inclusion proof of %d in %d differs after migration", i, old.Size)
		}
		e, err := dst.Entry(ctx, i)
		if err != nil || string(e) != fmt.Sprintf("journal entry %d", i) {
			t.Fatalf("Entry(%d) = %q, %v", i, e, err)
		}
	}
	p, err := dst.ConsistencyProof(ctx, old.Size, c.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := merkle.VerifyConsistency(p, old.Size, c.Size, old.Root, c.Root); err != nil {
		t.Fatalf("journal checkpoint %d to migrated %d: %v", old.Size, c.Size, err)
	}
	// The migrated log serves the journal's tiles and entry bundles byte
	// for byte: a follower does not see the migration.
	js, ps := src.(tlog.Source), dst.(tlog.Source)
	for _, r := range []struct {
		level, index uint64
		w            uint8
		bundle       bool
	}{{0, 0, 0, false}, {0, 1, 0, false}, {0, 2, 188, false}, {0, 1, 44, false}, {1, 0, 2, false}, {1, 0, 1, false},
		{0, 0, 0, true}, {0, 2, 188, true}, {0, 1, 44, true}} {
		read := func(s tlog.Source) ([]byte, error) {
			if r.bundle {
				return s.ReadEntryBundle(ctx, r.index, r.w)
			}
			return s.ReadTile(ctx, r.level, r.index, r.w)
		}
		a, err := read(js)
		if err != nil {
			t.Fatal(err)
		}
		b, err := read(ps)
		if err != nil {
			t.Fatal(err)
		}
		if string(a) != string(b) {
			t.Fatalf("%+v: the journal and the migrated log serve different bytes", r)
		}
	}

	// A standard client holding the journal's old checkpoint follows the
	// migrated log over HTTP: tiles at the old size are served (cut from
	// the wider ones the migration wrote).
	srv := httptest.NewServer(tlog.Handler(dst.(*tlog.Tessera), nil))
	defer srv.Close()
	base, _ := url.Parse(srv.URL + "/")
	f, err := client.NewHTTPFetcher(base, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	lst, err := client.NewLogStateTracker(ctx, f.ReadTile, old.Note, v, v.Name(), client.UnilateralConsensus(f.ReadCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, to, err := lst.Update(ctx); err != nil || string(to) != string(c.Note) {
		t.Fatalf("client update from the journal's checkpoint: %v", err)
	}
	if idx, err := dst.Append(ctx, []byte("after migration")); err != nil || idx != 700 {
		t.Fatalf("Append after migration = %d, %v; want 700", idx, err)
	}
}
