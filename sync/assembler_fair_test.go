package sync

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"
)

// flood adds the first frame of n distinct bundles of size bytes, each
// cut in frames of chunk bytes, from each of the sources: partials that
// never complete.
func flood(t *testing.T, a *Assembler, sources []string, n, size, chunk int) {
	t.Helper()
	for _, src := range sources {
		for i := range n {
			b := bundleBytes(fmt.Sprintf("%s-%d", src, i), size)
			frames := EncodeChunks(fmt.Sprintf("f%d", i), sha256.Sum256(b), b, chunk)
			if len(frames) < 2 {
				t.Fatalf("%d frames: not a partial", len(frames))
			}
			if _, err := a.Add(src, frames[0]); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestAssemblerFairness: sources that flood the assembler with partial
// bundles (many small ones, or a few large ones, from one source or
// several) cannot make another device's multi-frame bundle, started
// before the flood and finished after it, fail to assemble; the flooding
// sources lose their own partials.
func TestAssemblerFairness(t *testing.T) {
	for _, tc := range []struct {
		name        string
		limits      AssemblerLimits
		sources     []string
		n, size, ch int
	}{
		{"many partials, one source", AssemblerLimits{}, []string{"site1/flood"}, 200, 4000, 1000},
		{"many partials, several sources", AssemblerLimits{}, []string{"site1/f1", "site1/f2", "site1/f3", "site1/f4", "site1/f5", "site1/f6"}, 40, 4000, 1000},
		{"large partials, one source", AssemblerLimits{MaxBytes: 1 << 20, MaxBundle: 256 << 10}, []string{"site1/flood"}, 20, 256 << 10, 32 << 10},
		{"large partials, several sources", AssemblerLimits{MaxBytes: 1 << 20, MaxBundle: 256 << 10}, []string{"site1/f1", "site1/f2", "site1/f3", "site1/f4", "site1/f5"}, 4, 256 << 10, 32 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAssembler(tc.limits)
			b := bundleBytes("victim", 5000)
			d := sha256.Sum256(b)
			frames := EncodeChunks("v1", d, b, 2000)
			if len(frames) != 3 {
				t.Fatalf("%d frames", len(frames))
			}
			if c, err := a.Add("site1/victim", frames[0]); c != nil || err != nil {
				t.Fatalf("first frame: %v %v", c, err)
			}
			flood(t, a, tc.sources, tc.n, tc.size, tc.ch)
			var got *Complete
			for _, f := range frames[1:] {
				c, err := a.Add("site1/victim", f)
				if err != nil {
					t.Fatal(err)
				}
				got = c
			}
			if got == nil || !bytes.Equal(got.Bundle, b) {
				t.Fatalf("the victim's bundle did not assemble after the flood: %+v", a.Stats())
			}
			st := a.Stats()
			lim := tc.limits
			lim.setDefaults()
			if st.Evicted == 0 || st.Partials > lim.MaxPartials || st.Bytes > lim.MaxBytes {
				t.Fatalf("holdings %+v within %+v", st, lim)
			}
			a.mu.Lock()
			defer a.mu.Unlock()
			for src, h := range a.sources {
				if h.partials > lim.MaxSourcePartials || h.bytes > lim.MaxSourceBytes {
					t.Fatalf("source %s holds %+v beyond its bounds", src, *h)
				}
			}
		})
	}
}
