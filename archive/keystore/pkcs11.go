//go:build cgo

package keystore

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	gosync "sync"

	"github.com/miekg/pkcs11"
)

// PKCS#11 3.0 names the binding's 2.40 headers lack.
const (
	ckkECEdwards           = 0x00000040
	ckmECEdwardsKeyPairGen = 0x00001055
	ckmEdDSA               = 0x00001057
)

// ed25519Params is CKA_EC_PARAMS of Ed25519: the DER of OID 1.3.101.112.
var ed25519Params = []byte{0x06, 0x03, 0x2b, 0x65, 0x70}

// PKCS11Config names a key in a token.
type PKCS11Config struct {
	Module string // the vendor's PKCS#11 library (softhsm2: /usr/lib/softhsm/libsofthsm2.so)
	URI    URI
	PIN    string // the user PIN (ReadPIN)
}

// PKCS11Key is an Ed25519 key in a token, a crypto.Signer (CKM_EDDSA) for
// receipts, rejections and checkpoints. Its methods are safe for
// concurrent use (one session, signing one at a time).
type PKCS11Key struct {
	tokenSession
	priv pkcs11.ObjectHandle
	pub  ed25519.PublicKey
}

// tokenSession is the logged-in session of a token that one key uses,
// one operation at a time.
type tokenSession struct {
	mu  gosync.Mutex
	ctx *pkcs11.Ctx
	sh  pkcs11.SessionHandle
}

// lock locks the session for one operation of the key named what, and
// fails once the session is closed.
func (s *tokenSession) lock(what string) (unlock func(), err error) {
	s.mu.Lock()
	if s.ctx == nil {
		s.mu.Unlock()
		return nil, errors.New("keystore: pkcs11: " + what + " closed")
	}
	return s.mu.Unlock, nil
}

// Close logs out and unloads the module.
func (s *tokenSession) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx != nil {
		closeSession(s.ctx, s.sh)
		s.ctx = nil
	}
	return nil
}

// PKCS11Error is a token operation that failed.
type PKCS11Error struct {
	Op  string
	Err error
}

func (e *PKCS11Error) Error() string { return "keystore: pkcs11: " + e.Op + ": " + e.Err.Error() }
func (e *PKCS11Error) Unwrap() error { return e.Err }

// session opens a logged-in read-write session on the token cfg names.
func session(cfg PKCS11Config) (*pkcs11.Ctx, pkcs11.SessionHandle, error) {
	if cfg.Module == "" {
		return nil, 0, errors.New("keystore: pkcs11: no module configured")
	}
	p := pkcs11.New(cfg.Module)
	if p == nil {
		return nil, 0, &PKCS11Error{Op: "load module " + cfg.Module, Err: errors.New("cannot load the library")}
	}
	fail := func(op string, err error) (*pkcs11.Ctx, pkcs11.SessionHandle, error) {
		p.Finalize()
		p.Destroy()
		return nil, 0, &PKCS11Error{Op: op, Err: err}
	}
	if err := p.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		p.Destroy()
		return nil, 0, &PKCS11Error{Op: "initialize", Err: err}
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		return fail("slots", err)
	}
	found := false
	var slot uint
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err == nil && ti.Label == cfg.URI.Token {
			slot, found = s, true
			break
		}
	}
	if !found {
		return fail("token "+cfg.URI.Token, errors.New("no token with this label"))
	}
	sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return fail("open session", err)
	}
	if err := p.Login(sh, pkcs11.CKU_USER, cfg.PIN); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
		p.CloseSession(sh)
		return fail("login to token "+cfg.URI.Token, err)
	}
	return p, sh, nil
}

func closeSession(p *pkcs11.Ctx, sh pkcs11.SessionHandle) {
	_ = p.Logout(sh)
	_ = p.CloseSession(sh)
	_ = p.Finalize()
	p.Destroy()
}

// find returns the one object of class with the label.
func find(p *pkcs11.Ctx, sh pkcs11.SessionHandle, class uint, label string) (pkcs11.ObjectHandle, int, error) {
	if err := p.FindObjectsInit(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, class), pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}); err != nil {
		return 0, 0, err
	}
	objs, _, err := p.FindObjects(sh, 2)
	if ferr := p.FindObjectsFinal(sh); err == nil {
		err = ferr
	}
	if err != nil || len(objs) == 0 {
		return 0, 0, err
	}
	return objs[0], len(objs), nil
}

// OpenPKCS11 logs in to the token and finds the Ed25519 private key and
// its public key (both labelled with the URI's object).
func OpenPKCS11(cfg PKCS11Config) (*PKCS11Key, error) {
	p, sh, err := session(cfg)
	if err != nil {
		return nil, err
	}
	k, err := openKey(p, sh, cfg.URI.Object)
	if err != nil {
		closeSession(p, sh)
		return nil, err
	}
	return k, nil
}

func openKey(p *pkcs11.Ctx, sh pkcs11.SessionHandle, label string) (*PKCS11Key, error) {
	priv, n, err := find(p, sh, pkcs11.CKO_PRIVATE_KEY, label)
	if err != nil {
		return nil, &PKCS11Error{Op: "find private key " + label, Err: err}
	}
	if n != 1 {
		return nil, &PKCS11Error{Op: "find private key " + label, Err: fmt.Errorf("%d private keys with this label, want 1", n)}
	}
	pubH, n, err := find(p, sh, pkcs11.CKO_PUBLIC_KEY, label)
	if err != nil || n != 1 {
		return nil, &PKCS11Error{Op: "find public key " + label, Err: fmt.Errorf("%d public keys with this label, want 1 (%v)", n, err)}
	}
	attrs, err := p.GetAttributeValue(sh, pubH, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil), pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil),
	})
	if err != nil {
		return nil, &PKCS11Error{Op: "read public key " + label, Err: err}
	}
	if kt := attrs[0].Value; len(kt) == 0 || !bytes.Equal(kt, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards).Value) {
		return nil, &PKCS11Error{Op: "public key " + label, Err: errors.New("not an Edwards-curve (Ed25519) key")}
	}
	pub, err := ecPoint(attrs[1].Value)
	if err != nil {
		return nil, &PKCS11Error{Op: "public key " + label, Err: err}
	}
	return &PKCS11Key{tokenSession: tokenSession{ctx: p, sh: sh}, priv: priv, pub: pub}, nil
}

// ecPoint reads CKA_EC_POINT of an Ed25519 key: the DER OCTET STRING of
// the 32 bytes, or the bytes themselves.
func ecPoint(b []byte) (ed25519.PublicKey, error) {
	if len(b) == ed25519.PublicKeySize+2 && b[0] == 0x04 && b[1] == ed25519.PublicKeySize {
		b = b[2:]
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("EC point of %d bytes, want an Ed25519 key", len(b))
	}
	return ed25519.PublicKey(bytes.Clone(b)), nil
}

// Public returns the Ed25519 public key.
func (k *PKCS11Key) Public() crypto.PublicKey { return k.pub }

// Sign signs msg itself (Ed25519, opts.HashFunc() must be 0) in the token.
func (k *PKCS11Key) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts != nil && opts.HashFunc() != 0 {
		return nil, errors.New("keystore: pkcs11: Ed25519 signs the message itself, not a digest")
	}
	unlock, err := k.lock("key")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := k.ctx.SignInit(k.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmEdDSA, nil)}, k.priv); err != nil {
		return nil, &PKCS11Error{Op: "sign", Err: err}
	}
	sig, err := k.ctx.Sign(k.sh, msg)
	if err != nil {
		return nil, &PKCS11Error{Op: "sign", Err: err}
	}
	if !ed25519.Verify(k.pub, msg, sig) {
		return nil, &PKCS11Error{Op: "sign", Err: errors.New("the token's signature does not verify under its public key")}
	}
	return sig, nil
}

// keyTemplate is the public and private key templates of an Ed25519
// key labelled label: token objects, the private one sensitive, not
// extractable, for signing only.
func keyTemplate(label string) (pub, priv []*pkcs11.Attribute) {
	id := []byte(label)
	pub = []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, ed25519Params),
	}
	priv = []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
	return pub, priv
}

// errExists refuses to create a key over an existing label.
func checkFree(p *pkcs11.Ctx, sh pkcs11.SessionHandle, label string) error {
	for _, class := range []uint{pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_PUBLIC_KEY} {
		_, n, err := find(p, sh, class, label)
		if err != nil {
			return &PKCS11Error{Op: "find " + label, Err: err}
		}
		if n > 0 {
			return &PKCS11Error{Op: "create " + label, Err: errors.New("the token has a key with this label already")}
		}
	}
	return nil
}

// GeneratePKCS11 creates a new Ed25519 key in the token (it never leaves
// it) and returns it opened.
func GeneratePKCS11(cfg PKCS11Config) (*PKCS11Key, error) {
	return createKey(cfg, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) error {
		pub, priv := keyTemplate(cfg.URI.Object)
		_, _, err := p.GenerateKeyPair(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmECEdwardsKeyPairGen, nil)}, pub, priv)
		return err
	})
}

// ImportPKCS11 copies key into the token (moving a file key into an HSM
// without changing the archive's key) and returns it opened.
func ImportPKCS11(cfg PKCS11Config, key ed25519.PrivateKey) (*PKCS11Key, error) {
	return createKey(cfg, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) error {
		pub, priv := keyTemplate(cfg.URI.Object)
		pub = append(pub, pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, append([]byte{0x04, ed25519.PublicKeySize}, key.Public().(ed25519.PublicKey)...)))
		priv = append(priv, pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, ed25519Params), pkcs11.NewAttribute(pkcs11.CKA_VALUE, key.Seed()))
		if _, err := p.CreateObject(sh, priv); err != nil {
			return err
		}
		_, err := p.CreateObject(sh, pub)
		return err
	})
}

func createKey(cfg PKCS11Config, create func(*pkcs11.Ctx, pkcs11.SessionHandle) error) (*PKCS11Key, error) {
	p, sh, err := session(cfg)
	if err != nil {
		return nil, err
	}
	if err := checkFree(p, sh, cfg.URI.Object); err != nil {
		closeSession(p, sh)
		return nil, err
	}
	if err := create(p, sh); err != nil {
		closeSession(p, sh)
		return nil, &PKCS11Error{Op: "create key " + cfg.URI.Object, Err: err}
	}
	k, err := openKey(p, sh, cfg.URI.Object)
	if err != nil {
		closeSession(p, sh)
		return nil, err
	}
	return k, nil
}
