package signed

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// AdminsVersion is the only admin set version.
const AdminsVersion = 1

// MaxAdmins bounds an admin set; a policy carries at most
// dsse.MaxSignatures signatures, so a threshold is at most that.
const MaxAdmins = 32

// Admin is one policy administrator: a name (principal names share its
// syntax) and a public key, the base64 of its PKIX (SubjectPublicKeyInfo)
// DER: ECDSA P-256 or Ed25519.
type Admin struct {
	Name      string `json:"name"`
	PublicKey []byte `json:"publicKey"`
}

// Admins is the set of policy administrators and the number of them that
// must sign a policy.
type Admins struct {
	Version   int     `json:"version"`
	Threshold int     `json:"threshold"` // m of n; 0 reads as 1
	Admins    []Admin `json:"admins"`

	keys map[string]crypto.PublicKey // key id -> key
	name map[string]string           // key id -> admin name
}

// KeyID is the key id of a public key in signatures: "sha256:" and the
// lowercase hex SHA-256 of its PKIX DER.
func KeyID(pkix []byte) string {
	s := sha256.Sum256(pkix)
	return "sha256:" + hex.EncodeToString(s[:])
}

// ParseAdmins reads an admin set (JSON, unknown fields refused) and checks
// it: version 1, 1 to MaxAdmins admins with distinct names and keys, a
// threshold from 1 to min(n, dsse.MaxSignatures).
func ParseAdmins(b []byte) (*Admins, error) {
	if len(b) > 1<<20 {
		return nil, &Error{What: "admins", Reason: "larger than 1 MiB"}
	}
	var a Admins
	if err := unmarshalStrict(b, &a); err != nil {
		return nil, &Error{What: "admins", Reason: "decode", Err: err}
	}
	if err := a.init(); err != nil {
		return nil, err
	}
	return &a, nil
}

// ReadAdmins reads the admin set file at path.
func ReadAdmins(path string) (*Admins, error) {
	b, err := fsutil.ReadRegular(path, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("policy admins: %w", err)
	}
	return ParseAdmins(b)
}

func (a *Admins) init() error {
	bad := func(format string, args ...any) error {
		return &Error{What: "admins", Reason: fmt.Sprintf(format, args...)}
	}
	if a.Version != AdminsVersion {
		return bad("version: want %d, got %d", AdminsVersion, a.Version)
	}
	if len(a.Admins) == 0 || len(a.Admins) > MaxAdmins {
		return bad("want 1 to %d admins, got %d", MaxAdmins, len(a.Admins))
	}
	if a.Threshold == 0 {
		a.Threshold = 1
	}
	if a.Threshold < 1 || a.Threshold > len(a.Admins) || a.Threshold > dsse.MaxSignatures {
		return bad("threshold %d: want 1 to min(admins %d, %d)", a.Threshold, len(a.Admins), dsse.MaxSignatures)
	}
	a.keys, a.name = map[string]crypto.PublicKey{}, map[string]string{}
	names := map[string]bool{}
	for i, ad := range a.Admins {
		if !validName(ad.Name) {
			return bad("admins[%d].name: want 1 to 64 of [A-Za-z0-9._@-], got %.80q", i, ad.Name)
		}
		if names[ad.Name] {
			return bad("admin %q listed twice", ad.Name)
		}
		names[ad.Name] = true
		pub, err := parsePublic(ad.PublicKey)
		if err != nil {
			return bad("admin %q: %v", ad.Name, err)
		}
		id := KeyID(ad.PublicKey)
		if _, dup := a.keys[id]; dup {
			return bad("admin %q: key listed twice", ad.Name)
		}
		a.keys[id], a.name[id] = pub, ad.Name
	}
	return nil
}

// Names are the admins' names, in file order.
func (a *Admins) Names() []string {
	n := make([]string, len(a.Admins))
	for i, ad := range a.Admins {
		n[i] = ad.Name
	}
	return n
}

// Has reports whether name is an admin's name.
func (a *Admins) Has(name string) bool {
	return slices.ContainsFunc(a.Admins, func(ad Admin) bool { return ad.Name == name })
}

// Marshal returns the canonical JSON of the set (as journaled).
func (a *Admins) Marshal() ([]byte, error) { return canonical(a) }

// Digest is "sha256:<hex>" of Marshal.
func (a *Admins) Digest() string {
	b, _ := a.Marshal()
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func parsePublic(der []byte) (crypto.PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	switch k := k.(type) {
	case ed25519.PublicKey:
		return k, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA key not on P-256")
		}
		return k, nil
	}
	return nil, fmt.Errorf("want an ECDSA P-256 or Ed25519 key, got %T", k)
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == '-' || c == '@') {
			return false
		}
	}
	return true
}
