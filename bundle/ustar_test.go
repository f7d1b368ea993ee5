package bundle

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

// tarHeader is the header archive/tar writes for a file of Write.
func tarHeader(t testing.TB, name string, size int64) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: epoch, Format: tar.FormatUSTAR}); err != nil {
		t.Fatal(err)
	}
	if err := tw.Flush(); err != nil && size == 0 {
		t.Fatal(err)
	}
	return b.Bytes()[:tarBlock]
}

func TestUSTARHeaderMatchesTar(t *testing.T) {
	names := []string{"a", PathSeal, PathRecords, PayloadPath([32]byte{1, 2, 3}), strings.Repeat("n", 100), "data/payloads/x y"}
	for _, name := range names {
		for _, size := range []int64{0, 1, 511, 512, 513, 1 << 20, 256 << 20, 1<<33 - 1} {
			var h [tarBlock]byte
			if !fastUSTAR(name, size) {
				t.Fatalf("fastUSTAR(%q, %d) false", name, size)
			}
			ustarHeader(&h, name, size)
			if want := tarHeader(t, name, size); !bytes.Equal(h[:], want) {
				t.Fatalf("%q size %d:\n got %q\nwant %q", name, size, h[:], want)
			}
		}
	}
	for _, c := range []struct {
		name string
		size int64
	}{{"", 1}, {strings.Repeat("n", 101), 1}, {"a\x00b", 1}, {"é", 1}, {"a", 1 << 33}, {"a", -1}} {
		if fastUSTAR(c.name, c.size) {
			t.Errorf("fastUSTAR(%q, %d) true", c.name, c.size)
		}
	}
}

// Write gives what archive/tar gives, for bundles the formatter covers and
// (through the fallback) for those it does not.
func TestWriteMatchesTar(t *testing.T) {
	for _, files := range []map[string][]byte{
		{PathBagIt: []byte("x"), PathSeal: bytes.Repeat([]byte("s"), 700), PayloadPath([32]byte{9}): nil},
		{PathBagIt: []byte("x"), "data/payloads/" + strings.Repeat("d", 90): []byte("long name: archive/tar splits it")},
	} {
		b := &Bundle{Files: files}
		var fast, ref bytes.Buffer
		if err := writeNames(&fast, b, b.Names()); err != nil {
			t.Fatal(err)
		}
		if err := writeNamesTar(&ref, b, b.Names()); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fast.Bytes(), ref.Bytes()) {
			t.Fatalf("Write differs from archive/tar for %d files (%d vs %d bytes)", len(files), fast.Len(), ref.Len())
		}
	}
}

func FuzzUSTARHeader(f *testing.F) {
	f.Add("data/payloads/00", int64(3))
	f.Add(strings.Repeat("z", 100), int64(1<<30))
	f.Fuzz(func(t *testing.T, name string, size int64) {
		if !fastUSTAR(name, size) {
			return
		}
		var h [tarBlock]byte
		ustarHeader(&h, name, size)
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: epoch, Format: tar.FormatUSTAR})
		if err != nil {
			// archive/tar refuses it: then Write must not produce it either.
			t.Fatalf("archive/tar refuses %q size %d (%v) but fastUSTAR takes it", name, size, err)
		}
		if !bytes.Equal(h[:], b.Bytes()[:tarBlock]) {
			t.Fatalf("%s", fmt.Sprintf("%q size %d differs", name, size))
		}
	})
}

// BenchmarkWriteNames: Write of a bundle of 1000 small payloads (the
// archive re-encodes every bundle it reads to check it is canonical).
func BenchmarkWriteNames(b *testing.B) {
	files := map[string][]byte{PathBagIt: []byte("x")}
	for i := range 1000 {
		files[PayloadPath([32]byte{byte(i), byte(i >> 8)})] = bytes.Repeat([]byte{'p'}, 512)
	}
	bd := &Bundle{Files: files}
	names := bd.Names()
	for _, c := range []struct {
		name  string
		write func(io.Writer, *Bundle, []string) error
	}{{"direct", writeNames}, {"archive-tar", writeNamesTar}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.write(io.Discard, bd, names); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
