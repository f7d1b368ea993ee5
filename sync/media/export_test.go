package media_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/sync/media"
)

// fakeOutbox is an outbox in memory, in id order.
type fakeOutbox struct {
	ids  []string
	data map[string][]byte
}

func newOutbox(entries ...string) *fakeOutbox {
	o := &fakeOutbox{data: map[string][]byte{}}
	for i := 0; i+1 < len(entries); i += 2 {
		o.ids = append(o.ids, entries[i])
		o.data[entries[i]] = []byte(entries[i+1])
	}
	return o
}

func (o *fakeOutbox) Outbox(ctx context.Context, fn func(id string, data []byte) error) error {
	for _, id := range slices.Clone(o.ids) {
		if err := fn(id, o.data[id]); err != nil {
			return err
		}
	}
	return nil
}

func (o *fakeOutbox) DeleteOutbox(ctx context.Context, id string) error {
	o.ids = slices.DeleteFunc(o.ids, func(s string) bool { return s == id })
	delete(o.data, id)
	return nil
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestMediaExportLayout pins the bytes a medium carries: each outbox entry
// unchanged as <id>.bundle.tar, and index.json as written since the
// format's first version.
func TestMediaExportLayout(t *testing.T) {
	dir := t.TempDir()
	ob := newOutbox("000000000003", "first bundle", "000000000007", "second")
	var out bytes.Buffer
	when := time.Date(2026, 3, 1, 12, 30, 0, 0, time.FixedZone("x", 3600))
	idx, err := media.Export(t.Context(), media.ExportOptions{Dir: dir, Device: "site/dev", Outbox: ob, Out: &out, Log: discard(),
		Now: func() time.Time { return when }})
	if err != nil {
		t.Fatal(err)
	}
	h1, h2 := wire.FormatHash(sha256.Sum256([]byte("first bundle"))), wire.FormatHash(sha256.Sum256([]byte("second")))
	want := `{
  "format": "edgeseal-media/v1",
  "device": "site/dev",
  "exported": "2026-03-01T11:30:00Z",
  "bundles": [
    {
      "id": "000000000003",
      "file": "000000000003.bundle.tar",
      "bundle": "` + h1 + `",
      "size": 12,
      "checkpointSize": 3
    },
    {
      "id": "000000000007",
      "file": "000000000007.bundle.tar",
      "bundle": "` + h2 + `",
      "size": 6,
      "checkpointSize": 7
    }
  ]
}
`
	if got, err := os.ReadFile(filepath.Join(dir, media.IndexFile)); err != nil || string(got) != want {
		t.Fatalf("index.json: %v\n%s\nwant\n%s", err, got, want)
	}
	for id, data := range ob.data {
		if got, err := os.ReadFile(filepath.Join(dir, id+media.BundleSuffix)); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: %v %q", id, err, got)
		}
	}
	if len(idx.Bundles) != 2 || idx.Bundles[1].File != "000000000007.bundle.tar" {
		t.Fatalf("index %+v", idx)
	}
	wantOut := fmt.Sprintf("000000000003.bundle.tar  %s  12 bytes\n000000000007.bundle.tar  %s  6 bytes\n2 bundle(s), 18 bytes, exported to %s; the outbox keeps them until their receipts are imported\n", h1, h2, dir)
	if out.String() != wantOut {
		t.Fatalf("output:\n%s\nwant\n%s", out.String(), wantOut)
	}
	if len(ob.ids) != 2 {
		t.Fatal("export deleted outbox entries")
	}

	// An outbox id that is no plain file name is refused, and no index is
	// written.
	dir2 := t.TempDir()
	_, err = media.Export(t.Context(), media.ExportOptions{Dir: dir2, Device: "site/dev", Outbox: newOutbox(".hidden", "x"), Out: io.Discard, Log: discard()})
	if err == nil || !strings.Contains(err.Error(), "is not a file name") {
		t.Fatalf("hidden id: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir2, media.IndexFile)); !os.IsNotExist(err) {
		t.Fatalf("index written after a failed export: %v", err)
	}
}

func TestMediaReplyName(t *testing.T) {
	for _, c := range []struct {
		name     string
		accepted bool
		want     string
	}{
		{"000000000003.bundle.tar", true, "000000000003.bundle.receipt.json"},
		{"000000000003.bundle.tar", false, "000000000003.bundle.rejection.json"},
		{"site1_dev1_000001.tar", true, "site1_dev1_000001.receipt.json"},
	} {
		if got := media.ReplyName(c.name, c.accepted); got != c.want {
			t.Errorf("ReplyName(%q, %v) = %q, want %q", c.name, c.accepted, got, c.want)
		}
	}
}
