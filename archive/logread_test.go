package archive_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/archive/keystore"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
)

// TestReadLog: ReadLog of a stopped archive reads every entry of its log
// on each engine (MySQL on a MariaDB server), as the archive's
// LogRecord gave it, also after a key rotation (the checkpoint signed by
// the new key, the old one retired); it writes nothing the archive's
// Open would find changed (the log keys keep their size). A log the
// archive lacks (another engine's directory) is an error and is not
// created.
func TestReadLog(t *testing.T) {
	for _, engine := range []string{archive.LogEngineJournal, archive.LogEnginePOSIX, archive.LogEngineMySQL} {
		t.Run(engine, func(t *testing.T) {
			e := engineEnv(t, engine)
			e.open()
			c := newChain(t, 3, bundletest.Options{})
			e.approve(c)
			for _, b := range c.Bundles[:2] {
				e.accept(c, b)
			}
			next, err := keystore.Generate()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.a.RotateKey(t.Context(), next, 0); err != nil {
				t.Fatal(err)
			}
			e.key = next
			e.accept(c, c.Bundles[2])
			var want [][]byte
			for i := range e.a.LogSize() {
				rec, err := e.a.LogRecord(i)
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, rec)
			}
			if err := e.a.Close(); err != nil {
				t.Fatal(err)
			}
			e.a = nil
			keysBefore := dirSize(t, filepath.Join(e.dir, "logkeys"))

			opts := archive.Options{Dir: e.dir, Key: e.key, LogEngine: engine, LogDSN: e.dsn}
			var got [][]byte
			if err := archive.ReadLog(t.Context(), opts, func(i uint64, rec []byte) error {
				if i != uint64(len(got)) {
					t.Fatalf("entry %d after %d", i, len(got))
				}
				got = append(got, bytes.Clone(rec))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) || len(got) != 4 {
				t.Fatalf("%d entries read, the archive had %d (3 bundles, a key announcement)", len(got), len(want))
			}
			for i := range got {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("entry %d differs", i)
				}
			}
			if n := dirSize(t, filepath.Join(e.dir, "logkeys")); n != keysBefore {
				t.Fatalf("logkeys changed by ReadLog: %d -> %d bytes", keysBefore, n)
			}
			if engine == archive.LogEngineMySQL {
				return
			}
			other := map[string]string{archive.LogEngineJournal: archive.LogEnginePOSIX, archive.LogEnginePOSIX: archive.LogEngineJournal}[engine]
			opts.LogEngine = other
			if err := archive.ReadLog(t.Context(), opts, func(uint64, []byte) error { return nil }); err == nil {
				t.Fatalf("ReadLog on %s of an archive on %s: no error", other, engine)
			}
			for _, d := range []string{"log", "tlog"} {
				if _, err := os.Stat(filepath.Join(e.dir, d)); err == nil && d != map[string]string{archive.LogEngineJournal: "log", archive.LogEnginePOSIX: "tlog"}[engine] {
					t.Fatalf("ReadLog created %s", d)
				}
			}
		})
	}
}

// dirSize is the total size of the files under dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
