package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// fill appends n records of about size bytes each.
func fill(t *testing.T, j *Journal, n, size int) {
	t.Helper()
	ctx := context.Background()
	es := make([]Entry, 100)
	for done := 0; done < n; done += len(es) {
		for i := range es {
			es[i] = Entry{Build: func(seq uint64, prev [32]byte) ([]byte, error) {
				return fmt.Appendf(nil, `{"seq":%d,"prev":"%x","body":"%0*d"}`, seq, prev, size, seq), nil
			}}
		}
		if _, err := j.AppendBatch(ctx, es); err != nil {
			t.Fatal(err)
		}
	}
}

// Badger keeps every page of its mapped files that it touched; the
// trimmer hands them back, and the data reads back the same afterwards.
func TestTrimResidentHandsPagesBack(t *testing.T) {
	j := openT(t, t.TempDir(), func(o *Options) { o.ResidentBytes = -1 })
	defer j.Close()
	fill(t, j, 4000, 4096) // ~16 MiB
	before := residentFileBytes(j.realDir)
	if before < 8<<20 {
		t.Fatalf("resident mapped journal bytes before trimming: %d, want the ~16 MiB just written", before)
	}
	if advised := trimResident(j.realDir); advised < before {
		t.Fatalf("advised %d bytes, less than the %d resident", advised, before)
	}
	after := residentFileBytes(j.realDir)
	t.Logf("resident mapped journal bytes: %d before, %d after trimming", before, after)
	if after > before/4 {
		t.Fatalf("resident after trimming %d, before %d: pages not handed back", after, before)
	}
	if err := j.Scrub(context.Background(), checkEmbedded); err != nil {
		t.Fatalf("scrub after trimming: %v", err)
	}
}

// With the default ResidentBytes the journal trims as it writes: after
// 32 MiB of appends, its resident mapped bytes stay near the bound.
func TestTrimResidentBoundsGrowth(t *testing.T) {
	j := openT(t, t.TempDir())
	defer j.Close()
	fill(t, j, 8000, 4096)
	if j.trimmed.Load() < 3 {
		t.Fatalf("%d trimming passes for 32 MiB, want one per ~8 MiB", j.trimmed.Load())
	}
	// A pass may still be running: measure once the count is stable.
	for n := int64(-1); n != j.trimmed.Load(); {
		n = j.trimmed.Load()
		time.Sleep(200 * time.Millisecond)
	}
	got := residentFileBytes(j.realDir)
	t.Logf("resident mapped journal bytes after 32 MiB of appends: %d (passes %d)", got, j.trimmed.Load())
	if got > 3*defaultResident {
		t.Fatalf("resident mapped journal bytes %d, want under %d", got, 3*defaultResident)
	}
}
