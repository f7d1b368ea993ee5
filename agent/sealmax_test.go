package agent

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/verify"
)

// A backlog is sealed in bundles bounded by SealMaxBytes: each bundle
// verifies and extends the one before, every record is in exactly one
// bundle, and the last checkpoint covers the whole journal.
func TestSealBoundedBundles(t *testing.T) {
	const max = 4 << 10
	dir := t.TempDir()
	r := openRig(t, dir, "simulator:"+filepath.Join(dir, "sim"), func(o *Options) { o.SealMaxBytes = max })
	tr := r.trust()
	r.export(40, "backlog")
	before := r.j.Size()

	n, err := r.core.SealAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var raws [][]byte // the outbox, in checkpoint order
	if err := r.j.Outbox(context.Background(), func(_ string, data []byte) error {
		raws = append(raws, data)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n < 4 || len(raws) != n {
		t.Fatalf("%d records (about 1 KiB each with payloads) sealed in %d bundles (outbox: %d) under a %d-byte bound", before, n, len(raws), max)
	}
	t.Logf("%d records sealed in %d bundles", before, n)
	var prev *verify.State
	var next uint64
	for i, raw := range raws {
		b, err := bundle.Read(bytes.NewReader(raw), bundle.DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		prev = mustVerify(t, b, tr, prev)
		recs, err := b.Records()
		if err != nil {
			t.Fatal(err)
		}
		first, err := custody.ParseRecord(recs[0])
		if err != nil {
			t.Fatal(err)
		}
		if first.Seq != next {
			t.Fatalf("bundle %d starts at %d, want %d", i, first.Seq, next)
		}
		cp, err := merkle.ParseCheckpoint([]byte(prev.Checkpoint))
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(recs)) != cp.Size-next {
			t.Fatalf("bundle %d: %d records over [%d, %d)", i, len(recs), next, cp.Size)
		}
		next = cp.Size
		var n int64
		for _, rec := range recs {
			n += int64(len(rec))
		}
		for name, p := range b.Files {
			if strings.HasPrefix(name, bundle.PayloadDir) {
				n += int64(len(p))
			}
		}
		if len(recs) > 1 && n > max {
			t.Fatalf("bundle %d holds %d bytes of records and payloads, over the %d bound", i, n, max)
		}
	}
	// Every seal journals its own seal record; the last one is pending
	// bookkeeping, not a reason for another bundle.
	if next < before {
		t.Fatalf("sealed up to %d, journal had %d records before", next, before)
	}
	if again, err := r.core.Seal(context.Background()); err != nil || again != nil {
		t.Fatalf("seal after SealAll = %v, %v; want nothing pending", again, err)
	}
}

// A seal takes records and payloads from the seal cache while it has
// them and from the journal after (a partly filled cache): the bundle
// verifies, holds every record in order and every payload as journaled,
// and the cache is empty after the seal.
func TestSealCacheAndJournalAgree(t *testing.T) {
	dir := t.TempDir()
	r := openRig(t, dir, "simulator:"+filepath.Join(dir, "sim"))
	tr := r.trust()
	var prev *verify.State
	for round, max := range []int64{DefaultSealMaxBytes, 3 << 10, 0} {
		r.core.cache.max = max
		rcs := r.export(30, fmt.Sprintf("c%d", round))
		kept := len(r.core.cache.recs)
		switch {
		case max == DefaultSealMaxBytes && kept < 30:
			t.Fatalf("round %d: cache kept %d of 30 records under its bound", round, kept)
		case max == 0 && kept > 1: // the last seal's record, kept before
			t.Fatalf("round %d: cache kept %d records with no room", round, kept)
		case max == 3<<10 && (kept == 0 || kept >= 30):
			t.Fatalf("round %d: cache kept %d records, want a part", round, kept)
		}
		res, b := r.seal()
		prev = mustVerify(t, b, tr, prev)
		// Only the seal's own record (journaled after the checkpoint) may
		// be kept.
		for seq := range r.core.cache.recs {
			if seq < res.Checkpoint.Size {
				t.Fatalf("round %d: sealed record %d still cached", round, seq)
			}
		}
		recs, err := b.Records()
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(recs)) != res.Checkpoint.Size-res.FirstSeq {
			t.Fatalf("round %d: %d records for [%d, %d)", round, len(recs), res.FirstSeq, res.Checkpoint.Size)
		}
		for i, rec := range recs {
			want, err := r.j.Record(res.FirstSeq + uint64(i))
			if err != nil || !bytes.Equal(rec, want) {
				t.Fatalf("round %d: record %d differs from the journal (%v)", round, res.FirstSeq+uint64(i), err)
			}
			d, ok, err := custody.RecordPayload(rec)
			if err != nil || !ok {
				continue
			}
			data, err := r.j.Payload(d)
			if err != nil || !bytes.Equal(b.Files[bundle.PayloadPath(d)], data) {
				t.Fatalf("round %d: payload of record %d differs from the journal (%v)", round, res.FirstSeq+uint64(i), err)
			}
		}
		if last := rcs[len(rcs)-1].Seq; last >= res.Checkpoint.Size {
			t.Fatalf("round %d: export %d not sealed (checkpoint %d)", round, last, res.Checkpoint.Size)
		}
	}
}

// TestSealCacheGap: records the cache refused for room, between records it
// kept, are read from the journal; the bundle holds all of them, in order,
// byte for byte as journaled.
func TestSealCacheGap(t *testing.T) {
	dir := t.TempDir()
	r := openRig(t, dir, "simulator:"+filepath.Join(dir, "sim"))
	tr := r.trust()
	r.export(10, "a")
	r.core.cache.max = 0
	refused := r.export(10, "b") // no room
	r.core.cache.max = DefaultSealMaxBytes
	rcs := r.export(10, "c")
	for _, rc := range refused {
		if r.core.cache.has(rc.Seq) {
			t.Fatalf("record %d kept with no room", rc.Seq)
		}
	}
	for _, rc := range rcs {
		if !r.core.cache.has(rc.Seq) {
			t.Fatalf("record %d not kept", rc.Seq)
		}
	}
	res, b := r.seal()
	mustVerify(t, b, tr, nil)
	if last := rcs[len(rcs)-1].Seq; last >= res.Checkpoint.Size {
		t.Fatalf("export %d not sealed (checkpoint %d)", last, res.Checkpoint.Size)
	}
	recs, err := b.Records()
	if err != nil {
		t.Fatal(err)
	}
	for i, rec := range recs {
		want, err := r.j.Record(res.FirstSeq + uint64(i))
		if err != nil || !bytes.Equal(rec, want) {
			t.Fatalf("record %d differs from the journal (%v)", res.FirstSeq+uint64(i), err)
		}
	}
}

// TestSealStopsBeforeComingRecord: a record journaled while the cache runs
// but not yet added to it (its Append has not returned) ends the bundle
// when records come before it; when it is first, it is read from the
// journal, so sealing never stalls on it.
func TestSealStopsBeforeComingRecord(t *testing.T) {
	dir := t.TempDir()
	r := openRig(t, dir, "simulator:"+filepath.Join(dir, "sim"))
	tr := r.trust()
	rcs := r.export(5, "a")
	// Journaled behind the cache's back, as an append in progress is.
	a, err := r.j.Append(t.Context(), r.core.entry(custody.TypeExportRejected, custody.Actor{Kind: "principal", ID: "t"},
		custody.RejectedBody{ExportID: "x", Reason: "test"}))
	if err != nil {
		t.Fatal(err)
	}
	r.export(5, "b")
	res, b := r.seal()
	prev := mustVerify(t, b, tr, nil)
	if res.Checkpoint.Size != a.Seq || rcs[4].Seq >= res.Checkpoint.Size {
		t.Fatalf("first seal ends at %d, want before the coming record %d", res.Checkpoint.Size, a.Seq)
	}
	res, b = r.seal()
	mustVerify(t, b, tr, prev)
	if res.FirstSeq != a.Seq || res.Checkpoint.Size <= a.Seq+5 {
		t.Fatalf("second seal [%d, %d), want from %d past the 5 exports after it", res.FirstSeq, res.Checkpoint.Size, a.Seq)
	}
	recs, err := b.Records()
	if err != nil {
		t.Fatal(err)
	}
	want, err := r.j.Record(a.Seq)
	if err != nil || !bytes.Equal(recs[0], want) {
		t.Fatalf("the coming record is not the journal's (%v)", err)
	}
}
