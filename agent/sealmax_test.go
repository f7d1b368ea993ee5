package agent

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/bundle"
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
	var prev *bundle.State
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
		first, err := bundle.ParseRecord(recs[0])
		if err != nil {
			t.Fatal(err)
		}
		if first.Seq != next {
			t.Fatalf("bundle %d starts at %d, want %d", i, first.Seq, next)
		}
		cp, err := bundle.ParseCheckpoint([]byte(prev.Checkpoint))
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
