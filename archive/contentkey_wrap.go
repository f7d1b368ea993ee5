package archive

import (
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/edgeseal/edgeseal/bundle/payloadcipher"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// Content private keys at rest. Without a wrapper each is the PEM file
// <seq>.key (0600). With Options.ContentKeyWrap (a key in a PKCS#11
// token: no token implements the content keys' HPKE KEM, so the HPKE
// private key itself cannot live in one) each new or restored key is
// written as <seq>.key.wrapped instead: its 32-byte private key
// encrypted by the wrapper, bound to the archive, the seq and the key
// id, opened in memory when the archive loads its content keys. A
// wrapped file is useless without the token and its PIN.

// ContentKeyWrapper encrypts content private keys at rest
// (keystore.PKCS11WrapKey: AES-256-GCM in a token). Wrap binds the value
// to aad; Unwrap needs the same aad.
type ContentKeyWrapper interface {
	Wrap(plaintext, aad []byte) ([]byte, error)
	Unwrap(wrapped, aad []byte) ([]byte, error)
}

// wrappedKeyPEM is the PEM type of a wrapped content private key.
const wrappedKeyPEM = "EDGESEAL WRAPPED CONTENT PRIVATE KEY"

// wrappedSuffix names a wrapped key file: <seq>.key.wrapped.
const wrappedSuffix = ".key.wrapped"

// ErrContentKeyWrapped is a wrapped content key file on an archive
// opened without its wrapper.
var ErrContentKeyWrapped = errors.New("archive: the content keys are wrapped by a token key: configure content_key_wrap (and pkcs11)")

// wrapAAD binds a wrapped key to its archive, seq and key id.
func wrapAAD(origin string, seq uint64, keyID string) []byte {
	return fmt.Appendf(nil, "edgeseal content key wrap v1\x00%s\x00%d\x00%s", origin, seq, keyID)
}

// writeContentKey writes content key seq of the archive origin into the
// folder d: wrapped by wrap when it is set, else as PEM; an existing
// file is refused.
func writeContentKey(d, origin string, seq uint64, k *payloadcipher.PrivateKey, wrap ContentKeyWrapper) error {
	base := filepath.Join(d, strconv.FormatUint(seq, 10))
	var out []byte
	path := base + ".key"
	if wrap == nil {
		pemb, err := k.MarshalPEM()
		if err != nil {
			return err
		}
		out = pemb
	} else {
		raw, err := k.Bytes()
		if err != nil {
			return err
		}
		w, err := wrap.Wrap(raw, wrapAAD(origin, seq, k.ID))
		if err != nil {
			return fmt.Errorf("archive: wrap content key %d: %w", seq, err)
		}
		out = pem.EncodeToMemory(&pem.Block{Type: wrappedKeyPEM, Headers: map[string]string{
			"Version": "1", "Key-Id": k.ID, "Seq": strconv.FormatUint(seq, 10), "Wrap": "AES-256-GCM (PKCS#11)",
		}, Bytes: w})
		path = base + wrappedSuffix
	}
	// One key per seq, wrapped or not.
	for _, p := range []string{base + ".key", base + wrappedSuffix} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("archive: content key %d: %s exists", seq, p)
		}
	}
	return fsutil.WriteNewFile(path, 0o600, func(w io.Writer) error { _, err := w.Write(out); return err })
}

// readContentKey reads content key seq from the file name in d (a
// <seq>.key, or a <seq>.key.wrapped opened with wrap).
func readContentKey(d, name, origin string, seq uint64, wrap ContentKeyWrapper) (*payloadcipher.PrivateKey, error) {
	b, err := fsutil.ReadLimited(filepath.Join(d, name), 8<<10)
	if err != nil {
		return nil, err
	}
	if filepath.Ext(name) == ".key" {
		return payloadcipher.ParsePrivateKey(b)
	}
	if wrap == nil {
		return nil, ErrContentKeyWrapped
	}
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != wrappedKeyPEM || len(rest) != 0 || blk.Headers["Version"] != "1" || blk.Headers["Seq"] != strconv.FormatUint(seq, 10) {
		return nil, fmt.Errorf("archive: %s is not a wrapped content key of seq %d", name, seq)
	}
	id := blk.Headers["Key-Id"]
	raw, err := wrap.Unwrap(blk.Bytes, wrapAAD(origin, seq, id))
	if err != nil {
		return nil, fmt.Errorf("archive: unwrap %s: %w", name, err)
	}
	k, err := payloadcipher.NewPrivateKey(raw)
	if err != nil {
		return nil, err
	}
	if k.ID != id {
		return nil, fmt.Errorf("archive: %s opened to key %s, its header says %s", name, k.ID, id)
	}
	return k, nil
}
