package bundle

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/internal/strict"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Paths inside a bundle.
const (
	PathBagIt        = "bagit.txt"
	PathBagInfo      = "bag-info.txt"
	PathManifest     = "manifest-sha256.txt"
	PathTagManifest  = "tagmanifest-sha256.txt"
	PathRecords      = "data/records.jsonl"
	PayloadDir       = "data/payloads/"
	PathSeal         = "seal.dsse.json"
	PathQuoteMsg     = "attestation/quote.msg"
	PathQuoteSig     = "attestation/quote.sig"
	PathQuotePCRs    = "attestation/quote.pcrs"
	PathSigningPub   = "keys/signing.pub"
	PathAKPub        = "keys/ak.pub"
	PathAKPEM        = "keys/ak.pem"
	PathSigningPEM   = "keys/signing.pem" // bundle format 2 (unique.go)
	PathCertifyMsg   = "keys/certify.msg"
	PathCertifySig   = "keys/certify.sig"
	PathEKPub        = "keys/ek.pub"
	PathEKCert       = "keys/ek.crt"
	EncryptedPayload = ".hpke"
)

var fixedPaths = map[string]bool{
	PathBagIt: true, PathBagInfo: true, PathManifest: true, PathTagManifest: true,
	PathRecords: true, PathSeal: true, PathQuoteMsg: true, PathQuoteSig: true, PathQuotePCRs: true,
	PathSigningPub: true, PathAKPub: true, PathAKPEM: true, PathCertifyMsg: true,
	PathCertifySig: true, PathEKPub: true, PathEKCert: true, PathSigningPEM: true,
}

// FixedPath reports whether name is one of the fixed (not payload) paths
// of a bundle.
func FixedPath(name string) bool { return fixedPaths[name] }

// RequiredPaths lists the paths every bundle holds.
func RequiredPaths() []string { return slices.Clone(requiredPaths) }

// requiredPaths must be in every bundle.
var requiredPaths = []string{
	PathBagIt, PathBagInfo, PathManifest, PathTagManifest, PathRecords, PathSeal,
	PathQuoteMsg, PathQuoteSig, PathQuotePCRs, PathSigningPub, PathAKPub, PathAKPEM,
	PathCertifyMsg, PathCertifySig, PathEKPub,
}

// knownPath reports whether name may appear in a bundle.
func knownPath(name string) bool {
	if fixedPaths[name] {
		return true
	}
	_, ok := PayloadDigestFromPath(name)
	return ok
}

// PayloadPath is the path of a payload stored in the clear.
func PayloadPath(digest [32]byte) string { return PayloadDir + hex.EncodeToString(digest[:]) }

// PayloadDigestFromPath returns the digest named by a payload path
// (data/payloads/<64 lowercase hex>[.hpke]).
func PayloadDigestFromPath(name string) ([32]byte, bool) {
	var d [32]byte
	rest, ok := strings.CutPrefix(name, PayloadDir)
	if !ok {
		return d, false
	}
	rest = strings.TrimSuffix(rest, EncryptedPayload)
	return d, strict.DecodeHex(d[:], rest)
}

// Bundle is a sealed bundle: the files of a BagIt bag, by path.
type Bundle struct {
	Files map[string][]byte
}

// Limits bound what Read accepts.
type Limits struct {
	File  int64 // largest single file
	Total int64 // sum of file sizes
	Files int   // number of files
}

// DefaultLimits suit bundles of up to a few hundred thousand records.
var DefaultLimits = Limits{File: 256 << 20, Total: 1 << 30, Files: 100_000}

// PathError reports a tar entry Read refuses.
type PathError struct {
	Name   string
	Reason string // "unknown path", "duplicate", "not a regular file", "too large", "missing"
}

func (e *PathError) Error() string { return fmt.Sprintf("bundle: %s: %.200q", e.Reason, e.Name) }

var epoch = time.Unix(0, 0).UTC()

// Write writes b as a deterministic tar: entries sorted by path, mode
// 0644, mtime 0, no owner names, USTAR format.
func Write(w io.Writer, b *Bundle) error {
	return writeNames(w, b, b.Names())
}

// writeNames is Write with the file names already sorted: the USTAR
// headers archive/tar writes for these files, formatted directly
// (ustar.go), or archive/tar itself for a name or size outside what
// that formatter covers.
func writeNames(w io.Writer, b *Bundle, names []string) error {
	for _, name := range names {
		if !fastUSTAR(name, int64(len(b.Files[name]))) {
			return writeNamesTar(w, b, names)
		}
	}
	var hdr [tarBlock]byte
	var zeros [2 * tarBlock]byte
	for _, name := range names {
		data := b.Files[name]
		ustarHeader(&hdr, name, int64(len(data)))
		if _, err := w.Write(hdr[:]); err != nil {
			return fmt.Errorf("bundle: write %s: %w", name, err)
		}
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("bundle: write %s: %w", name, err)
		}
		if pad := (tarBlock - len(data)%tarBlock) % tarBlock; pad > 0 {
			if _, err := w.Write(zeros[:pad]); err != nil {
				return fmt.Errorf("bundle: write %s: %w", name, err)
			}
		}
	}
	if _, err := w.Write(zeros[:]); err != nil {
		return fmt.Errorf("bundle: write: %w", err)
	}
	return nil
}

// writeNamesTar is writeNames through archive/tar (the reference the
// direct formatter is tested against).
func writeNamesTar(w io.Writer, b *Bundle, names []string) error {
	tw := tar.NewWriter(w)
	for _, name := range names {
		data := b.Files[name]
		hdr := &tar.Header{
			Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)),
			ModTime: epoch, Format: tar.FormatUSTAR,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("bundle: write %s: %w", name, err)
		}
		if _, err := tw.Write(data); err != nil {
			return fmt.Errorf("bundle: write %s: %w", name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("bundle: write: %w", err)
	}
	return nil
}

// Names returns the file paths in sorted order.
func (b *Bundle) Names() []string {
	names := make([]string, 0, len(b.Files))
	for n := range b.Files {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Bytes returns the written tar.
func (b *Bundle) Bytes() ([]byte, error) { return b.AppendTo(nil) }

// AppendTo appends the bundle file (the same bytes as Write) to dst and
// returns the extended slice; it grows dst once, to the exact size.
func (b *Bundle) AppendTo(dst []byte) ([]byte, error) {
	// The exact tar size: a 512-byte header per file, contents padded
	// to 512 bytes, two zero blocks at the end (USTAR names fit).
	n := 1024
	for _, data := range b.Files {
		n += 512 + (len(data)+511)/512*512
	}
	buf := bytes.NewBuffer(slices.Grow(dst, n))
	if err := Write(buf, b); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Digest is SHA-256 of the written tar.
func (b *Bundle) Digest() ([32]byte, error) {
	h := sha256.New()
	if err := Write(h, b); err != nil {
		return [32]byte{}, err
	}
	var d [32]byte
	h.Sum(d[:0])
	return d, nil
}

// FileName is a stable name for the bundle file:
// "<site>_<name>_<checkpoint size, 20 digits>_<first 16 hex of digest>.tar".
func (b *Bundle) FileName() (string, error) {
	info, err := ParseBagInfo(b.Files[PathBagInfo])
	if err != nil {
		return "", err
	}
	dev, ok := strings.CutPrefix(info["Origin"], "edgeseal/")
	if !ok || wire.CheckDevice(dev) != nil {
		return "", wire.FormatErr("bagit", "origin %.80q", info["Origin"])
	}
	size, err := strconv.ParseUint(info["Checkpoint-Size"], 10, 64)
	if err != nil {
		return "", wire.FormatErr("bagit", "checkpoint size %.30q", info["Checkpoint-Size"])
	}
	d, err := b.Digest()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s_%020d_%x.tar", strings.Replace(dev, "/", "_", 1), size, d[:8]), nil
}

// Read reads a bundle tar strictly: only regular files at known paths,
// no duplicates, links, directories or traversal, within lim, every
// required file present, and the bytes exactly those Write produces (so
// Digest is SHA-256 of the input). Errors are *PathError, *FormatError or
// wrap ErrTooLarge.
func Read(r io.Reader, lim Limits) (*Bundle, error) {
	if lim == (Limits{}) {
		lim = DefaultLimits
	}
	// Headers and padding add at most 1.5 KiB per file.
	maxIn := lim.Total + int64(lim.Files+2)*1536 + 1024
	raw, err := readAll(r, maxIn)
	if err != nil {
		return nil, err
	}
	if b, ok := readCanonical(raw, lim); ok {
		return b, nil
	}
	return readTar(raw, lim)
}

// readTar is Read of the bytes read, with archive/tar.
func readTar(raw []byte, lim Limits) (*Bundle, error) {
	br := bytes.NewReader(raw)
	tr := tar.NewReader(br)
	// Entries take 1 KiB at least but for empty files: a size hint for
	// the map and the names, bounded so that a few large files cost little.
	est := max(0, min(len(raw)>>10, lim.Files, 1<<14))
	b := &Bundle{Files: make(map[string][]byte, est)}
	names := make([]string, 0, est)
	var total int64
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, wire.WrapFormat("tar", "header", err)
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, &PathError{Name: hdr.Name, Reason: "not a regular file"}
		}
		if !knownPath(hdr.Name) {
			return nil, &PathError{Name: hdr.Name, Reason: "unknown path"}
		}
		if _, dup := b.Files[hdr.Name]; dup {
			return nil, &PathError{Name: hdr.Name, Reason: "duplicate"}
		}
		if len(b.Files) >= lim.Files {
			return nil, fmt.Errorf("%w: more than %d files", wire.ErrTooLarge, lim.Files)
		}
		if hdr.Size < 0 || hdr.Size > lim.File || total+hdr.Size > lim.Total {
			return nil, fmt.Errorf("%w: %s of %d bytes", wire.ErrTooLarge, hdr.Name, hdr.Size)
		}
		total += hdr.Size
		// The entry's bytes start where the reader stands after its
		// header: keep them in place rather than copy them.
		start := len(raw) - br.Len()
		if int64(br.Len()) < hdr.Size {
			return nil, wire.WrapFormat("tar", "read "+hdr.Name, io.ErrUnexpectedEOF)
		}
		b.Files[hdr.Name] = raw[start : start+int(hdr.Size) : start+int(hdr.Size)]
		names = append(names, hdr.Name)
	}
	for _, p := range requiredPaths {
		if _, ok := b.Files[p]; !ok {
			return nil, &PathError{Name: p, Reason: "missing"}
		}
	}
	// The input must be byte for byte what Write makes of these files
	// (so Digest is SHA-256 of the file), trailing bytes included. A
	// comparison, not a hash: it costs a copy, not a pass of SHA-256.
	// Entries in sorted order (unique: duplicates were refused) are the
	// order Write takes; else Write sorts and the comparison fails.
	if !slices.IsSorted(names) {
		names = b.Names()
	}
	cw := &compareWriter{want: raw}
	if err := writeNames(cw, b, names); err != nil {
		return nil, err
	}
	if cw.differs || cw.off != len(raw) {
		return nil, wire.FormatErr("tar", "not the canonical encoding (sorted entries, mode 0644, mtime 0, USTAR)")
	}
	return b, nil
}

// readAll reads all of r, at most max bytes, in one allocation when r
// tells its size.
func readAll(r io.Reader, max int64) ([]byte, error) {
	var hint int64
	switch v := r.(type) {
	case interface{ Len() int }:
		hint = int64(v.Len())
	case interface{ Stat() (os.FileInfo, error) }:
		if fi, err := v.Stat(); err == nil && fi.Mode().IsRegular() {
			hint = fi.Size()
		}
	}
	if hint > max {
		return nil, fmt.Errorf("%w: more than %d bytes", wire.ErrTooLarge, max)
	}
	lr := &io.LimitedReader{R: r, N: max + 1}
	buf := make([]byte, hint+1)
	n, err := io.ReadFull(lr, buf)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return buf[:n], nil
	case err != nil:
		return nil, wire.WrapFormat("tar", "read", err)
	}
	// Longer than the hint (or no hint): read the rest.
	rest, err := io.ReadAll(lr)
	if err != nil {
		return nil, wire.WrapFormat("tar", "read", err)
	}
	buf = append(buf, rest...)
	if int64(len(buf)) > max {
		return nil, fmt.Errorf("%w: more than %d bytes", wire.ErrTooLarge, max)
	}
	return buf, nil
}

// compareWriter checks that what is written equals want, in order.
type compareWriter struct {
	want    []byte
	off     int
	differs bool
}

func (c *compareWriter) Write(p []byte) (int, error) {
	if !c.differs && (c.off+len(p) > len(c.want) || !bytes.Equal(c.want[c.off:c.off+len(p)], p)) {
		c.differs = true
	}
	c.off += len(p)
	return len(p), nil
}

// Statement decodes the seal's statement without verifying anything.
func (b *Bundle) Statement() (*dsse.Envelope, *Statement, error) {
	env, err := dsse.ParseEnvelope(b.Files[PathSeal])
	if err != nil {
		return nil, nil, err
	}
	if env.PayloadType != dsse.PayloadTypeInToto {
		return env, nil, wire.FormatErr("envelope", "payload type %.60q", env.PayloadType)
	}
	st, err := ParseStatement(env.Payload)
	return env, st, err
}

// Records splits data/records.jsonl into record byte strings (not parsed).
func (b *Bundle) Records() ([][]byte, error) {
	return splitRecords(b.Files[PathRecords])
}

func splitRecords(data []byte) ([][]byte, error) {
	if len(data) == 0 {
		return nil, nil
	}
	if data[len(data)-1] != '\n' {
		return nil, wire.FormatErr("records", "last line not terminated")
	}
	out := make([][]byte, 0, len(data)/256+1)
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i == 0 {
			return nil, wire.FormatErr("records", "empty line %d", len(out))
		}
		out = append(out, data[:i:i])
		data = data[i+1:]
	}
	return out, nil
}
