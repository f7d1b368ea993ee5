package sync

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/edgeseal/edgeseal/bundle/wire"
)

// frameOf builds a frame with any chunk (EncodeChunks cuts equal ones).
func frameOf(id string, digest [32]byte, index, count int, size int64, chunk []byte) []byte {
	h := header{Bundle: wire.FormatHash(digest), ID: id, Index: index, Count: count, Size: size}
	hb := h.marshal()
	f := append([]byte(Magic), binary.BigEndian.AppendUint32(nil, uint32(len(hb)))...)
	return append(append(f, hb...), chunk...)
}

// TestAssemblerOrder: the chunks of a bundle join in any arrival order,
// each copied to its place (the frame's buffer is not kept), and the
// bundle comes with its digest computed over exactly its bytes.
func TestAssemblerOrder(t *testing.T) {
	b := bundleBytes("order", 5000)
	d := sha256.Sum256(b)
	frames := EncodeChunks("id", d, b, 1024)
	if len(frames) != 6 { // the orders below
		t.Fatalf("%d frames", len(frames))
	}
	for _, order := range [][]int{
		{len(frames) - 1, 0, 2, 1, 3, 4},
		{2, 1, 0, 3, 4, len(frames) - 1},
	} {
		a := NewAssembler(AssemblerLimits{})
		var got *Complete
		for k, i := range order[:len(frames)] {
			f := bytes.Clone(frames[i])
			c, err := a.Add("s/d", f)
			clear(f) // the assembler copied the chunk
			if err != nil {
				t.Fatal(err)
			}
			if k < len(frames)-1 {
				if c != nil {
					t.Fatalf("complete after %d frames", k+1)
				}
				if st := a.Stats(); st.Bytes != int64(len(b)) || st.Partials != 1 {
					t.Fatalf("holdings %+v, want the bundle's size reserved", st)
				}
				continue
			}
			got = c
		}
		if got == nil || !bytes.Equal(got.Bundle, b) || got.Digest != d {
			t.Fatalf("order %v: bundle not joined", order)
		}
		if !got.Hashed.Valid() || got.Hashed.Sum() != d || &got.Hashed.Bytes()[0] != &got.Bundle[0] {
			t.Fatal("Hashed is not the bundle with its digest")
		}
		if st := a.Stats(); st.Bytes != 0 || st.Partials != 0 || st.Completed != 1 {
			t.Fatalf("after: %+v", st)
		}
	}
}

// TestAssemblerChunkShape: every chunk but the last has one length and
// the last is not longer; anything else is refused, not misplaced.
func TestAssemblerChunkShape(t *testing.T) {
	b := bundleBytes("shape", 3000)
	d := sha256.Sum256(b)
	size := int64(len(b))
	cases := []struct {
		name   string
		frames [][]byte
	}{
		{"uneven middle", [][]byte{frameOf("id", d, 0, 3, size, b[:1000]), frameOf("id", d, 1, 3, size, b[1000:1900])}},
		{"last longer", [][]byte{frameOf("id", d, 2, 3, size, b[800:])}},
		{"last longer than the first", [][]byte{frameOf("id", d, 0, 3, size, b[:900]), frameOf("id", d, 2, 3, size, b[1800:])}},
		{"chunks too short", [][]byte{frameOf("id", d, 0, 3, size, b[:999])}},
		{"chunks too long", [][]byte{frameOf("id", d, 0, 3, size, b[:1500])}},
	}
	for _, c := range cases {
		a := NewAssembler(AssemblerLimits{})
		var err error
		for _, f := range c.frames {
			if _, err = a.Add("s/d", f); err != nil {
				break
			}
		}
		var me *MismatchError
		if !errors.As(err, &me) || me.Field != "chunk" {
			t.Errorf("%s: %v, want a chunk mismatch", c.name, err)
		}
	}
	// The shape EncodeChunks makes, with a short last chunk, joins.
	a := NewAssembler(AssemblerLimits{})
	var done *Complete
	for i, f := range [][]byte{frameOf("id", d, 2, 3, size, b[2400:]), frameOf("id", d, 0, 3, size, b[:1200]), frameOf("id", d, 1, 3, size, b[1200:2400])} {
		c, err := a.Add("s/d", f)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		done = c
	}
	if done == nil || !bytes.Equal(done.Bundle, b) {
		t.Fatal("not joined")
	}
}

// TestAssemblerHolds: a partial holds copies of the chunks that came
// until it has 1/reserveRatio of its bundle, then the whole bundle (the
// chunks so far moved to their place); so a frame that announces a large
// bundle costs only its own bytes.
func TestAssemblerHolds(t *testing.T) {
	b := bundleBytes("holds", 64<<10)
	d := sha256.Sum256(b)
	frames := EncodeChunks("id", d, b, 1024)
	a := NewAssembler(AssemblerLimits{})
	// Backwards, so the early chunks are out of order too.
	var got *Complete
	var received int64
	for k := len(frames) - 1; k >= 0; k-- {
		f, err := DecodeFrame(frames[k])
		if err != nil {
			t.Fatal(err)
		}
		received += int64(len(f.Chunk))
		c, err := a.Add("s/d", frames[k])
		if err != nil {
			t.Fatal(err)
		}
		if k == 0 {
			got = c
			break
		}
		want := received
		if received*reserveRatio >= int64(len(b)) {
			want = int64(len(b))
		}
		if held := a.Stats().Bytes; held != want {
			t.Fatalf("after %d frames (%d bytes): %d bytes held, want %d", len(frames)-k, received, held, want)
		}
	}
	if got == nil || !bytes.Equal(got.Bundle, b) || got.Hashed.Sum() != d {
		t.Fatal("bundle not joined")
	}
	if st := a.Stats(); st.Bytes != 0 || st.Partials != 0 {
		t.Fatalf("after: %+v", st)
	}
	// One frame announcing the largest bundle holds its own chunk only.
	a = NewAssembler(AssemblerLimits{})
	big := frameOf("id", d, 0, 1<<16, 64<<20, bytes.Repeat([]byte{1}, 1024))
	if _, err := a.Add("s/d", big); err != nil {
		t.Fatal(err)
	}
	if st := a.Stats(); st.Bytes != 1024 {
		t.Fatalf("one frame of a 64 MiB bundle holds %d bytes", st.Bytes)
	}
}
