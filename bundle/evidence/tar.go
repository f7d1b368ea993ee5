package evidence

import (
	"archive/tar"
	"io"
	"slices"
	"time"
)

// WriteTar writes the pack's files as a tar stream (PAX), in path order,
// regular files of mode 0644 only (folders are implied by the paths),
// each with the modification time mod: the stream the archive's read API
// serves and a sealed pack seals.
func (p *Pack) WriteTar(w io.Writer, mod time.Time) error {
	tw := tar.NewWriter(w)
	names := make([]string, 0, len(p.Files))
	for n := range p.Files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		data := p.Files[n]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(data)), ModTime: mod.UTC().Truncate(time.Second), Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	return tw.Close()
}
