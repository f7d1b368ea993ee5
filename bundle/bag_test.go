package bundle_test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

func TestWriteDeterministic(t *testing.T) {
	c := bundletest.MustChain(t, 1, bundletest.Options{})
	b := c.Bundles[0]
	one, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	two, _ := bundletest.Clone(b).Bytes()
	if !bytes.Equal(one, two) {
		t.Fatal("two writes differ")
	}
	d, err := b.Digest()
	if err != nil || d != sha256.Sum256(one) {
		t.Fatalf("digest %x: %v", d, err)
	}
	tr := tar.NewReader(bytes.NewReader(one))
	prev := ""
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Name <= prev || h.Mode != 0o644 || h.ModTime.Unix() != 0 || h.Uname != "" || h.Gname != "" || h.Uid != 0 {
			t.Errorf("entry %+v", h)
		}
		prev = h.Name
	}
	name, err := b.FileName()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^site1_dev1_0{19}8_[0-9a-f]{16}\.tar$`).MatchString(name) {
		t.Errorf("file name %q", name)
	}
}

// rawTar writes entries as given, for hostile archives.
func rawTar(t *testing.T, base *bundle.Bundle, extra ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range base.Names() {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(base.Files[n])), ModTime: time.Unix(1, 0)})
		_, _ = tw.Write(base.Files[n])
	}
	for _, h := range extra {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			_, _ = tw.Write(make([]byte, h.Size))
		}
	}
	_ = tw.Close()
	return buf.Bytes()
}

func TestReadRejects(t *testing.T) {
	c := bundletest.MustChain(t, 1, bundletest.Options{})
	b := c.Bundles[0]
	// Same files, other tar encoding (mtime now, no USTAR format pinned):
	// refused, the bundle digest would not be the file's.
	if _, err := bundle.Read(bytes.NewReader(rawTar(t, b)), bundle.DefaultLimits); err == nil {
		t.Fatal("non-canonical tar accepted")
	}
	raw0, _ := b.Bytes()
	if _, err := bundle.Read(bytes.NewReader(append(raw0, make([]byte, 512)...)), bundle.DefaultLimits); err == nil {
		t.Error("trailing zero block accepted")
	}
	reg := func(name string, size int64) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size}
	}
	cases := map[string][]byte{
		"traversal":     rawTar(t, b, reg("../etc/passwd", 1)),
		"absolute":      rawTar(t, b, reg("/etc/passwd", 1)),
		"dotdot inside": rawTar(t, b, reg("data/payloads/../../x", 1)),
		"unknown":       rawTar(t, b, reg("data/other.txt", 1)),
		"duplicate":     rawTar(t, b, reg(bundle.PathSeal, 3)),
		"symlink":       rawTar(t, b, &tar.Header{Typeflag: tar.TypeSymlink, Name: bundle.PathEKCert, Linkname: "/etc/shadow"}),
		"hardlink":      rawTar(t, b, &tar.Header{Typeflag: tar.TypeLink, Name: bundle.PathEKCert, Linkname: bundle.PathSeal}),
		"directory":     rawTar(t, b, &tar.Header{Typeflag: tar.TypeDir, Name: "data/payloads/", Mode: 0o755}),
		"upper hex":     rawTar(t, b, reg("data/payloads/"+string(bytes.Repeat([]byte("A"), 64)), 1)),
		"garbage":       []byte("this is not a tar file at all, not even close........"),
	}
	missing := bundletest.Clone(b)
	delete(missing.Files, bundle.PathQuoteSig)
	cases["missing"], _ = missing.Bytes()
	for name, raw := range cases {
		if _, err := bundle.Read(bytes.NewReader(raw), bundle.DefaultLimits); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	raw, _ := b.Bytes()
	var pe *bundle.PathError
	if _, err := bundle.Read(bytes.NewReader(cases["traversal"]), bundle.DefaultLimits); !errors.As(err, &pe) {
		t.Errorf("traversal: want PathError, got %v", err)
	}
	if _, err := bundle.Read(bytes.NewReader(raw), bundle.Limits{File: 100, Total: 1 << 20, Files: 100}); !errors.Is(err, wire.ErrTooLarge) {
		t.Errorf("file limit: %v", err)
	}
	if _, err := bundle.Read(bytes.NewReader(raw), bundle.Limits{File: 1 << 20, Total: 1000, Files: 100}); !errors.Is(err, wire.ErrTooLarge) {
		t.Errorf("total limit: %v", err)
	}
	if _, err := bundle.Read(bytes.NewReader(raw), bundle.Limits{File: 1 << 20, Total: 1 << 20, Files: 3}); !errors.Is(err, wire.ErrTooLarge) {
		t.Errorf("count limit: %v", err)
	}
	if _, err := bundle.Read(bytes.NewReader(raw[:len(raw)/2]), bundle.DefaultLimits); err == nil {
		t.Error("truncated archive accepted")
	}
}
