package tlog_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
	sumtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/edgeseal/edgeseal/archive/tlog"
	"github.com/edgeseal/edgeseal/archive/tlog/tlogtest"
)

// servedLog is a POSIX log with entries, served over loopback HTTP under
// /log/.
type servedLog struct {
	l        logSource
	dir      string
	h        http.Handler
	srv      *httptest.Server
	base     *url.URL
	verifier note.Verifier
	entries  [][]byte
	cps      []tlog.Checkpoint
}

// logSource is a log that Handler can serve.
type logSource interface {
	tlog.Log
	tlog.Source
}

// newServedLog is newServedLogOf a Tessera POSIX log.
func newServedLog(t *testing.T, sizes ...int) *servedLog {
	return newServedLogOf(t, "posix", sizes...)
}

// newServedLogOf opens a log of backend ("posix", "journal" or "mysql"), appends
// sizes[0] entries, awaits a checkpoint, then up to sizes[1], and so on.
func newServedLogOf(t *testing.T, backend string, sizes ...int) *servedLog {
	t.Helper()
	ctx := t.Context()
	s, v := tlogtest.Keys(t, "edgeseal-archive")
	dir := t.TempDir()
	var l logSource
	switch backend {
	case "posix":
		l = openPOSIX(t, dir, s, v).(*tlog.Tessera)
	case "mysql":
		l = newMySQLLogs(t).open(t, dir, s, v).(*tlog.Tessera)
	default:
		l = openJournal(t, dir, s, v).(*tlog.Journal)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	sl := &servedLog{l: l, dir: dir, verifier: v}
	for _, n := range sizes {
		sl.entries = appendConcurrently(t, l, sl.entries, n)
		c, err := l.AwaitCheckpoint(ctx, uint64(n))
		if err != nil {
			t.Fatal(err)
		}
		sl.cps = append(sl.cps, c)
	}
	mux := http.NewServeMux()
	sl.h = tlog.Handler(l, slog.New(slog.DiscardHandler))
	mux.Handle("/log/", http.StripPrefix("/log", sl.h))
	sl.srv = httptest.NewServer(mux)
	t.Cleanup(sl.srv.Close)
	sl.base, _ = url.Parse(sl.srv.URL + "/log/")
	return sl
}

func (sl *servedLog) get(t *testing.T, p string) (int, []byte) {
	t.Helper()
	resp, err := sl.srv.Client().Get(sl.srv.URL + "/log/" + p)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// TestStandardClientsFollowLog is the acceptance test: from the HTTP
// endpoint alone, Tessera's client and golang.org/x/mod/sumdb/tlog (an
// independent implementation) verify the checkpoint's signature, the
// inclusion of entries and the consistency of two checkpoints.
func TestStandardClientsFollowLog(t *testing.T) {
	for _, backend := range []string{"posix", "journal", "mysql"} {
		t.Run(backend, func(t *testing.T) { testStandardClients(t, backend) })
	}
}

func testStandardClients(t *testing.T, backend string) {
	// Sizes cross entry bundle and tile boundaries; the first checkpoint
	// is partial in its last tile.
	sl := newServedLogOf(t, backend, 300, 1000)
	ctx := t.Context()
	old, cur := sl.cps[0], sl.cps[1]
	origin := sl.verifier.Name()

	t.Run("tessera client", func(t *testing.T) {
		f, err := client.NewHTTPFetcher(sl.base, sl.srv.Client())
		if err != nil {
			t.Fatal(err)
		}
		cp, raw, _, err := client.FetchCheckpoint(ctx, f.ReadCheckpoint, sl.verifier, origin)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size != cur.Size || string(raw) != string(cur.Note) {
			t.Fatalf("served checkpoint %d, want %d", cp.Size, cur.Size)
		}
		// Consistency: a tracker holding the old checkpoint updates to the
		// new one only with a valid consistency proof built from tiles.
		lst, err := client.NewLogStateTracker(ctx, f.ReadTile, old.Note, sl.verifier, origin, client.UnilateralConsensus(f.ReadCheckpoint))
		if err != nil {
			t.Fatal(err)
		}
		from, cproof, to, err := lst.Update(ctx)
		if err != nil {
			t.Fatalf("tracker update: %v", err)
		}
		if string(from) != string(old.Note) || string(to) != string(cur.Note) || len(cproof) == 0 {
			t.Fatalf("tracker went from %q to %q with %d hashes", from, to, len(cproof))
		}
		// Inclusion of entries fetched from their bundles.
		pb, err := client.NewProofBuilder(ctx, cp.Size, f.ReadTile)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range []uint64{0, 255, 256, 299, 511, 700, 999} {
			b, err := client.GetEntryBundle(ctx, f.ReadEntryBundle, i/layout.EntryBundleWidth, cp.Size)
			if err != nil {
				t.Fatal(err)
			}
			e := b.Entries[i%layout.EntryBundleWidth]
			if string(e) != string(sl.entries[i]) {
				t.Fatalf("entry %d served as %q", i, e)
			}
			p, err := pb.InclusionProof(ctx, i)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, cp.Size, rfc6962.DefaultHasher.HashLeaf(e), p, cp.Hash); err != nil {
				t.Fatalf("inclusion of %d: %v", i, err)
			}
		}
	})

	t.Run("x/mod sumdb tlog", func(t *testing.T) {
		// The checkpoint: a C2SP signed note, body parsed by the
		// transparency-dev formats parser.
		code, raw := sl.get(t, "checkpoint")
		if code != http.StatusOK {
			t.Fatalf("checkpoint: %d", code)
		}
		cp, _, _, err := log.ParseCheckpoint(raw, origin, sl.verifier)
		if err != nil {
			t.Fatal(err)
		}
		tr := sumtlog.Tree{N: int64(cp.Size), Hash: sumtlog.Hash(cp.Hash)}
		oldTree := sumtlog.Tree{N: int64(old.Size), Hash: sumtlog.Hash(old.Root)}
		tiles := &httpTiles{t: t, sl: sl}
		hr := sumtlog.TileHashReader(tr, tiles)
		// TileHashReader authenticates every tile against the tree hash.
		if h, err := sumtlog.TreeHash(tr.N, hr); err != nil || h != tr.Hash {
			t.Fatalf("TreeHash = %v, %v; want %v", h, err, tr.Hash)
		}
		for _, i := range []int64{0, 1, 255, 256, 299, 700, 999} {
			e := bundleEntry(t, sl, i, cp.Size)
			p, err := sumtlog.ProveRecord(tr.N, i, hr)
			if err != nil {
				t.Fatal(err)
			}
			if err := sumtlog.CheckRecord(p, tr.N, tr.Hash, i, sumtlog.RecordHash(e)); err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
		}
		tp, err := sumtlog.ProveTree(tr.N, oldTree.N, hr)
		if err != nil {
			t.Fatal(err)
		}
		if err := sumtlog.CheckTree(tp, tr.N, tr.Hash, oldTree.N, oldTree.Hash); err != nil {
			t.Fatalf("tree %d to %d: %v", oldTree.N, tr.N, err)
		}
		// A root that is not the old checkpoint's fails the same check.
		bad := oldTree.Hash
		bad[0] ^= 1
		if err := sumtlog.CheckTree(tp, tr.N, tr.Hash, oldTree.N, bad); err == nil {
			t.Fatal("CheckTree accepted a wrong old root")
		}
	})
}

// appendConcurrently appends entries from 32 goroutines until the log
// holds n, and returns all entries by index.
func appendConcurrently(t *testing.T, l tlog.Log, entries [][]byte, n int) [][]byte {
	t.Helper()
	from := len(entries)
	entries = append(entries, make([][]byte, n-from)...)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := from + w; i < n; i += 32 {
				e := fmt.Appendf(nil, "receipt entry %d", i)
				idx, err := l.Append(t.Context(), e)
				mu.Lock()
				if err != nil || idx < uint64(from) || idx >= uint64(n) || entries[idx] != nil {
					t.Errorf("Append = %d, %v", idx, err)
				} else {
					entries[idx] = e
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return entries
}

// bundleEntry fetches entry i from its C2SP entry bundle over HTTP.
func bundleEntry(t *testing.T, sl *servedLog, i int64, size uint64) []byte {
	t.Helper()
	bi := uint64(i) / layout.EntryBundleWidth
	code, b := sl.get(t, layout.EntriesPath(bi, layout.PartialTileSize(0, bi, size)))
	if code != http.StatusOK {
		t.Fatalf("bundle %d: %d", bi, code)
	}
	for k := int64(0); len(b) >= 2; k++ {
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			t.Fatalf("bundle %d: truncated", bi)
		}
		if k == i%layout.EntryBundleWidth {
			return b[2 : 2+n]
		}
		b = b[2+n:]
	}
	t.Fatalf("bundle %d has no entry %d", bi, i)
	return nil
}

// httpTiles is a sumdb TileReader of a C2SP tlog-tiles log over HTTP:
// height 8, the path without the height, a missing partial tile read from
// the full one (as C2SP tlog-tiles lets a log drop partials).
type httpTiles struct {
	t  *testing.T
	sl *servedLog
}

func (h *httpTiles) Height() int { return 8 }

func (h *httpTiles) ReadTiles(tiles []sumtlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for k, tl := range tiles {
		if tl.L < 0 || tl.H != 8 {
			return nil, fmt.Errorf("unexpected tile %+v", tl)
		}
		w := uint8(0)
		if tl.W < 256 {
			w = uint8(tl.W)
		}
		code, b := h.sl.get(h.t, layout.TilePath(uint64(tl.L), uint64(tl.N), w))
		if code == http.StatusNotFound && w > 0 {
			code, b = h.sl.get(h.t, layout.TilePath(uint64(tl.L), uint64(tl.N), 0))
		}
		if code != http.StatusOK || len(b) < tl.W*sumtlog.HashSize {
			return nil, fmt.Errorf("tile %+v: %d, %d bytes", tl, code, len(b))
		}
		out[k] = b[:tl.W*sumtlog.HashSize]
	}
	return out, nil
}

func (h *httpTiles) SaveTiles([]sumtlog.Tile, [][]byte) {}
