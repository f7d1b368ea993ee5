package witness

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

const origin = "edgeseal-archive"

// testLog is an archive log in memory: leaves, signed notes by key.
type testLog struct {
	data   [][]byte
	leaves [][32]byte
	key    ed25519.PrivateKey
}

func newKey(t testing.TB, seed string) ed25519.PrivateKey {
	t.Helper()
	s := sha256.Sum256([]byte(seed))
	return ed25519.NewKeyFromSeed(s[:])
}

// grow appends n leaves whose content derives from tag.
func (l *testLog) grow(n int, tag string) *testLog {
	for range n {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(len(l.leaves)))
		d := append([]byte(tag), b[:]...)
		l.data = append(l.data, d)
		l.leaves = append(l.leaves, merkle.LeafHash(d))
	}
	return l
}

// fork is a copy of l's first size leaves.
func (l *testLog) fork(size int) *testLog {
	return &testLog{data: append([][]byte(nil), l.data[:size]...), leaves: append([][32]byte(nil), l.leaves[:size]...), key: l.key}
}

func (l *testLog) tree() *merkle.Partial { return &merkle.Partial{Leaves: l.leaves} }

func (l *testLog) root(t testing.TB, size uint64) [32]byte {
	t.Helper()
	r, err := l.tree().Hash(0, size)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (l *testLog) note(t testing.TB, size uint64) string {
	t.Helper()
	body := merkle.Checkpoint{Origin: origin, Size: size, Root: l.root(t, size)}.Marshal()
	vkey, err := note.NewEd25519VerifierKey(origin, l.key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	hash, err := strconv.ParseUint(strings.SplitN(vkey, "+", 3)[1], 16, 32)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := note.Sign(&note.Note{Text: string(body)}, signer{uint32(hash), l.key})
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

type signer struct {
	hash uint32
	key  ed25519.PrivateKey
}

func (s signer) Name() string                    { return origin }
func (s signer) KeyHash() uint32                 { return s.hash }
func (s signer) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

// record is the archive.checkpoint body of l at size, with a proof from
// from (0: none).
func (l *testLog) record(t testing.TB, size, from uint64) []byte {
	t.Helper()
	r := &archivesig.CheckpointRecord{Checkpoint: l.note(t, size), Receipt: wire.FormatHash(sha256.Sum256([]byte(l.note(t, size))))}
	if from > 0 {
		p, err := merkle.ConsistencyProof(l.tree().Hash, from, size)
		if err != nil {
			t.Fatal(err)
		}
		r.WitnessFrom = from
		if len(p) > 0 {
			r.WitnessProof = merkle.ProofBytes(p)
		}
	}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mirror writes l's log of size as a tlog-tiles copy in a new folder:
// its signed checkpoint and every hash tile (full and partial).
func (l *testLog) mirror(t testing.TB, size uint64) string {
	t.Helper()
	dir := t.TempDir()
	var stored []tlog.Hash
	for i := range size {
		hs, err := tlog.StoredHashes(int64(i), l.data[i], tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(ix))
			for k, x := range ix {
				out[k] = stored[x]
			}
			return out, nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
	}
	read := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for k, x := range ix {
			out[k] = stored[x]
		}
		return out, nil
	})
	for _, tile := range tlog.NewTiles(tileHeight, 0, int64(size)) {
		data, err := tlog.ReadTileData(tile, read)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(TilePath(uint64(tile.L), uint64(tile.N), tile.W)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "checkpoint"), []byte(l.note(t, size)), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
