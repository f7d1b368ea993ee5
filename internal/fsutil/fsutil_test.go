package fsutil

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	for _, want := range []string{"one", "two, longer"} {
		if err := WriteFileAtomic(p, []byte(want), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temp files left behind: %v", ents)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "x"), nil, 0o600); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

func TestReadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(path, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		max  int64
		want string
	}{{10, "0123456789"}, {20, "0123456789"}, {4, "01234"}} {
		data, d, err := ReadConfig(path, c.max)
		if err != nil || string(data) != c.want || d != dir {
			t.Fatalf("max %d: %q in %q (%v), want %q in %q", c.max, data, d, err, c.want, dir)
		}
	}
	if _, _, err := ReadConfig(filepath.Join(dir, "missing.yaml"), 10); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestWriteNewFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "obj")
	write := func(s string) func(io.Writer) error {
		return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
	}
	if err := WriteNewFile(p, 0o444, write("first")); err != nil {
		t.Fatal(err)
	}
	if err := WriteNewFile(p, 0o444, write("second")); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second write: %v, want fs.ErrExist", err)
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "first" {
		t.Fatalf("read %q, %v; want the first bytes", got, err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o444 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	failed := errors.New("no bytes")
	if err := WriteNewFile(filepath.Join(dir, "other"), 0o444, func(io.Writer) error { return failed }); !errors.Is(err, failed) {
		t.Fatalf("failing write: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("files left behind: %v", ents)
	}
}

// TestWriteFileAtomicOntoDirectory: a directory at the path is refused
// naming the path as a directory (not rename's "file exists"), and is left
// as it was with no temp file in its parent.
func TestWriteFileAtomicOntoDirectory(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	err := WriteFileAtomic(p, []byte("x"), 0o600)
	if err == nil || !errors.Is(err, syscall.EISDIR) || !strings.Contains(err.Error(), p+": is a directory") {
		t.Fatalf("err %v, want %s: is a directory", err, p)
	}
	if fi, err := os.Lstat(p); err != nil || !fi.IsDir() {
		t.Fatalf("the directory changed: %v %v", fi, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
}

// TestReadConfigDirectory: a directory given as a config file is named
// once in the error ("read DIR: is a directory").
func TestReadConfigDirectory(t *testing.T) {
	dir := t.TempDir()
	_, _, err := ReadConfig(dir, 1024)
	if err == nil || err.Error() != "read "+dir+": is a directory" {
		t.Fatalf("err %v, want read %s: is a directory", err, dir)
	}
}

// TestReadRegular: a regular file (and a link to one) is read, bounded;
// a FIFO is refused at once, not waited on; a directory is refused
// (EISDIR, as os.ReadFile says it).
func TestReadRegular(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(p, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"f", "link"} {
		if b, err := ReadRegular(filepath.Join(dir, name), 5); err != nil || string(b) != "hello" {
			t.Fatalf("%s: %q, %v", name, b, err)
		}
	}
	if _, err := ReadRegular(p, 4); err == nil || !strings.Contains(err.Error(), "larger than 4 bytes") {
		t.Fatalf("over the limit: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	if _, err := ReadRegular(fifo, 5); err == nil || !strings.Contains(err.Error(), fifo+": not a regular file") {
		t.Fatalf("%s: %v, want not a regular file", fifo, err)
	}
	if _, err := ReadRegular(dir, 5); !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("%s: %v, want is a directory", dir, err)
	}
}
