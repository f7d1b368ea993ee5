package archived

import (
	"bytes"
	"crypto/sha256"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/internal/mariadbtest"
	"github.com/edgeseal/edgeseal/internal/metrics"
	"github.com/edgeseal/edgeseal/sync"
)

// TestFrameStoreMetrics: with archive_state.engine mysql, the daemon's
// frame store (openFrames) reports on /metrics the bundles it joined,
// the frames it refused, and the frames it failed to keep (the database
// gone) and those the subscriber gave up on; with badger there is no frame store and no frame metrics.
func TestFrameStoreMetrics(t *testing.T) {
	dir := t.TempDir()
	dsn := mariadbtest.Start(t).Database(t)
	if err := os.WriteFile(filepath.Join(dir, "state.dsn"), []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte("archive_state:\n  engine: mysql\n  mysql_dsn_file: " + filepath.Join(dir, "state.dsn") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	fs, closeFrames, err := openFrames(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var lost atomic.Uint64 // the subscriber's FramesLost
	m := metrics.NewArchive()
	m.Watch(metrics.ArchiveSources{Stats: func() metrics.ArchiveStats { return metrics.ArchiveStats{} }, Frames: frameStats(fs, lost.Load)})
	scrape := func() map[string]float64 {
		rec := httptest.NewRecorder()
		m.Handler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		got := map[string]float64{}
		for l := range strings.Lines(rec.Body.String()) {
			name, v, ok := strings.Cut(strings.TrimSpace(l), " ")
			if !ok || strings.HasPrefix(name, "#") || !strings.HasPrefix(name, "edgeseal_archive_frames_") {
				continue
			}
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metrics line %q", l)
			}
			got[name] = f
		}
		return got
	}
	if got := scrape(); len(got) != 8 || got["edgeseal_archive_frames_completed_total"] != 0 {
		t.Fatalf("frame metrics before any frame: %v", got)
	}
	bundle := func(seed byte) [][]byte {
		b := bytes.Repeat([]byte{seed}, 3*sync.MinMessage)
		frames := sync.EncodeChunks("000000000001", sha256.Sum256(b), b, sync.MinMessage)
		if len(frames) < 2 {
			t.Fatalf("%d frames, want several", len(frames))
		}
		return frames
	}
	for i, f := range bundle('a') {
		c, err := fs.Add(t.Context(), "site1/dev1", f)
		if err != nil || (c != nil) != (i == len(bundle('a'))-1) {
			t.Fatalf("frame %d: %v %v", i, c, err)
		}
	}
	if _, err := fs.Add(t.Context(), "site1/dev1", []byte("not a frame")); err == nil || !sync.IsFrameRefusal(err) {
		t.Fatalf("garbage frame: %v", err)
	}
	got := scrape()
	if got["edgeseal_archive_frames_completed_total"] != 1 || got["edgeseal_archive_frames_refused_total"] != 1 || got["edgeseal_archive_frames_failed_total"] != 0 {
		t.Fatalf("after one bundle and one bad frame: %v", got)
	}
	// The database gone (the pool closed): the frame is not kept, and
	// counted as such, not as refused.
	if err := closeFrames(); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Add(t.Context(), "site1/dev2", bundle('b')[0]); err == nil || sync.IsFrameRefusal(err) {
		t.Fatalf("frame with the database gone: %v", err)
	}
	lost.Add(1) // the subscriber gave up on it
	got = scrape()
	if got["edgeseal_archive_frames_failed_total"] != 1 || got["edgeseal_archive_frames_refused_total"] != 1 || got["edgeseal_archive_frames_lost_total"] != 1 {
		t.Fatalf("after a frame not kept: %v", got)
	}

	none, _, err := openFrames(t.Context(), config.Default())
	if err != nil || none != nil || frameStats(none, lost.Load) != nil {
		t.Fatalf("badger: frame store %v %v", none, err)
	}
}
