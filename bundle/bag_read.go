package bundle

import (
	"fmt"
	"slices"
)

// readCanonical is the fast path of Read: it parses raw as the tar Write
// makes (USTAR headers, regular files, sorted, then two zero blocks)
// without archive/tar, applies Read's checks, and accepts raw only when
// Write of the result gives raw again byte for byte. Anything else,
// including what Read refuses, returns false: readTar then reads raw and
// returns what Read always returned. For the bytes it accepts, archive/tar
// reads the same files (they are Write's output).
func readCanonical(raw []byte, lim Limits) (*Bundle, bool) {
	const block = 512
	est := max(0, min(len(raw)>>10, lim.Files, 1<<14))
	b := &Bundle{Files: make(map[string][]byte, est)}
	names := make([]string, 0, est)
	var total int64
	off := 0
	for {
		if off+block > len(raw) {
			return nil, false
		}
		h := raw[off : off+block]
		if h[0] == 0 {
			break // the end blocks: the comparison checks them
		}
		if h[156] != '0' { // typeflag: a regular file
			return nil, false
		}
		name := cString(h[0:100])
		if prefix := cString(h[345:500]); prefix != "" {
			name = prefix + "/" + name
		}
		size, ok := parseOctalSize(h[124:136])
		if !ok || !KnownPath(name) || len(b.Files) >= lim.Files || size > lim.File || total+size > lim.Total {
			return nil, false
		}
		if _, dup := b.Files[name]; dup {
			return nil, false
		}
		total += size
		start := off + block
		if int64(len(raw)-start) < size {
			return nil, false
		}
		end := start + int(size)
		b.Files[name] = raw[start:end:end]
		names = append(names, name)
		off = start + (int(size)+block-1)/block*block
	}
	for _, p := range requiredPaths {
		if _, ok := b.Files[p]; !ok {
			return nil, false
		}
	}
	if !slices.IsSorted(names) {
		return nil, false
	}
	cw := &compareWriter{want: raw}
	if err := writeNames(cw, b, names); err != nil || cw.differs || cw.off != len(raw) {
		return nil, false
	}
	return b, true
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
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxIn)
	}
	if b, ok := readCanonical(raw, lim); ok {
		return b, nil
	}
	return readTar(raw, lim)
}
