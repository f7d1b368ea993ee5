package sync

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// vector is sync/testdata/frames-v1.json: a bundle, its digest, the
// message size, and the exact frames EncodeChunks must produce.
type vector struct {
	Description string   `json:"description"`
	ID          string   `json:"id"`
	BundleText  string   `json:"bundle_text"` // repeated to BundleSize bytes
	BundleSize  int      `json:"bundle_size"`
	Digest      string   `json:"digest"`
	MaxMessage  int      `json:"max_message"`
	Headers     []string `json:"headers"`
	FramesHex   []string `json:"frames_hex"`
}

func (v *vector) bundle() []byte {
	return []byte(strings.Repeat(v.BundleText, v.BundleSize/len(v.BundleText)+1)[:v.BundleSize])
}

func TestVector(t *testing.T) {
	raw, err := os.ReadFile("testdata/frames-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 2 {
		t.Fatalf("%d vectors", len(vs))
	}
	for _, v := range vs {
		b := v.bundle()
		d := sha256.Sum256(b)
		if "sha256:"+hex.EncodeToString(d[:]) != v.Digest {
			t.Fatalf("%s: digest %x", v.Description, d)
		}
		frames := EncodeChunks(v.ID, d, b, v.MaxMessage)
		if len(frames) != len(v.FramesHex) {
			t.Fatalf("%s: %d frames, vector has %d", v.Description, len(frames), len(v.FramesHex))
		}
		a := NewAssembler(AssemblerLimits{})
		for i, f := range frames {
			if hex.EncodeToString(f) != v.FramesHex[i] {
				t.Errorf("%s: frame %d differs from the vector", v.Description, i)
			}
			if len(f) > v.MaxMessage {
				t.Errorf("frame %d is %d bytes > %d", i, len(f), v.MaxMessage)
			}
			// The spec layout, checked by hand: magic, BE length, header.
			hl := binary.BigEndian.Uint32(f[4:8])
			if string(f[:4]) != "ESB1" || string(f[8:8+hl]) != v.Headers[i] {
				t.Errorf("frame %d header %q, want %q", i, f[8:8+hl], v.Headers[i])
			}
			c, err := a.Add("site1/dev1", f)
			if err != nil {
				t.Fatal(err)
			}
			if (c != nil) != (i == len(frames)-1) {
				t.Fatalf("frame %d: complete=%v", i, c != nil)
			}
			if c != nil && (!bytes.Equal(c.Bundle, b) || c.ID != v.ID) {
				t.Error("reassembled bundle differs")
			}
		}
	}
}

// TestVectorFile: testdata/frames-v1.json is what the encoder writes for
// its vectors now; SYNC_WRITE_VECTOR=1 rewrites it instead.
func TestVectorFile(t *testing.T) {
	var vs []vector
	for _, v := range []vector{
		{Description: "one frame: a bundle that fits the message", ID: "000000000001", BundleText: "edgeseal bundle\n", BundleSize: 40, MaxMessage: 1024},
		{Description: "three frames at the minimum message size", ID: "000000000007", BundleText: "ESB1 chunk test, ", BundleSize: 2500, MaxMessage: 1024},
	} {
		b := v.bundle()
		d := sha256.Sum256(b)
		v.Digest = "sha256:" + hex.EncodeToString(d[:])
		for _, f := range EncodeChunks(v.ID, d, b, v.MaxMessage) {
			hl := binary.BigEndian.Uint32(f[4:8])
			v.Headers = append(v.Headers, string(f[8:8+hl]))
			v.FramesHex = append(v.FramesHex, hex.EncodeToString(f))
		}
		vs = append(vs, v)
	}
	out, err := json.MarshalIndent(vs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, '\n')
	if os.Getenv("SYNC_WRITE_VECTOR") == "1" {
		if err := os.WriteFile("testdata/frames-v1.json", out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if have, err := os.ReadFile("testdata/frames-v1.json"); err != nil || !bytes.Equal(have, out) {
		t.Fatalf("testdata/frames-v1.json is not what the encoder writes (%v); SYNC_WRITE_VECTOR=1 rewrites it", err)
	}
}

func TestEncodeChunksSizes(t *testing.T) {
	for _, size := range []int{0, 1, 100, 1023, 1024, 5000, 1 << 20} {
		for _, maxMsg := range []int{0, 1024, 4096, 64 << 10} {
			b := bundleBytes("sizes", size)
			d := sha256.Sum256(b)
			frames := EncodeChunks("id-1", d, b, maxMsg)
			limit := max(maxMsg, MinMessage)
			a := NewAssembler(AssemblerLimits{})
			var got *Complete
			for i, f := range frames {
				if len(f) > limit {
					t.Fatalf("size %d max %d: frame %d is %d bytes", size, maxMsg, i, len(f))
				}
				c, err := a.Add("s/d", f)
				if err != nil {
					t.Fatalf("size %d max %d frame %d: %v", size, maxMsg, i, err)
				}
				if c != nil {
					got = c
				}
			}
			if got == nil || !bytes.Equal(got.Bundle, b) {
				t.Fatalf("size %d max %d: not reassembled (%d frames)", size, maxMsg, len(frames))
			}
			if size+200 < limit && len(frames) != 1 {
				t.Errorf("size %d max %d: %d frames, want 1", size, maxMsg, len(frames))
			}
		}
	}
	if EncodeChunks("bad id", [32]byte{}, nil, 0) != nil || EncodeChunks("", [32]byte{}, nil, 0) != nil {
		t.Error("invalid id encoded")
	}
}

func frameWith(hdr string, chunk []byte) []byte {
	f := []byte("ESB1")
	f = binary.BigEndian.AppendUint32(f, uint32(len(hdr)))
	return append(append(f, hdr...), chunk...)
}

func TestDecodeFrameStrict(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	good := `{"bundle":"` + d + `","count":2,"id":"x","index":0,"size":4}`
	if _, err := DecodeFrame(frameWith(good, []byte("ab"))); err != nil {
		t.Fatalf("good frame: %v", err)
	}
	bad := map[string][]byte{
		"short":          []byte("ESB1\x00"),
		"magic":          append([]byte("ESB2"), frameWith(good, []byte("ab"))[4:]...),
		"zero header":    frameWith("", nil),
		"header beyond":  append([]byte("ESB1\x00\x00\x10\x00"), good...),
		"not canonical":  frameWith(`{"count":2,"bundle":"`+d+`","id":"x","index":0,"size":4}`, []byte("ab")),
		"spaces":         frameWith(`{"bundle":"`+d+`", "count":2,"id":"x","index":0,"size":4}`, []byte("ab")),
		"unknown field":  frameWith(`{"bundle":"`+d+`","count":2,"id":"x","index":0,"size":4,"x":1}`, []byte("ab")),
		"missing field":  frameWith(`{"bundle":"`+d+`","count":2,"id":"x","index":0}`, []byte("ab")),
		"trailing JSON":  frameWith(good+`{}`, []byte("ab")),
		"bad digest":     frameWith(`{"bundle":"sha256:AB","count":2,"id":"x","index":0,"size":4}`, []byte("ab")),
		"index>=count":   frameWith(`{"bundle":"`+d+`","count":2,"id":"x","index":2,"size":4}`, []byte("ab")),
		"count 0":        frameWith(`{"bundle":"`+d+`","count":0,"id":"x","index":0,"size":4}`, []byte("ab")),
		"negative size":  frameWith(`{"bundle":"`+d+`","count":2,"id":"x","index":0,"size":-4}`, []byte("ab")),
		"chunk > size":   frameWith(`{"bundle":"`+d+`","count":2,"id":"x","index":0,"size":1}`, []byte("ab")),
		"single partial": frameWith(`{"bundle":"`+d+`","count":1,"id":"x","index":0,"size":4}`, []byte("ab")),
		"empty chunk":    frameWith(good, nil),
		"empty id":       frameWith(`{"bundle":"`+d+`","count":2,"id":"","index":0,"size":4}`, []byte("ab")),
		"count > bytes":  frameWith(`{"bundle":"`+d+`","count":9,"id":"x","index":0,"size":4}`, []byte("ab")),
	}
	for name, f := range bad {
		_, err := DecodeFrame(f)
		var fe *FrameError
		if !errors.As(err, &fe) || !errors.Is(err, ErrFrame) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestAssemblerErrors(t *testing.T) {
	b := bundleBytes("asm", 5000)
	d := sha256.Sum256(b)
	frames := EncodeChunks("id1", d, b, 1024)
	a := NewAssembler(AssemblerLimits{MaxBundle: 4000})
	var le *LimitError
	if _, err := a.Add("s/d", frames[0]); !errors.As(err, &le) || le.What != "bundle size" {
		t.Errorf("oversized bundle: %v", err)
	}
	// Wrong digest: all frames arrive, the join does not hash to it.
	wrong := EncodeChunks("id1", sha256.Sum256([]byte("other")), b, 1024)
	a = NewAssembler(AssemblerLimits{})
	var err error
	for _, f := range wrong {
		_, err = a.Add("s/d", f)
	}
	var de *DigestError
	if !errors.As(err, &de) {
		t.Errorf("wrong digest: %v", err)
	}
	if st := a.Stats(); st.Partials != 0 || st.Bytes != 0 {
		t.Errorf("after digest error: %+v", st)
	}
	// Mismatched header between frames of one bundle.
	other := EncodeChunks("id2", d, b, 1024)
	a = NewAssembler(AssemblerLimits{})
	if _, err := a.Add("s/d", frames[0]); err != nil {
		t.Fatal(err)
	}
	var me *MismatchError
	if _, err := a.Add("s/d", other[1]); !errors.As(err, &me) || me.Field != "id" {
		t.Errorf("mismatched id: %v", err)
	}
	// Repeated chunks are ignored; the bundle still completes once.
	a = NewAssembler(AssemblerLimits{})
	done := 0
	for _, f := range append(append([][]byte{}, frames...), frames[:2]...) {
		c, err := a.Add("s/d", f)
		if err != nil {
			t.Fatal(err)
		}
		if c != nil {
			done++
		}
	}
	if done != 1 {
		t.Errorf("completed %d times", done)
	}
	// Same digest from two sources are two partials.
	a = NewAssembler(AssemblerLimits{})
	a.Add("s/d1", frames[0])
	a.Add("s/d2", frames[0])
	if st := a.Stats(); st.Partials != 2 {
		t.Errorf("partials %d", st.Partials)
	}
}

func TestAssemblerBounds(t *testing.T) {
	now := time.Unix(1000, 0)
	a := NewAssembler(AssemblerLimits{MaxPartials: 3, MaxBytes: 10_000, TTL: time.Minute})
	a.now = func() time.Time { return now }
	first := func(i int) []byte {
		b := bundleBytes(string(rune('a'+i)), 3000)
		return EncodeChunks("id", sha256.Sum256(b), b, 1024)[0]
	}
	for i := range 5 {
		if _, err := a.Add("s/d", first(i)); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Second)
		st := a.Stats()
		if st.Partials > 3 || st.Bytes > 10_000 {
			t.Fatalf("bounds exceeded: %+v", st)
		}
	}
	if st := a.Stats(); st.Evicted != 2 || st.Partials != 3 {
		t.Errorf("eviction: %+v", st)
	}
	now = now.Add(2 * time.Minute)
	b := bundleBytes("z", 10)
	if c, err := a.Add("s/d", EncodeChunks("id", sha256.Sum256(b), b, 1024)[0]); err != nil || c == nil {
		t.Fatalf("single frame: %v", err)
	}
	if st := a.Stats(); st.Expired != 3 || st.Partials != 0 || st.Bytes != 0 {
		t.Errorf("expiry: %+v", st)
	}
	// Byte bound: partials of 3 frames x ~1 KB each, MaxBytes 2500.
	a = NewAssembler(AssemblerLimits{MaxBytes: 2500, MaxBundle: 2500})
	for i := range 4 {
		bb := bundleBytes(string(rune('k'+i)), 2400)
		fs := EncodeChunks("id", sha256.Sum256(bb), bb, 1024)
		a.Add("s/d", fs[0])
		a.Add("s/d", fs[1])
		if st := a.Stats(); st.Bytes > 2500 {
			t.Fatalf("bytes %d > 2500", st.Bytes)
		}
	}
}
