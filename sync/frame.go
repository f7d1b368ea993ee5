package sync

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strconv"

	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Frame format constants.
const (
	// Magic opens every bundle frame.
	Magic = "ESB1"
	// MaxHeader bounds the header JSON of a frame.
	MaxHeader = 1024
	// MaxIDLen bounds an outbox id carried in a frame.
	MaxIDLen = 256
	// MaxChunks bounds the chunk count of one bundle.
	MaxChunks = 1 << 20
	// MinMessage is the smallest message size EncodeChunks works with;
	// smaller values are raised to it.
	MinMessage = 1024
	// DefaultMaxMessage is the default MQTT message size (256 KiB).
	DefaultMaxMessage = 256 << 10

	maxJSONInt = 1<<53 - 1
)

// Frame is one decoded bundle message.
type Frame struct {
	ID     string   // outbox id of the bundle
	Digest [32]byte // SHA-256 of the whole bundle
	Index  int      // 0-based chunk index
	Count  int      // number of chunks, >= 1
	Size   int64    // bundle bytes
	Chunk  []byte   // this chunk's bytes (aliases the input of DecodeFrame)
}

// header is the frame header; its fields are in RFC 8785 key order and all
// values are plain ASCII, so encoding/json without HTML escaping writes it
// canonically.
type header struct {
	Bundle string `json:"bundle"`
	Count  int    `json:"count"`
	ID     string `json:"id"`
	Index  int    `json:"index"`
	Size   int64  `json:"size"`
}

func (h *header) marshal() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(h) // cannot fail: strings and ints only
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// ValidID reports whether id can travel in a frame: 1 to MaxIDLen bytes of
// printable ASCII other than space, '"' and '\'.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// EncodeChunks splits a bundle into frames of at most maxMsg bytes each
// (maxMsg below MinMessage is raised to it). A bundle that fits is one frame
// (count 1). digest must be SHA-256 of bundle; the receiving Assembler drops
// the bundle otherwise. It returns nil when id is not ValidID.
func EncodeChunks(id string, digest [32]byte, bundleBytes []byte, maxMsg int) [][]byte {
	c, ok := newChunker(id, digest, bundleBytes, maxMsg)
	if !ok {
		return nil
	}
	frames := make([][]byte, 0, c.count)
	for i := range c.count {
		frames = append(frames, c.frame(nil, i))
	}
	return frames
}

// chunker cuts one bundle into EncodeChunks' frames, one at a time, into
// buffers the caller may reuse.
type chunker struct {
	h      header
	data   []byte
	room   int64 // chunk bytes per frame (the last may have fewer)
	count  int
	hdrMax int // the longest header
}

func newChunker(id string, digest [32]byte, data []byte, maxMsg int) (*chunker, bool) {
	if !ValidID(id) {
		return nil, false
	}
	if maxMsg < MinMessage {
		maxMsg = MinMessage
	}
	size := int64(len(data))
	c := &chunker{h: header{Bundle: wire.FormatHash(digest), ID: id, Size: size}, data: data}
	// The largest header: index and count never have more digits than size.
	widest := c.h
	widest.Index, widest.Count = int(max(size, 1)), int(max(size, 1))
	c.hdrMax = len(widest.marshal())
	c.room = int64(maxMsg - 8 - c.hdrMax)
	count := int64(1)
	if size > c.room {
		count = (size + c.room - 1) / c.room
	}
	c.count = int(count)
	return c, true
}

// frame appends frame i to dst[:0] (a new buffer when dst is too small).
func (c *chunker) frame(dst []byte, i int) []byte {
	lo, hi := int64(i)*c.room, min(int64(i+1)*c.room, c.h.Size)
	c.h.Index, c.h.Count = i, c.count
	hb := c.h.marshal()
	if n := 8 + len(hb) + int(hi-lo); cap(dst) < n {
		dst = make([]byte, 0, n)
	}
	f := append(dst[:0], Magic...)
	f = binary.BigEndian.AppendUint32(f, uint32(len(hb)))
	f = append(f, hb...)
	return append(f, c.data[lo:hi]...)
}

// maxFrame is the longest frame of the bundle.
func (c *chunker) maxFrame() int { return 8 + c.hdrMax + int(min(c.room, c.h.Size)) }

// DecodeFrame parses one frame strictly: magic, header length, canonical
// header JSON with exactly the known fields, consistent index, count and
// size. Errors are *FrameError. The returned Chunk aliases b.
func DecodeFrame(b []byte) (*Frame, error) {
	if len(b) < 8 {
		return nil, &FrameError{Offset: len(b), Reason: "shorter than magic and header length"}
	}
	if string(b[:4]) != Magic {
		return nil, &FrameError{Offset: 0, Reason: "bad magic " + strconv.Quote(string(b[:4]))}
	}
	hlen := binary.BigEndian.Uint32(b[4:8])
	if hlen == 0 || hlen > MaxHeader {
		return nil, &FrameError{Offset: 4, Reason: "header length " + strconv.FormatUint(uint64(hlen), 10) + " outside 1.." + strconv.Itoa(MaxHeader)}
	}
	if uint64(hlen) > uint64(len(b)-8) {
		return nil, &FrameError{Offset: 4, Reason: "header length " + strconv.FormatUint(uint64(hlen), 10) + " beyond the frame"}
	}
	raw := b[8 : 8+hlen]
	var h header
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return nil, &FrameError{Offset: 8, Reason: "header JSON", Err: err}
	}
	if !bytes.Equal(h.marshal(), raw) {
		return nil, &FrameError{Offset: 8, Reason: "header is not canonical JSON with all fields"}
	}
	digest, err := wire.ParseHash(h.Bundle)
	if err != nil {
		return nil, &FrameError{Offset: 8, Reason: "bundle digest", Err: err}
	}
	chunk := b[8+hlen:]
	switch {
	case !ValidID(h.ID):
		return nil, &FrameError{Offset: 8, Reason: "invalid id"}
	case h.Count < 1 || h.Count > MaxChunks:
		return nil, &FrameError{Offset: 8, Reason: "count " + strconv.Itoa(h.Count) + " outside 1.." + strconv.Itoa(MaxChunks)}
	case h.Index < 0 || h.Index >= h.Count:
		return nil, &FrameError{Offset: 8, Reason: "index " + strconv.Itoa(h.Index) + " outside 0..count-1"}
	case h.Size < 0 || h.Size > maxJSONInt:
		return nil, &FrameError{Offset: 8, Reason: "size out of range"}
	case int64(len(chunk)) > h.Size:
		return nil, &FrameError{Offset: 8 + int(hlen), Reason: "chunk larger than the bundle"}
	case h.Count == 1 && int64(len(chunk)) != h.Size:
		return nil, &FrameError{Offset: 8 + int(hlen), Reason: "single chunk is not the whole bundle"}
	case h.Count > 1 && len(chunk) == 0:
		return nil, &FrameError{Offset: 8 + int(hlen), Reason: "empty chunk"}
	case int64(h.Count) > max(h.Size, 1):
		return nil, &FrameError{Offset: 8, Reason: "more chunks than bytes"}
	}
	return &Frame{ID: h.ID, Digest: digest, Index: h.Index, Count: h.Count, Size: h.Size, Chunk: chunk}, nil
}
