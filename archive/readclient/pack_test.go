package readclient_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/edgeseal/edgeseal/archive/readclient"
)

type tarEntry struct {
	name string
	typ  byte
	data string
	link string
}

func makeTar(t testing.TB, es ...tarEntry) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range es {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: e.typ, Size: int64(len(e.data)), Mode: 0o644, Linkname: e.link}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestReadPackRefuses: a pack stream with a link, a device, a path that
// escapes (absolute, "..", a backslash), a file given twice or nothing is
// refused with a *PackError naming the entry; a plain one is read.
func TestReadPackRefuses(t *testing.T) {
	good := tarEntry{name: "data/pack.json", typ: tar.TypeReg, data: "{}"}
	p, err := readclient.ReadPack(bytes.NewReader(makeTar(t, tarEntry{name: "data/", typ: tar.TypeDir}, good, tarEntry{name: "VERIFY.md", typ: tar.TypeReg, data: "x"})))
	if err != nil || len(p.Files) != 2 || string(p.Files["data/pack.json"]) != "{}" {
		t.Fatalf("plain pack: %v %v", p, err)
	}
	for name, es := range map[string][]tarEntry{
		"symlink":   {good, {name: "data/x", typ: tar.TypeSymlink, link: "/etc/passwd"}},
		"hardlink":  {good, {name: "data/x", typ: tar.TypeLink, link: "data/pack.json"}},
		"device":    {{name: "data/x", typ: tar.TypeChar}},
		"fifo":      {{name: "data/x", typ: tar.TypeFifo}},
		"absolute":  {{name: "/tmp/x", typ: tar.TypeReg, data: "x"}},
		"dotdot":    {{name: "data/../../x", typ: tar.TypeReg, data: "x"}},
		"leading":   {{name: "../x", typ: tar.TypeReg, data: "x"}},
		"backslash": {{name: `data\..\x`, typ: tar.TypeReg, data: "x"}},
		"dot":       {{name: "./data/x", typ: tar.TypeReg, data: "x"}},
		"dirdotdot": {{name: "../", typ: tar.TypeDir}},
		"twice":     {good, good},
		"empty":     {},
	} {
		_, err := readclient.ReadPack(bytes.NewReader(makeTar(t, es...)))
		var pe *readclient.PackError
		if !errors.As(err, &pe) {
			t.Errorf("%s: %v, want a *PackError", name, err)
		}
	}
	// A truncated stream is an error, not a shorter pack.
	raw := makeTar(t, tarEntry{name: "data/a", typ: tar.TypeReg, data: strings.Repeat("a", 4096)})
	if _, err := readclient.ReadPack(bytes.NewReader(raw[:1024])); err == nil {
		t.Error("a truncated pack was read")
	}
}

// FuzzReadPack: a pack stream never panics the reader, and what it
// accepts holds only safe relative paths within the bounds.
func FuzzReadPack(f *testing.F) {
	f.Add(makeTar(f, tarEntry{name: "data/pack.json", typ: tar.TypeReg, data: "{}"}))
	f.Add(makeTar(f, tarEntry{name: "data/x", typ: tar.TypeSymlink, link: "/etc"}))
	f.Add(makeTar(f, tarEntry{name: "../x", typ: tar.TypeReg, data: "x"}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := readclient.ReadPack(bytes.NewReader(raw))
		if err != nil {
			return
		}
		if len(p.Files) > readclient.MaxPackFiles || p.Bytes() > readclient.MaxPackBytes {
			t.Fatalf("pack of %d files, %d bytes", len(p.Files), p.Bytes())
		}
		for name := range p.Files {
			if strings.HasPrefix(name, "/") || strings.Contains(name, `\`) {
				t.Fatalf("path %q accepted", name)
			}
			for _, el := range strings.Split(name, "/") {
				if el == "" || el == "." || el == ".." {
					t.Fatalf("path %q accepted", name)
				}
			}
		}
	})
}
