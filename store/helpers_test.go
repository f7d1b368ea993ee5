package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"testing"
)

// testLogger writes warnings and errors to the test log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func openT(t testing.TB, dir string, mod ...func(*Options)) *Journal {
	t.Helper()
	o := Options{Dir: dir, Logger: testLogger(t)}
	for _, m := range mod {
		m(&o)
	}
	j, err := Open(context.Background(), o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return j
}

// build makes a record that embeds its seq and prev, like the agent's.
func build(body string) func(uint64, [32]byte) ([]byte, error) {
	return func(seq uint64, prev [32]byte) ([]byte, error) {
		return fmt.Appendf(nil, `{"seq":%d,"prev":"%x","body":%q}`, seq, prev, body), nil
	}
}

var recRE = regexp.MustCompile(`^\{"seq":(\d+),"prev":"([0-9a-f]{64})"`)

// checkEmbedded verifies a record built by build against seq and prev.
func checkEmbedded(seq uint64, rec []byte, prev [32]byte) error {
	m := recRE.FindSubmatch(rec)
	if m == nil {
		return fmt.Errorf("record %d: unexpected shape %.80q", seq, rec)
	}
	if got, _ := strconv.ParseUint(string(m[1]), 10, 64); got != seq {
		return fmt.Errorf("record %d embeds seq %d", seq, got)
	}
	if string(m[2]) != fmt.Sprintf("%x", prev) {
		return fmt.Errorf("record %d embeds prev %s, chain says %x", seq, m[2], prev)
	}
	return nil
}

// leafHash is RFC 6962's leaf hash, computed without tlog.
func leafHash(rec []byte) [32]byte {
	return sha256.Sum256(append([]byte{0}, rec...))
}

// mth is RFC 6962's Merkle tree hash, computed recursively without tlog.
func mth(leaves [][32]byte) [32]byte {
	switch n := len(leaves); n {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return leaves[0]
	default:
		k := 1
		for k*2 < n {
			k *= 2
		}
		l, r := mth(leaves[:k]), mth(leaves[k:])
		return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
	}
}

func appendN(t testing.TB, j *Journal, n int, body string) []Appended {
	t.Helper()
	es := make([]Entry, n)
	for i := range es {
		es[i] = Entry{Build: build(fmt.Sprintf("%s-%d", body, i))}
	}
	var out []Appended
	for len(es) > 0 {
		k := min(len(es), 200)
		res, err := j.AppendBatch(context.Background(), es[:k])
		if err != nil {
			t.Fatalf("append batch: %v", err)
		}
		out = append(out, res...)
		es = es[k:]
	}
	return out
}
