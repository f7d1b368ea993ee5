package payloadcipher

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hpke"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Version 2 (docs/formats.md, "Payload encryption"): one HPKE base-mode
// context per window, its encapsulated key shared by every payload of
// the window; each payload's AES-256-GCM key is exported from the
// context under ExporterContext, so it is bound to its record as
// version 1's info is.

// WindowInfo is the HPKE info of every version 2 window context.
const WindowInfo = "edgeseal payload v2 window"

// ExporterPrefix starts the exporter context of every version 2 payload.
const ExporterPrefix = "edgeseal payload v2"

// KeySize is the size of a version 2 payload key (AES-256).
const KeySize = 32

// Window bounds the agent seals with by default: a window ends after
// DefaultWindowPayloads payloads or DefaultWindowAge, or when the
// content key changes, whichever comes first.
const (
	DefaultWindowPayloads = 1024
	DefaultWindowAge      = time.Hour
)

// zeroNonce is the GCM nonce of every version 2 payload: each payload
// key encrypts one plaintext only (see ExporterContext).
var zeroNonce [12]byte

// ExporterContext is the HPKE exporter context of a version 2 payload:
// ExporterPrefix, 0x00, the device name, 0x00, and the 32 raw bytes of
// SHA-256 of the record's bound body (as Info). The bound body names
// the plaintext's digest and size, so a payload key encrypts one
// plaintext only, and a ciphertext moved to another record, device or
// suite does not open.
func ExporterContext(device string, boundBody []byte) []byte {
	sum := sha256.Sum256(boundBody)
	b := make([]byte, 0, len(ExporterPrefix)+len(device)+2+len(sum))
	b = append(b, ExporterPrefix...)
	b = append(b, 0)
	b = append(b, device...)
	b = append(b, 0)
	return append(b, sum[:]...)
}

// Sealer seals version 2 payloads, opening a new window (one HPKE
// encapsulation) when the content key changes, when the window has
// sealed its maximum of payloads or when it is older than its maximum
// age. It is safe for concurrent use. The window's secret lives in
// memory only: a restart opens a new window.
type Sealer struct {
	maxN   int
	maxAge time.Duration
	now    func() time.Time

	mu     sync.Mutex
	keyID  string
	enc    []byte
	sender *hpke.Sender
	head   []byte // SHA-256 state after enc's whole blocks (encHead)
	n      int
	start  time.Time
}

// encHead is how much of a window's enc every ciphertext file's digest
// starts with in whole SHA-256 blocks: hashed once per window, its state
// resumed for each file.
const encHead = EncSize / sha256.BlockSize * sha256.BlockSize

// NewSealer returns a Sealer whose windows end after maxPayloads
// payloads or maxAge (defaults when not positive); now is the clock
// (time.Now when nil).
func NewSealer(maxPayloads int, maxAge time.Duration, now func() time.Time) *Sealer {
	if maxPayloads <= 0 {
		maxPayloads = DefaultWindowPayloads
	}
	if maxAge <= 0 {
		maxAge = DefaultWindowAge
	}
	if now == nil {
		now = time.Now
	}
	return &Sealer{maxN: maxPayloads, maxAge: maxAge, now: now}
}

// window returns the window the next payload to pub is sealed in,
// opening a new one when the current one has ended.
func (s *Sealer) window(pub *PublicKey) ([]byte, *hpke.Sender, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.sender == nil || s.keyID != pub.ID || s.n >= s.maxN || now.Sub(s.start) >= s.maxAge || now.Before(s.start) {
		_, kdf, aead, err := Default.parts()
		if err != nil {
			return nil, nil, nil, err
		}
		enc, sender, err := hpke.NewSender(pub.HPKE(), kdf, aead, []byte(WindowInfo))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("payloadcipher: seal: %w", err)
		}
		if len(enc) != EncSize {
			return nil, nil, nil, fmt.Errorf("payloadcipher: seal: encapsulated key of %d bytes, want %d", len(enc), EncSize)
		}
		h := sha256.New()
		h.Write(enc[:encHead])
		head, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			return nil, nil, nil, fmt.Errorf("payloadcipher: seal: %w", err)
		}
		s.keyID, s.enc, s.sender, s.head, s.n, s.start = pub.ID, enc, sender, head, 0, now
	}
	s.n++
	return s.enc, s.sender, s.head, nil
}

// Seal encrypts plaintext to pub as version 2 under exporterContext
// (ExporterContext) in the current window and returns the ciphertext
// file (the window's enc ‖ AES-256-GCM ciphertext) and the record's
// Cipher member.
func (s *Sealer) Seal(pub *PublicKey, exporterContext, plaintext []byte) ([]byte, Cipher, error) {
	if len(plaintext) > MaxPlaintext {
		return nil, Cipher{}, fmt.Errorf("payloadcipher: seal: %d bytes, at most %d", len(plaintext), MaxPlaintext)
	}
	enc, sender, head, err := s.window(pub)
	if err != nil {
		return nil, Cipher{}, err
	}
	key, err := sender.Export(string(exporterContext), KeySize)
	if err != nil {
		return nil, Cipher{}, fmt.Errorf("payloadcipher: seal: %w", err)
	}
	g, err := payloadAEAD(key)
	if err != nil {
		return nil, Cipher{}, err
	}
	file := make([]byte, EncSize, EncSize+len(plaintext)+TagSize)
	copy(file, enc)
	file = g.Seal(file, zeroNonce[:], plaintext, nil)
	d, err := resumeDigest(head, file[encHead:])
	if err != nil {
		return nil, Cipher{}, err
	}
	return file, Cipher{KEM: int(Default.KEM), KDF: int(Default.KDF), AEAD: int(Default.AEAD), KeyID: pub.ID, Digest: d, V: V2}, nil
}

// resumeDigest is Digest of a file whose first encHead bytes left
// SHA-256 in state head (the window's enc) and whose rest is tail.
func resumeDigest(head, tail []byte) (string, error) {
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(head); err != nil {
		return "", fmt.Errorf("payloadcipher: seal: %w", err)
	}
	h.Write(tail)
	var sum [sha256.Size]byte
	var hx [2 * sha256.Size]byte
	hex.Encode(hx[:], h.Sum(sum[:0]))
	var b strings.Builder
	b.Grow(len(digestPrefix) + len(hx))
	b.WriteString(digestPrefix)
	b.Write(hx[:])
	return b.String(), nil
}

func payloadAEAD(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("payloadcipher: %w", err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("payloadcipher: %w", err)
	}
	return g, nil
}

// OpenRecord checks file against c (CheckFile) and decrypts it with priv
// for the record of device whose bound body is boundBody, by the version
// c names: version 1 under Info, version 2 under ExporterContext, its
// window's context taken from o (nil: decapsulated afresh). Errors as
// Open's, and a *VersionError for an unknown version.
func OpenRecord(priv *PrivateKey, c *Cipher, device string, boundBody, file []byte, o *Opener) ([]byte, error) {
	if c.Version() == V1 {
		return Open(priv, c, Info(device, boundBody), file)
	}
	return OpenV2(priv, c, ExporterContext(device, boundBody), file, o)
}

// OpenV2 checks file against c, a version 2 Cipher, and decrypts it with
// priv under exporterContext (ExporterContext), the window's recipient
// context taken from o (nil: decapsulated afresh).
func OpenV2(priv *PrivateKey, c *Cipher, exporterContext, file []byte, o *Opener) ([]byte, error) {
	if err := CheckFile(c, file); err != nil {
		return nil, err
	}
	if c.Version() != V2 {
		return nil, &VersionError{V: c.Version()}
	}
	if c.KeyID != priv.ID {
		return nil, &WrongKeyError{Want: c.KeyID, Got: priv.ID}
	}
	enc, ct, err := Split(c.Suite(), file)
	if err != nil {
		return nil, err
	}
	r, err := o.recipient(priv, enc)
	if err != nil {
		return nil, ErrOpen
	}
	key, err := r.Export(string(exporterContext), KeySize)
	if err != nil {
		return nil, ErrOpen
	}
	g, err := payloadAEAD(key)
	if err != nil {
		return nil, err
	}
	pt, err := g.Open(nil, zeroNonce[:], ct, nil)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}
