package bundle

import (
	"bytes"
	"crypto/sha256"
	"maps"
	"testing"
)

// sampleTar is Write's output for a small bundle: every required file and
// two payloads (one empty, one a block long, so padding and its absence
// are both there).
func sampleTar(t testing.TB) []byte {
	b := &Bundle{Files: map[string][]byte{}}
	for _, p := range requiredPaths {
		b.Files[p] = []byte("contents of " + p)
	}
	b.Files[PayloadPath(sha256.Sum256(nil))] = []byte{}
	b.Files[PayloadPath(sha256.Sum256([]byte("p")))] = bytes.Repeat([]byte("p"), tarBlock)
	raw, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

var readTestLimits = Limits{File: 1 << 16, Total: 1 << 20, Files: 64}

// checkFastPath holds readCanonical to readTar: what the fast path
// accepts, archive/tar reads as the same files.
func checkFastPath(t *testing.T, raw []byte) bool {
	b, ok := readCanonical(raw, readTestLimits)
	ref, err := readTar(raw, readTestLimits)
	if ok {
		if err != nil {
			t.Fatalf("fast path accepted what readTar refuses: %v", err)
		}
		if !maps.EqualFunc(b.Files, ref.Files, bytes.Equal) {
			t.Fatal("fast path read other files than readTar")
		}
	}
	return ok
}

// TestReadCanonical: Write's output takes the fast path; any change to
// its headers, padding or end leaves it (and Read gives readTar's answer).
func TestReadCanonical(t *testing.T) {
	raw := sampleTar(t)
	if !checkFastPath(t, raw) {
		t.Fatal("Write's output not read by the fast path")
	}
	firstPayload := bytes.Index(raw, []byte(PayloadDir))
	firstSize, _ := parseOctalSize(raw[124:136]) // of the first file, not a block long
	mutations := map[string]func(b []byte) []byte{
		"trailing byte":       func(b []byte) []byte { return append(b, 0) },
		"one end block":       func(b []byte) []byte { return b[:len(b)-tarBlock] },
		"padding not zero":    func(b []byte) []byte { b[tarBlock+firstSize] = 1; return b },
		"mode":                func(b []byte) []byte { b[firstPayload+100+4] = '7'; return b },
		"size without zeros":  func(b []byte) []byte { copy(b[firstPayload+124:], "0\x00"); return b },
		"name in prefix only": func(b []byte) []byte { b[firstPayload+345] = 'x'; return b },
		"end block not zero":  func(b []byte) []byte { b[len(b)-1] = 1; return b },
	}
	for name, m := range mutations {
		b := m(bytes.Clone(raw))
		if checkFastPath(t, b) {
			t.Errorf("%s: fast path accepted it", name)
		}
	}
	// Out of order, and a duplicate: two entries swapped, one repeated.
	b := &Bundle{Files: map[string][]byte{}}
	for _, p := range requiredPaths {
		b.Files[p] = []byte("x")
	}
	names := b.Names()
	var buf bytes.Buffer
	if err := writeNames(&buf, b, append([]string{names[1], names[0]}, names[2:]...)); err != nil {
		t.Fatal(err)
	}
	if checkFastPath(t, buf.Bytes()) {
		t.Error("unsorted entries took the fast path")
	}
	buf.Reset()
	if err := writeNames(&buf, b, append([]string{names[0]}, names...)); err != nil {
		t.Fatal(err)
	}
	if checkFastPath(t, buf.Bytes()) {
		t.Error("a duplicate took the fast path")
	}
}

// FuzzReadCanonical: whatever the fast path accepts, archive/tar reads
// as the same files.
func FuzzReadCanonical(f *testing.F) {
	raw := sampleTar(f)
	f.Add(raw)
	f.Add(raw[:len(raw)-tarBlock])
	f.Add(append(bytes.Clone(raw), 0))
	f.Fuzz(func(t *testing.T, raw []byte) { checkFastPath(t, raw) })
}
