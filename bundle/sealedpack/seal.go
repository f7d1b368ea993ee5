package sealedpack

import (
	"bytes"
	"crypto/hpke"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
)

// Magic starts every sealed pack file.
const Magic = "edgeseal sealed pack v1\n"

// Sizes of the format.
const (
	// ChunkSize is the plaintext of every chunk but the final one.
	ChunkSize = 64 << 10
	// MaxPlaintext bounds what one file seals (4 GiB).
	MaxPlaintext = 1 << 32
	// infoSize is the header the HPKE info is: magic, suite, key id.
	infoSize = len(Magic) + 6 + 32
	// HeaderSize is the header with the encapsulated key.
	HeaderSize = infoSize + payloadcipher.EncSize
	maxChunks  = MaxPlaintext/ChunkSize + 1
)

// Chunk flags (the chunk's associated data).
const (
	flagMore  = 0x00
	flagFinal = 0x01
)

// ErrOpen is a sealed file that does not open: changed, cut short,
// extended, reordered, or sealed to another key.
var ErrOpen = errors.New("sealedpack: the sealed pack does not open: changed, cut short, extended or sealed to another key")

// FormatError is a sealed file that is not one.
type FormatError struct{ Reason string }

func (e *FormatError) Error() string { return "sealedpack: " + e.Reason }

// WrongKeyError is a file sealed to another auditor key than the one
// given.
type WrongKeyError struct{ Want, Got string }

func (e *WrongKeyError) Error() string {
	return fmt.Sprintf("sealedpack: sealed to auditor key %s, not %s", e.Want, e.Got)
}

func suite() (hpke.KDF, hpke.AEAD) { return hpke.HKDFSHA256(), hpke.AES256GCM() }

// header is the info part of the header for key id.
func header(keyID string) ([]byte, error) {
	h, ok := bytes.CutPrefix([]byte(keyID), []byte("sha256:"))
	raw := make([]byte, 32)
	if !ok || len(h) != 64 {
		return nil, fmt.Errorf("sealedpack: key id %.80q", keyID)
	}
	if _, err := hex.Decode(raw, h); err != nil {
		return nil, fmt.Errorf("sealedpack: key id %.80q", keyID)
	}
	b := make([]byte, 0, infoSize)
	b = append(b, Magic...)
	d := payloadcipher.Default
	b = binary.BigEndian.AppendUint16(b, d.KEM)
	b = binary.BigEndian.AppendUint16(b, d.KDF)
	b = binary.BigEndian.AppendUint16(b, d.AEAD)
	return append(b, raw...), nil
}

// Writer seals what is written to it; Close writes the final chunk.
type Writer struct {
	w    io.Writer
	s    *hpke.Sender
	buf  []byte
	n    int64
	err  error
	done bool
}

// NewWriter writes the header to w and returns the Writer of the pack's
// bytes, sealed to pub.
func NewWriter(w io.Writer, pub *PublicKey) (*Writer, error) {
	info, err := header(pub.ID)
	if err != nil {
		return nil, err
	}
	kdf, aead := suite()
	enc, s, err := hpke.NewSender(pub.k, kdf, aead, info)
	if err != nil {
		return nil, fmt.Errorf("sealedpack: seal: %w", err)
	}
	if _, err := w.Write(append(info, enc...)); err != nil {
		return nil, err
	}
	return &Writer{w: w, s: s, buf: make([]byte, 0, ChunkSize)}, nil
}

// Write seals p (in chunks of ChunkSize).
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done {
		return 0, errors.New("sealedpack: write after close")
	}
	if w.n+int64(len(p)) > MaxPlaintext {
		return 0, fmt.Errorf("sealedpack: more than %d bytes", int64(MaxPlaintext))
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), ChunkSize-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p, n = p[k:], n+k
		w.n += int64(k)
		if len(w.buf) == ChunkSize && len(p) > 0 {
			if w.err = w.chunk(flagMore); w.err != nil {
				return n, w.err
			}
		}
	}
	return n, nil
}

// Close seals the final chunk (what is buffered, maybe nothing). It does
// not close the underlying writer.
func (w *Writer) Close() error {
	if w.err != nil || w.done {
		return w.err
	}
	w.done = true
	w.err = w.chunk(flagFinal)
	return w.err
}

// chunk seals the buffer as one chunk. A full buffer is sealed as "more"
// only once more bytes follow, so the final chunk is never empty unless
// the whole plaintext is.
func (w *Writer) chunk(flag byte) error {
	ct, err := w.s.Seal([]byte{flag}, w.buf)
	if err != nil {
		return fmt.Errorf("sealedpack: seal: %w", err)
	}
	rec := make([]byte, 5, 5+len(ct))
	rec[0] = flag
	binary.BigEndian.PutUint32(rec[1:], uint32(len(ct)))
	if _, err := w.w.Write(append(rec, ct...)); err != nil {
		return err
	}
	w.buf = w.buf[:0]
	return nil
}

// Reader opens a sealed pack as it is read. Each chunk is authenticated
// before its bytes are returned; a file cut short or extended fails at
// its end (ErrOpen), so a caller keeps nothing until Read returned
// io.EOF.
type Reader struct {
	r      io.Reader
	rc     *hpke.Recipient
	out    []byte
	chunks int
	final  bool
	err    error
}

// NewReader reads the header of a sealed pack from r and returns the
// Reader of its plaintext for priv: a *FormatError for a header that is
// not one, a *payloadcipher.SuiteError for an unknown suite, a
// *WrongKeyError for a file sealed to another key.
func NewReader(r io.Reader, priv *PrivateKey) (*Reader, error) {
	h := make([]byte, HeaderSize)
	if _, err := io.ReadFull(r, h); err != nil {
		return nil, &FormatError{Reason: "shorter than its header"}
	}
	if string(h[:len(Magic)]) != Magic {
		return nil, &FormatError{Reason: "not a sealed evidence pack (magic)"}
	}
	s := h[len(Magic):]
	got := payloadcipher.Suite{KEM: binary.BigEndian.Uint16(s), KDF: binary.BigEndian.Uint16(s[2:]), AEAD: binary.BigEndian.Uint16(s[4:])}
	if !got.Known() {
		return nil, &payloadcipher.SuiteError{Suite: got}
	}
	id := "sha256:" + hex.EncodeToString(h[len(Magic)+6:infoSize])
	if id != priv.ID {
		return nil, &WrongKeyError{Want: id, Got: priv.ID}
	}
	kdf, aead := suite()
	rc, err := hpke.NewRecipient(h[infoSize:], priv.k, kdf, aead, h[:infoSize])
	if err != nil {
		return nil, ErrOpen
	}
	return &Reader{r: r, rc: rc}, nil
}

// Read returns the plaintext.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.err = r.next()
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

// next opens the next chunk; io.EOF after the final one, when the file
// ends there.
func (r *Reader) next() error {
	if r.final {
		var one [1]byte
		if n, _ := io.ReadFull(r.r, one[:]); n != 0 {
			return ErrOpen // bytes after the final chunk
		}
		return io.EOF
	}
	var h [5]byte
	if _, err := io.ReadFull(r.r, h[:]); err != nil {
		return ErrOpen // cut short: no final chunk
	}
	flag, n := h[0], binary.BigEndian.Uint32(h[1:])
	switch {
	case flag != flagMore && flag != flagFinal:
		return &FormatError{Reason: fmt.Sprintf("chunk %d: flag %d", r.chunks, flag)}
	case flag == flagMore && n != ChunkSize+payloadcipher.TagSize:
		return &FormatError{Reason: fmt.Sprintf("chunk %d: %d bytes, a chunk before the last is %d", r.chunks, n, ChunkSize+payloadcipher.TagSize)}
	case n < payloadcipher.TagSize || n > ChunkSize+payloadcipher.TagSize:
		return &FormatError{Reason: fmt.Sprintf("chunk %d: %d bytes", r.chunks, n)}
	case r.chunks >= maxChunks:
		return &FormatError{Reason: fmt.Sprintf("more than %d chunks", maxChunks)}
	}
	ct := make([]byte, n)
	if _, err := io.ReadFull(r.r, ct); err != nil {
		return ErrOpen
	}
	pt, err := r.rc.Open([]byte{flag}, ct)
	if err != nil {
		return ErrOpen
	}
	r.chunks++
	r.final = flag == flagFinal
	r.out = pt
	if r.final && len(pt) == 0 {
		return r.next()
	}
	return nil
}

// Seal returns plaintext sealed to pub.
func Seal(pub *PublicKey, plaintext []byte) ([]byte, error) {
	var b bytes.Buffer
	w, err := NewWriter(&b, pub)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plaintext); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Open returns the plaintext of a sealed file, at most max bytes.
func Open(priv *PrivateKey, sealed []byte, max int64) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(sealed), priv)
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(out)) > max {
		return nil, &FormatError{Reason: fmt.Sprintf("more than %d bytes of plaintext", max)}
	}
	return out, nil
}
