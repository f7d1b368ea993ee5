package signed

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/edgeseal/edgeseal/agent/policy"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// GenerateKey makes a policy-admin key: Ed25519 unless ecdsa is set (then
// ECDSA P-256). It returns the PKCS#8 PEM of the private key and the PKIX
// DER of the public key.
func GenerateKey(useECDSA bool) (privPEM, pubDER []byte, err error) {
	var priv crypto.Signer
	if useECDSA {
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	pubDER, err = x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), pubDER, nil
}

// WriteKey writes a new key to path (mode 0600, refusing to overwrite) and
// returns the admin entry for it, named name.
func WriteKey(path, name string, useECDSA bool) (Admin, error) {
	if !validName(name) {
		return Admin{}, &Error{What: "admins", Reason: fmt.Sprintf("name %.80q: want 1 to 64 of [A-Za-z0-9._@-]", name)}
	}
	priv, pub, err := GenerateKey(useECDSA)
	if err != nil {
		return Admin{}, err
	}
	if err := fsutil.WriteNewFile(path, 0o600, func(w io.Writer) error { _, err := w.Write(priv); return err }); err != nil {
		return Admin{}, err
	}
	return Admin{Name: name, PublicKey: pub}, nil
}

// Key is a policy-admin private key.
type Key struct {
	priv crypto.Signer
	id   string
}

// ReadKey reads a PKCS#8 PEM private key (ECDSA P-256 or Ed25519).
func ReadKey(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	k, err := ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("policy: %s: %w", path, err)
	}
	return k, nil
}

// ParseKey reads a PKCS#8 PEM private key (ECDSA P-256 or Ed25519).
func ParseKey(b []byte) (*Key, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("want a PKCS#8 PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("not a signing key")
	}
	pub, err := x509.MarshalPKIXPublicKey(s.Public())
	if err != nil {
		return nil, err
	}
	if _, err := parsePublic(pub); err != nil {
		return nil, err
	}
	return &Key{priv: s, id: KeyID(pub)}, nil
}

// KeyID is the key's id in signatures.
func (k *Key) KeyID() string { return k.id }

// PublicKey is the PKIX DER of the key's public half.
func (k *Key) PublicKey() []byte {
	b, _ := x509.MarshalPKIXPublicKey(k.priv.Public())
	return b
}

func (k *Key) sign(pae []byte) ([]byte, error) {
	if _, ok := k.priv.(ed25519.PrivateKey); ok {
		return k.priv.Sign(rand.Reader, pae, crypto.Hash(0))
	}
	sum := sha256.Sum256(pae)
	return k.priv.Sign(rand.Reader, sum[:], crypto.SHA256)
}

// Sign adds k's signature over payload to env (nil: a new envelope) and
// returns the canonical envelope. Signing the same payload twice with one
// key is refused, as is a payload that differs from env's.
func Sign(_ context.Context, env *dsse.Envelope, payload []byte, k *Key) ([]byte, error) {
	if _, _, err := ParseDocument(payload); err != nil {
		return nil, err
	}
	if env == nil {
		env = &dsse.Envelope{PayloadType: PayloadType, Payload: payload}
	}
	if env.PayloadType != PayloadType || string(env.Payload) != string(payload) {
		return nil, &Error{What: "envelope", Reason: "signs another payload"}
	}
	if slices.ContainsFunc(env.Signatures, func(s dsse.Signature) bool { return s.KeyID == k.id }) {
		return nil, &Error{What: "signatures", Reason: "already signed by key " + k.id}
	}
	if len(env.Signatures) >= dsse.MaxSignatures {
		return nil, &Error{What: "signatures", Reason: fmt.Sprintf("already %d signatures, the most an envelope carries", dsse.MaxSignatures)}
	}
	sig, err := k.sign(dsse.PAE(PayloadType, payload))
	if err != nil {
		return nil, fmt.Errorf("policy: sign: %w", err)
	}
	env.Signatures = append(env.Signatures, dsse.Signature{KeyID: k.id, Sig: sig})
	return env.Marshal()
}

// Signed is a verified signed policy.
type Signed struct {
	Envelope []byte // the canonical envelope, as journaled
	Payload  []byte
	Document *Document
	Policy   *policy.Policy
	Signers  []string // admin names whose signature verified, in envelope order
}

// ParseEnvelope reads a signed policy's envelope and its document without
// checking signatures.
func ParseEnvelope(b []byte) (*dsse.Envelope, *Document, *policy.Policy, error) {
	env, err := dsse.ParseEnvelope(b)
	if err != nil {
		return nil, nil, nil, &Error{What: "envelope", Reason: "not a canonical DSSE envelope", Err: err}
	}
	if env.PayloadType != PayloadType {
		return nil, nil, nil, &Error{What: "envelope", Reason: fmt.Sprintf("payload type %.80q, want %s", env.PayloadType, PayloadType)}
	}
	d, p, err := ParseDocument(env.Payload)
	if err != nil {
		return nil, nil, nil, err
	}
	return env, d, p, nil
}

// ThresholdError: fewer admins signed than the set's threshold.
type ThresholdError struct {
	Have, Want int
	Signers    []string
	// Unknown are the key ids of signatures by keys not in the admin set.
	Unknown []string
}

func (e *ThresholdError) Error() string {
	return fmt.Sprintf("policy: signed by %d of the %d admins required (signers %v)", e.Have, e.Want, e.Signers)
}

// DutiesError: a policy administrator is a principal of a workflow.
type DutiesError struct {
	Principal, Workflow string
}

func (e *DutiesError) Error() string {
	return fmt.Sprintf("policy: principal %q is a policy admin and may not export (workflow %q): separation of duties", e.Principal, e.Workflow)
}

// ErrUnsigned: the file is not a signed policy (e.g. a bare policy YAML).
var ErrUnsigned = errors.New("policy: not a signed policy")

// Verify reads a signed policy and checks it against admins: signatures
// by at least Threshold distinct admins (signatures by unknown keys or
// that do not verify are not counted), and no admin a workflow principal.
func Verify(b []byte, admins *Admins) (*Signed, error) {
	if len(b) == 0 || b[0] != '{' {
		return nil, ErrUnsigned
	}
	env, d, p, err := ParseEnvelope(b)
	if err != nil {
		return nil, err
	}
	if err := CheckDuties(p, admins); err != nil {
		return nil, err
	}
	pae := dsse.PAE(env.PayloadType, env.Payload)
	sum := sha256.Sum256(pae)
	var signers, unknown []string
	for _, s := range env.Signatures {
		pub, ok := admins.keys[s.KeyID]
		name := admins.name[s.KeyID]
		if !ok && !slices.Contains(unknown, s.KeyID) {
			unknown = append(unknown, s.KeyID)
		}
		if !ok || slices.Contains(signers, name) {
			continue
		}
		okSig := false
		switch pub := pub.(type) {
		case ed25519.PublicKey:
			okSig = ed25519.Verify(pub, pae, s.Sig)
		case *ecdsa.PublicKey:
			okSig = ecdsa.VerifyASN1(pub, sum[:], s.Sig)
		}
		if okSig {
			signers = append(signers, name)
		}
	}
	if len(signers) < admins.Threshold {
		return nil, &ThresholdError{Have: len(signers), Want: admins.Threshold, Signers: signers, Unknown: unknown}
	}
	return &Signed{Envelope: b, Payload: env.Payload, Document: d, Policy: p, Signers: signers}, nil
}

// CheckDuties refuses a policy that lists a policy admin among the
// principals of a workflow.
func CheckDuties(p *policy.Policy, admins *Admins) error {
	for _, name := range p.Workflows() {
		w, _ := p.Workflow(name)
		for _, pr := range w.Principals {
			if admins.Has(pr) {
				return &DutiesError{Principal: pr, Workflow: name}
			}
		}
	}
	return nil
}
