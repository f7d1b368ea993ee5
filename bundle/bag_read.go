package bundle

import (
	"bytes"
	"fmt"
	"os"

	"github.com/edgeseal/edgeseal/bundle/wire"
)

// readCanonical is the fast path of Read: it parses raw as the tar Write
// makes (USTAR headers, regular files, sorted, then two zero blocks)
// without archive/tar, applies Read's checks, and accepts raw only when
// Write of the result gives raw again byte for byte: each header is the
// one ustarHeader formats for its name and size, compared as it is read,
// each file padded with zeros, names strictly increasing (sorted, no
// duplicates), two zero blocks and nothing after them. Anything else,
// including what Read refuses and names ustarHeader does not format
// (Write takes archive/tar for those), returns false: readTar then reads
// raw and returns what Read always returned. For the bytes it accepts,
// archive/tar reads the same files (they are Write's output).
func readCanonical(raw []byte, lim Limits) (*Bundle, bool) {
	est := max(0, min(len(raw)>>10, lim.Files, 1<<14))
	b := &Bundle{Files: make(map[string][]byte, est)}
	var total int64
	var want [tarBlock]byte
	prev := ""
	off := 0
	for {
		if off+tarBlock > len(raw) {
			return nil, false
		}
		h := raw[off : off+tarBlock]
		if h[0] == 0 {
			break // the end blocks
		}
		name := cString(h[0:100])
		size, ok := parseOctalSize(h[124:136])
		if !ok || !fastUSTAR(name, size) || len(b.Files) >= lim.Files || size > lim.File || total+size > lim.Total {
			return nil, false
		}
		if name <= prev || !knownPath(name) { // sorted, so no duplicates
			return nil, false
		}
		ustarHeader(&want, name, size)
		if !bytes.Equal(h, want[:]) {
			return nil, false
		}
		total += size
		start := off + tarBlock
		if int64(len(raw)-start) < size {
			return nil, false
		}
		end := start + int(size)
		next := start + (int(size)+tarBlock-1)/tarBlock*tarBlock
		if next > len(raw) || !zeros(raw[end:next]) {
			return nil, false
		}
		b.Files[name] = raw[start:end:end]
		prev = name
		off = next
	}
	if len(raw)-off != 2*tarBlock || !zeros(raw[off:]) {
		return nil, false
	}
	for _, p := range requiredPaths {
		if _, ok := b.Files[p]; !ok {
			return nil, false
		}
	}
	return b, true
}

// zeros reports whether b is all zero bytes.
func zeros(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// cString is the NUL-terminated string at the start of f.
func cString(f []byte) string {
	for i, c := range f {
		if c == 0 {
			return string(f[:i])
		}
	}
	return string(f)
}

// parseOctalSize reads a size field as Write formats it: octal digits,
// then NULs. The comparison with Write's output checks the exact form.
func parseOctalSize(f []byte) (int64, bool) {
	var n int64
	i := 0
	for ; i < len(f) && f[i] >= '0' && f[i] <= '7'; i++ {
		if n > 1<<40 {
			return 0, false
		}
		n = n<<3 | int64(f[i]-'0')
	}
	if i == 0 {
		return 0, false
	}
	for ; i < len(f); i++ {
		if f[i] != 0 {
			return 0, false
		}
	}
	return n, true
}

// ReadBytes is Read of raw itself, without reading it into a new buffer:
// the Bundle's files are slices of raw, so raw must not be modified while
// the Bundle is in use. Same checks and errors as Read.
func ReadBytes(raw []byte, lim Limits) (*Bundle, error) {
	if lim == (Limits{}) {
		lim = DefaultLimits
	}
	// As Read: headers and padding add at most 1.5 KiB per file.
	if maxIn := lim.Total + int64(lim.Files+2)*1536 + 1024; int64(len(raw)) > maxIn {
		return nil, fmt.Errorf("%w: more than %d bytes", wire.ErrTooLarge, maxIn)
	}
	if b, ok := readCanonical(raw, lim); ok {
		return b, nil
	}
	return readTar(raw, lim)
}

// ReadFile is Read of the file at path within DefaultLimits. Errors other
// than opening the file name path.
func ReadFile(path string) (*Bundle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := Read(f, DefaultLimits)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}
