package media_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/sync/media"
)

// FuzzMediaRead builds a medium from the input (files, folders and
// symbolic links with names and contents taken from it) and reads it as
// both ends do: nothing panics, only regular *.tar files are listed as
// bundles, no link is ever read, and every read stays within its bound.
//
// The input is a sequence of entries: a kind byte (0 file, 1 folder, 2
// link to a file outside, 3 link to a folder outside), a name length
// byte, the name, a content length byte and the content.
func FuzzMediaRead(f *testing.F) {
	f.Add([]byte("\x00\x05a.tar\x03abc\x00\x0ex.receipt.json\x02{}"))
	f.Add([]byte("\x02\x05b.tar\x00\x03\x08receipts\x00\x01\x05c.tar\x00"))
	f.Add([]byte("\x00\x10y.rejection.json\x04abcd\x02\x10z.rejection.json\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		root := t.TempDir()
		dir, outside := filepath.Join(root, "m"), filepath.Join(root, "outside")
		for _, d := range []string{dir, outside} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		secret := filepath.Join(outside, "secret")
		if err := os.WriteFile(secret, []byte("SECRET"), 0o644); err != nil {
			t.Fatal(err)
		}
		links := map[string]bool{}
		for len(data) >= 2 {
			kind, n := data[0]%4, int(data[1])
			data = data[2:]
			if n > len(data) {
				n = len(data)
			}
			name := strings.NewReplacer("/", "_", "\x00", "_").Replace(string(data[:n]))
			data = data[n:]
			var content []byte
			if len(data) > 0 {
				c := int(data[0])
				data = data[1:]
				if c > len(data) {
					c = len(data)
				}
				content, data = data[:c], data[c:]
			}
			if name == "" || name == "." || name == ".." || len(name) > 200 {
				continue
			}
			p := filepath.Join(dir, name)
			if strings.HasSuffix(name, media.RejectionSuffix) || strings.HasSuffix(name, media.ReceiptSuffix) {
				rd := filepath.Join(dir, media.ReceiptsDir)
				if fi, err := os.Lstat(rd); err == nil && !fi.IsDir() {
					continue // a link or a file: nothing is written through it
				}
				if err := os.MkdirAll(rd, 0o755); err != nil {
					t.Fatal(err)
				}
				p = filepath.Join(rd, name)
			}
			if _, err := os.Lstat(p); err == nil {
				continue
			}
			var err error
			switch kind {
			case 0:
				err = os.WriteFile(p, content, 0o644)
			case 1:
				err = os.Mkdir(p, 0o755)
			case 2:
				err, links[p] = os.Symlink(secret, p), true
			case 3:
				err, links[p] = os.Symlink(outside, p), true
			}
			if err != nil {
				t.Fatal(err)
			}
		}

		const max = 64
		names, err := media.BundleFiles(dir)
		var se *media.SymlinkError
		switch {
		case errors.As(err, &se):
			if !links[se.Path] {
				t.Fatalf("SymlinkError for %s, not a link", se.Path)
			}
		case err != nil:
			t.Fatal(err)
		}
		if !slices.IsSorted(names) {
			t.Fatalf("not sorted: %v", names)
		}
		for _, n := range names {
			p := filepath.Join(dir, n)
			if !strings.HasSuffix(n, ".tar") || links[p] {
				t.Fatalf("listed %q", n)
			}
			raw, err := media.ReadBundle(p, max)
			if err != nil || len(raw) > max {
				t.Fatalf("ReadBundle %s: %d bytes, %v", n, len(raw), err)
			}
		}
		out, err := media.PrepareReplies(dir)
		if err != nil {
			// A link is refused; a file named receipts cannot be made a
			// folder.
			if errors.As(err, &se) && !links[se.Path] {
				t.Fatalf("PrepareReplies: %v", err)
			}
			return
		}
		receipts, rejections, err := media.ListReplies(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range append(receipts, rejections...) {
			if links[p] || strings.HasPrefix(filepath.Base(p), ".") {
				t.Fatalf("listed reply %s", p)
			}
			raw, err := media.ReadReply(p)
			if err != nil || len(raw) > media.MaxReplySize || string(raw) == "SECRET" {
				t.Fatalf("ReadReply %s: %q, %v", p, raw, err)
			}
		}
	})
}
