package recovery

import (
	"bytes"
	"crypto/hpke"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/edgeseal/edgeseal/internal/hpkekey"
)

// WrapVersion is the only version of the wrap file this package reads.
const WrapVersion = 1

// FileName is the wrap's file in the TPM state directory, beside the
// sealed blob (data-key.json).
const FileName = "data-key.recovery.json"

// DataKeySize is the size of the data key a wrap carries.
const DataKeySize = 32

// Sizes of the HPKE encapsulated key and ciphertext for Suite and a
// 32-byte data key.
const (
	encSize        = 1120
	ciphertextSize = DataKeySize + 16
	maxWrapFile    = 8 << 10
	maxDevice      = 256
)

// infoPrefix starts the HPKE info; the device name follows a zero byte.
const infoPrefix = "edgeseal data key recovery v1"

// Wrap is the data key of one device encrypted to a recovery public key:
// the file FileName.
type Wrap struct {
	V             int    `json:"v"`
	Suite         string `json:"suite"`
	Device        string `json:"device"`        // "<site>/<name>", bound as HPKE info
	RecoveryKeyID string `json:"recoveryKeyId"` // KeyID of the public key, bound as AEAD aad
	Enc           []byte `json:"enc"`           // HPKE encapsulated key
	Ciphertext    []byte `json:"ciphertext"`    // AES-256-GCM of the data key
}

// ErrOpen is a wrap that does not decrypt under the right key id: its
// ciphertext, encapsulated key, device or key id were changed, or the
// private key file does not hold the key its id names.
var ErrOpen = errors.New("recovery: the wrap does not decrypt: tampered, or not made for this device and key")

// WrongKeyError is a wrap made for another recovery key than the one given.
type WrongKeyError struct{ Want, Got string }

func (e *WrongKeyError) Error() string {
	return fmt.Sprintf("recovery: the wrap is for recovery key %s, not %s", e.Want, e.Got)
}

// FormatError is a key file or wrap that is malformed.
type FormatError struct {
	What, Reason string
	Err          error
}

func (e *FormatError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("recovery: %s: %s: %v", e.What, e.Reason, e.Err)
	}
	return fmt.Sprintf("recovery: %s: %s", e.What, e.Reason)
}

func (e *FormatError) Unwrap() error { return e.Err }

func info(device string) []byte { return []byte(infoPrefix + "\x00" + device) }

// Seal wraps dataKey (DataKeySize bytes) for device to pub.
func Seal(pub *PublicKey, device string, dataKey []byte) (*Wrap, error) {
	if len(dataKey) != DataKeySize {
		return nil, fmt.Errorf("recovery: seal: data key of %d bytes, want %d", len(dataKey), DataKeySize)
	}
	if err := checkDevice(device); err != nil {
		return nil, fmt.Errorf("recovery: seal: %w", err)
	}
	enc, s, err := hpke.NewSender(pub.HPKE(), kdf(), aead(), info(device))
	if err != nil {
		return nil, fmt.Errorf("recovery: seal: %w", err)
	}
	ct, err := s.Seal([]byte(pub.ID), dataKey)
	if err != nil {
		return nil, fmt.Errorf("recovery: seal: %w", err)
	}
	return &Wrap{V: WrapVersion, Suite: Suite, Device: device, RecoveryKeyID: pub.ID, Enc: enc, Ciphertext: ct}, nil
}

// Open decrypts the data key with the recovery private key: a
// *WrongKeyError when the wrap names another key, ErrOpen when it does
// not decrypt.
func (w *Wrap) Open(priv *PrivateKey) ([]byte, error) {
	if err := w.check(); err != nil {
		return nil, err
	}
	if w.RecoveryKeyID != priv.ID {
		return nil, &WrongKeyError{Want: w.RecoveryKeyID, Got: priv.ID}
	}
	r, err := hpke.NewRecipient(w.Enc, priv.HPKE(), kdf(), aead(), info(w.Device))
	if err != nil {
		return nil, ErrOpen
	}
	key, err := r.Open([]byte(w.RecoveryKeyID), w.Ciphertext)
	if err != nil || len(key) != DataKeySize {
		return nil, ErrOpen
	}
	return key, nil
}

// Marshal writes the wrap file: indented JSON and a newline.
func (w *Wrap) Marshal() ([]byte, error) {
	if err := w.check(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(w, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("recovery: wrap: %w", err)
	}
	return append(b, '\n'), nil
}

// Parse reads a wrap file strictly: at most 8 KiB, the fields of Wrap
// and no others, each once and in order (the compact form of the file is
// the compact form of its Marshal), version WrapVersion, suite Suite,
// sizes of the suite.
func Parse(b []byte) (*Wrap, error) {
	bad := func(reason string, err error) error { return &FormatError{What: "wrap", Reason: reason, Err: err} }
	if len(b) > maxWrapFile {
		return nil, bad(fmt.Sprintf("file of %d bytes, at most %d", len(b), maxWrapFile), nil)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var w Wrap
	if err := dec.Decode(&w); err != nil {
		return nil, bad("decode", err)
	}
	if dec.More() {
		return nil, bad("data after the object", nil)
	}
	if err := w.check(); err != nil {
		return nil, err
	}
	var in, canon bytes.Buffer
	if err := json.Compact(&in, b); err != nil {
		return nil, bad("decode", err)
	}
	m, _ := json.Marshal(&w)
	if err := json.Compact(&canon, m); err != nil || !bytes.Equal(in.Bytes(), canon.Bytes()) {
		return nil, bad("not in canonical form (a field repeated, reordered or missing)", nil)
	}
	return &w, nil
}

func (w *Wrap) check() error {
	bad := func(format string, args ...any) error {
		return &FormatError{What: "wrap", Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case w.V != WrapVersion:
		return bad("version %d, want %d", w.V, WrapVersion)
	case w.Suite != Suite:
		return bad("suite %.80q, want %s", w.Suite, Suite)
	case !hpkekey.ValidKeyID(w.RecoveryKeyID):
		return bad("recoveryKeyId %.80q is not sha256:<64 hex>", w.RecoveryKeyID)
	case len(w.Enc) != encSize:
		return bad("enc of %d bytes, want %d", len(w.Enc), encSize)
	case len(w.Ciphertext) != ciphertextSize:
		return bad("ciphertext of %d bytes, want %d", len(w.Ciphertext), ciphertextSize)
	}
	if err := checkDevice(w.Device); err != nil {
		return &FormatError{What: "wrap", Reason: err.Error()}
	}
	return nil
}

func checkDevice(d string) error {
	site, name, ok := strings.Cut(d, "/")
	if !ok || site == "" || name == "" || strings.Contains(name, "/") || len(d) > maxDevice || !utf8.ValidString(d) ||
		strings.IndexFunc(d, unicode.IsControl) >= 0 {
		return fmt.Errorf("device %.80q is not <site>/<name>", d)
	}
	return nil
}
