package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/bundletest"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Reader refusals (Case.Refusal of check bundle.read).
const (
	RefusalMissing      = "missing"
	RefusalUnknownPath  = "unknown path"
	RefusalNotRegular   = "not a regular file"
	RefusalDuplicate    = "duplicate"
	RefusalTooLarge     = "too large"
	RefusalNotCanonical = "not canonical tar"
	RefusalBadTar       = "bad tar"
)

// Refusal names why bundle.Read refused a bundle, as verdicts.json does.
func Refusal(err error) string {
	var pe *bundle.PathError
	var fe *wire.FormatError
	switch {
	case errors.As(err, &pe):
		return pe.Reason
	case errors.Is(err, wire.ErrTooLarge):
		return RefusalTooLarge
	case errors.As(err, &fe) && fe.Format == "tar" && strings.HasPrefix(fe.Reason, "not the canonical"):
		return RefusalNotCanonical
	case errors.As(err, &fe) && fe.Format == "tar":
		return RefusalBadTar
	}
	return "other: " + err.Error()
}

// entry is one tar entry of a hand-made archive.
type entry struct {
	hdr  tar.Header
	data []byte
}

// entries are the files of b as Write lays them out (sorted, regular,
// mode 0644, mtime 0, USTAR).
func entries(b *bundle.Bundle) []entry {
	var out []entry
	for _, n := range b.Names() {
		out = append(out, entry{hdr: regular(n, len(b.Files[n])), data: b.Files[n]})
	}
	return out
}

func regular(name string, size int) tar.Header {
	return tar.Header{Name: name, Mode: 0o644, Size: int64(size), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}
}

// writeTar writes the entries with archive/tar, in the order given.
func writeTar(es []entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			return nil, fmt.Errorf("%s: %w", h.Name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// insert adds e to es keeping the entries sorted by name.
func insert(es []entry, e entry) []entry {
	i, _ := slices.BinarySearchFunc(es, e.hdr.Name, func(x entry, n string) int { return strings.Compare(x.hdr.Name, n) })
	return slices.Insert(es, i, e)
}

// tarCases are bundles the reader must refuse before any check runs: the
// first good bundle of dev1 changed at the tar or file-set level.
func (c *corpus) tarCases(dev1 *bundletest.Chain) error {
	good := dev1.Bundles[0]
	type tarCase struct {
		name, desc, refusal string
		make                func() ([]byte, error)
	}
	withFiles := func(fn func(b *bundle.Bundle)) func() ([]byte, error) {
		return func() ([]byte, error) {
			b := bundletest.Clone(good)
			fn(b)
			if err := b.UpdateManifests(); err != nil {
				return nil, err
			}
			return b.Bytes()
		}
	}
	withEntries := func(fn func([]entry) []entry) func() ([]byte, error) {
		return func() ([]byte, error) { return writeTar(fn(entries(good))) }
	}
	cases := []tarCase{
		{"file.missing", "keys/ak.pem removed, manifests recomputed", RefusalMissing,
			withFiles(func(b *bundle.Bundle) { delete(b.Files, bundle.PathAKPEM) })},
		{"file.extra", "a file notes.txt at the top level added, manifests recomputed", RefusalUnknownPath,
			withFiles(func(b *bundle.Bundle) { b.Files["notes.txt"] = []byte("added after sealing\n") })},
		{"entry.symlink", "a symbolic link keys/ek.crt -> /etc/shadow added", RefusalNotRegular,
			withEntries(func(es []entry) []entry {
				h := tar.Header{Name: bundle.PathEKCert, Linkname: "/etc/shadow", Mode: 0o777, ModTime: time.Unix(0, 0), Typeflag: tar.TypeSymlink, Format: tar.FormatUSTAR}
				return insert(es, entry{hdr: h})
			})},
		{"entry.hardlink", "a hard link keys/ek.crt -> keys/ek.pub added", RefusalNotRegular,
			withEntries(func(es []entry) []entry {
				h := tar.Header{Name: bundle.PathEKCert, Linkname: bundle.PathEKPub, Mode: 0o644, ModTime: time.Unix(0, 0), Typeflag: tar.TypeLink, Format: tar.FormatUSTAR}
				return insert(es, entry{hdr: h})
			})},
		{"entry.directory", "a directory entry data/ added", RefusalNotRegular,
			withEntries(func(es []entry) []entry {
				h := tar.Header{Name: "data/", Mode: 0o755, ModTime: time.Unix(0, 0), Typeflag: tar.TypeDir, Format: tar.FormatUSTAR}
				return insert(es, entry{hdr: h})
			})},
		{"entry.traversal", "a regular file ../../etc/cron.d/edgeseal added (path traversal)", RefusalUnknownPath,
			withEntries(func(es []entry) []entry {
				data := []byte("* * * * * root true\n")
				return append([]entry{{hdr: regular("../../etc/cron.d/edgeseal", len(data)), data: data}}, es...)
			})},
		{"entry.absolute", "a regular file with the absolute path /etc/passwd added", RefusalUnknownPath,
			withEntries(func(es []entry) []entry {
				data := []byte("root::0:0::/:/bin/sh\n")
				return append([]entry{{hdr: regular("/etc/passwd", len(data)), data: data}}, es...)
			})},
		{"entry.payload-traversal", "a payload entry data/payloads/../../seal.dsse.json added", RefusalUnknownPath,
			withEntries(func(es []entry) []entry {
				data := []byte("{}")
				return insert(es, entry{hdr: regular("data/payloads/../../seal.dsse.json", len(data)), data: data})
			})},
		{"entry.duplicate", "keys/ak.pem twice, the second with other bytes", RefusalDuplicate,
			withEntries(func(es []entry) []entry {
				data := []byte("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n")
				i := slices.IndexFunc(es, func(e entry) bool { return e.hdr.Name == bundle.PathAKPEM })
				return slices.Insert(es, i+1, entry{hdr: regular(bundle.PathAKPEM, len(data)), data: data})
			})},
		{"tar.gnu", "the same files written in GNU tar format instead of USTAR", RefusalNotCanonical,
			withEntries(func(es []entry) []entry {
				for i := range es {
					es[i].hdr.Format = tar.FormatGNU
				}
				return es
			})},
		{"tar.pax", "the same files with a PAX extended header on one entry", RefusalNotCanonical,
			withEntries(func(es []entry) []entry {
				es[0].hdr.Format = tar.FormatPAX
				es[0].hdr.PAXRecords = map[string]string{"comment": "added"}
				return es
			})},
		{"tar.mode", "one entry with mode 0755 instead of 0644", RefusalNotCanonical,
			withEntries(func(es []entry) []entry { es[0].hdr.Mode = 0o755; return es })},
		{"tar.unsorted", "the entries in reverse order", RefusalNotCanonical,
			withEntries(func(es []entry) []entry { slices.Reverse(es); return es })},
		{"tar.trailing", "512 bytes after the two end blocks", RefusalNotCanonical,
			func() ([]byte, error) {
				raw, err := good.Bytes()
				return append(raw, make([]byte, 512)...), err
			}},
		{"tar.truncated", "the archive cut 10 bytes into the first entry's data", RefusalBadTar,
			func() ([]byte, error) {
				raw, err := good.Bytes()
				return raw[:512+10], err
			}},
		{"entry.oversize", "the first entry's header claims 1 GiB (above the 256 MiB file limit), checksum recomputed", RefusalTooLarge,
			func() ([]byte, error) {
				raw, err := good.Bytes()
				if err != nil {
					return nil, err
				}
				setSize(raw[:512], 1<<30)
				return raw, nil
			}},
	}
	for _, tc := range cases {
		raw, err := tc.make()
		if err != nil {
			return fmt.Errorf("%s: %w", tc.name, err)
		}
		p := c.add("tampered/"+tc.name+".tar", raw)
		c.unreadable(tc.name, tc.desc, trustDev1, p, tc.refusal)
	}
	return nil
}

// setSize rewrites a USTAR header's size field and its checksum.
func setSize(h []byte, size int64) {
	copy(h[124:136], fmt.Sprintf("%011o\x00", size))
	copy(h[148:156], "        ")
	sum := 0
	for _, b := range h[:512] {
		sum += int(b)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
}
