//go:build cgo

package keystore

import (
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// The wrap key: no token at hand implements the HPKE KEM the archive's
// content keys use (ML-KEM-768+X25519), so a content private key cannot
// live in one. A token holds instead an AES-256 key (a secret key
// object, sensitive, never extractable) that encrypts each content
// private key at rest with CKM_AES_GCM; the archive opens it in memory
// when it starts. Reading the key files alone gives nothing without the
// token and its PIN.

// WrapIVSize is the AES-GCM nonce a wrapped value starts with.
const WrapIVSize = 12

const wrapTagBits = 128

// PKCS11WrapKey is an AES-256 key in a token that encrypts and decrypts
// small secrets (CKM_AES_GCM): the archive's content private keys at
// rest. Its methods are safe for concurrent use (one session, one
// operation at a time).
type PKCS11WrapKey struct {
	tokenSession
	key   pkcs11.ObjectHandle
	label string
}

// OpenPKCS11WrapKey logs in to the token and finds the AES key labelled
// with the URI's object.
func OpenPKCS11WrapKey(cfg PKCS11Config) (*PKCS11WrapKey, error) {
	p, sh, err := session(cfg)
	if err != nil {
		return nil, err
	}
	h, n, err := find(p, sh, pkcs11.CKO_SECRET_KEY, cfg.URI.Object)
	if err == nil && n != 1 {
		err = fmt.Errorf("%d secret keys with this label, want 1", n)
	}
	if err != nil {
		closeSession(p, sh)
		return nil, &PKCS11Error{Op: "find wrap key " + cfg.URI.Object, Err: err}
	}
	return &PKCS11WrapKey{tokenSession: tokenSession{ctx: p, sh: sh}, key: h, label: cfg.URI.Object}, nil
}

// GeneratePKCS11WrapKey creates a new AES-256 wrap key in the token (it
// never leaves it; a label in use is refused) and returns it opened.
func GeneratePKCS11WrapKey(cfg PKCS11Config) (*PKCS11WrapKey, error) {
	p, sh, err := session(cfg)
	if err != nil {
		return nil, err
	}
	label := cfg.URI.Object
	if _, n, err := find(p, sh, pkcs11.CKO_SECRET_KEY, label); err != nil || n > 0 {
		closeSession(p, sh)
		if err == nil {
			err = errors.New("the token has a key with this label already")
		}
		return nil, &PKCS11Error{Op: "create wrap key " + label, Err: err}
	}
	h, err := p.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, []byte(label)),
	})
	if err != nil {
		closeSession(p, sh)
		return nil, &PKCS11Error{Op: "create wrap key " + label, Err: err}
	}
	return &PKCS11WrapKey{tokenSession: tokenSession{ctx: p, sh: sh}, key: h, label: label}, nil
}

// Label is the wrap key's object label.
func (k *PKCS11WrapKey) Label() string { return k.label }

// Wrap encrypts plaintext in the token under aad (bound: Unwrap needs
// the same) and returns a fresh random IV followed by the ciphertext and
// its tag.
func (k *PKCS11WrapKey) Wrap(plaintext, aad []byte) ([]byte, error) {
	iv := make([]byte, WrapIVSize)
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	unlock, err := k.lock("wrap key")
	if err != nil {
		return nil, err
	}
	defer unlock()
	params := pkcs11.NewGCMParams(iv, aad, wrapTagBits)
	defer params.Free()
	if err := k.ctx.EncryptInit(k.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, k.key); err != nil {
		return nil, &PKCS11Error{Op: "wrap", Err: err}
	}
	ct, err := k.ctx.Encrypt(k.sh, plaintext)
	if err != nil {
		return nil, &PKCS11Error{Op: "wrap", Err: err}
	}
	// A token may choose the IV itself: keep the one it used.
	if used := params.IV(); len(used) == WrapIVSize {
		iv = used
	}
	return append(iv, ct...), nil
}

// ErrUnwrap is a wrapped value that does not decrypt under the wrap
// key: another key, another aad, or changed bytes.
var ErrUnwrap = errors.New("keystore: pkcs11: the wrapped value does not open with this wrap key (another key, another binding, or changed)")

// Unwrap decrypts what Wrap returned under the same aad in the token.
func (k *PKCS11WrapKey) Unwrap(wrapped, aad []byte) ([]byte, error) {
	if len(wrapped) < WrapIVSize+wrapTagBits/8 {
		return nil, ErrUnwrap
	}
	unlock, err := k.lock("wrap key")
	if err != nil {
		return nil, err
	}
	defer unlock()
	params := pkcs11.NewGCMParams(wrapped[:WrapIVSize], aad, wrapTagBits)
	defer params.Free()
	if err := k.ctx.DecryptInit(k.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, k.key); err != nil {
		return nil, &PKCS11Error{Op: "unwrap", Err: err}
	}
	pt, err := k.ctx.Decrypt(k.sh, wrapped[WrapIVSize:])
	if err != nil {
		if errors.Is(err, pkcs11.Error(pkcs11.CKR_ENCRYPTED_DATA_INVALID)) || errors.Is(err, pkcs11.Error(pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE)) {
			return nil, ErrUnwrap
		}
		return nil, &PKCS11Error{Op: "unwrap", Err: fmt.Errorf("%w (%w)", ErrUnwrap, err)}
	}
	return pt, nil
}
