package media_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/sync/media"
)

// TestMediaReadRefusesLinks: a bundle file or a receipts folder that is a
// symbolic link is a *SymlinkError naming it, before anything is read or
// created; reply files that are links are not listed, and not read.
func TestMediaReadRefusesLinks(t *testing.T) {
	elsewhere := t.TempDir()
	write(t, elsewhere, "b.tar", []byte("bundle"))

	dir := t.TempDir()
	write(t, dir, "a.tar", []byte("bundle"))
	if err := os.Symlink(filepath.Join(elsewhere, "b.tar"), filepath.Join(dir, "b.tar")); err != nil {
		t.Fatal(err)
	}
	_, err := media.BundleFiles(dir)
	var se *media.SymlinkError
	if !errors.As(err, &se) || se.Path != filepath.Join(dir, "b.tar") || se.What != "bundle file" ||
		err.Error() != "bundle file "+filepath.Join(dir, "b.tar")+" is a symbolic link; refusing to follow it (copy the real files onto the media)" {
		t.Fatalf("BundleFiles with a linked bundle: %v", err)
	}
	if _, err := media.ReadBundle(filepath.Join(dir, "b.tar"), 1<<20); !errors.As(err, &se) {
		t.Fatalf("ReadBundle of a link: %v", err)
	}

	dir = t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(dir, media.ReceiptsDir)); err != nil {
		t.Fatal(err)
	}
	if _, err := media.PrepareReplies(dir); !errors.As(err, &se) || se.Path != filepath.Join(dir, media.ReceiptsDir) || se.What != "receipts folder" {
		t.Fatalf("PrepareReplies with a linked receipts folder: %v", err)
	}

	dir = t.TempDir()
	write(t, dir, "a.receipt.json", []byte("{}"))
	if err := os.Symlink(filepath.Join(dir, "a.receipt.json"), filepath.Join(dir, "b.receipt.json")); err != nil {
		t.Fatal(err)
	}
	receipts, rejections, err := media.ListReplies(dir)
	if err != nil || !slices.Equal(receipts, []string{filepath.Join(dir, "a.receipt.json")}) || len(rejections) != 0 {
		t.Fatalf("ListReplies: %v %v %v", receipts, rejections, err)
	}
	if _, err := media.ReadReply(filepath.Join(dir, "b.receipt.json")); !errors.As(err, &se) {
		t.Fatalf("ReadReply of a link: %v", err)
	}
}

// TestMediaReadBounds: files are read within their bounds, and the
// listing of the bundle files is the *.tar regular files, sorted.
func TestMediaReadBounds(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b.tar", "a.bundle.tar", "c.txt", "index.json"} {
		write(t, dir, n, bytes.Repeat([]byte("x"), 100))
	}
	if err := os.Mkdir(filepath.Join(dir, "d.tar"), 0o755); err != nil {
		t.Fatal(err)
	}
	names, err := media.BundleFiles(dir)
	if err != nil || !slices.Equal(names, []string{"a.bundle.tar", "b.tar"}) {
		t.Fatalf("BundleFiles: %v %v", names, err)
	}
	if raw, err := media.ReadBundle(filepath.Join(dir, "b.tar"), 10); err != nil || len(raw) != 10 {
		t.Fatalf("ReadBundle within 10: %d bytes, %v", len(raw), err)
	}
	write(t, dir, "big.receipt.json", bytes.Repeat([]byte("x"), media.MaxReplySize+1))
	if _, err := media.ReadReply(filepath.Join(dir, "big.receipt.json")); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("ReadReply of an oversized file: %v", err)
	}
	write(t, dir, "ok.receipt.json", bytes.Repeat([]byte("x"), media.MaxReplySize))
	if raw, err := media.ReadReply(filepath.Join(dir, "ok.receipt.json")); err != nil || len(raw) != media.MaxReplySize {
		t.Fatalf("ReadReply at the bound: %d bytes, %v", len(raw), err)
	}
	out, err := media.PrepareReplies(dir)
	if err != nil || out != filepath.Join(dir, media.ReceiptsDir) {
		t.Fatalf("PrepareReplies: %q %v", out, err)
	}
	p, err := media.WriteReply(out, "b.tar", false, []byte("answer"))
	if err != nil || p != filepath.Join(out, "b.rejection.json") {
		t.Fatalf("WriteReply: %q %v", p, err)
	}
	if got, err := os.ReadFile(p); err != nil || string(got) != "answer" {
		t.Fatalf("reply written: %q %v", got, err)
	}
}
