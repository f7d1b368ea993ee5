package config

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"slices"
)

// Role is what a principal may do on the local API.
type Role string

// The roles. They are independent: operator does not imply auditor.
const (
	RoleExporter Role = "exporter" // post exports, for the workflows the policy lists it under
	RoleAuditor  Role = "auditor"  // read-only: export status, checkpoint, proofs
	RoleOperator Role = "operator" // status, seal now
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	return r == RoleExporter || r == RoleAuditor || r == RoleOperator
}

// Principal is a caller of the local API, known by the SHA-256 of its
// bearer token.
type Principal struct {
	Name        string `yaml:"name"`         // 1 to 64 of [A-Za-z0-9._@-]
	TokenSHA256 string `yaml:"token_sha256"` // HashToken(token): "sha256:<64 lowercase hex>"
	Roles       []Role `yaml:"roles"`
}

// Has reports whether p holds role.
func (p *Principal) Has(role Role) bool {
	return p != nil && slices.Contains(p.Roles, role)
}

// Principals is the list of API callers.
type Principals []Principal

// HashToken returns the form a bearer token is stored in the config:
// "sha256:" followed by the lowercase hex SHA-256 of the token's bytes.
// Generate a token with e.g. `openssl rand -base64 32` and store
// HashToken(token), never the token.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(h[:])
}

// Authenticate returns the principal whose token hash matches token. It
// compares against every principal in constant time, so the time taken does
// not depend on which principal (if any) matched. An empty token never
// matches.
func (ps Principals) Authenticate(token string) (*Principal, bool) {
	if token == "" {
		return nil, false
	}
	got := []byte(HashToken(token))
	found := -1
	for i := range ps {
		eq := subtle.ConstantTimeCompare(got, []byte(ps[i].TokenSHA256))
		unset := subtle.ConstantTimeEq(int32(found), -1)
		found = subtle.ConstantTimeSelect(eq&unset, i, found)
	}
	if found < 0 {
		return nil, false
	}
	return &ps[found], true
}

// Find returns the principal with that name, or nil.
func (ps Principals) Find(name string) *Principal {
	for i := range ps {
		if ps[i].Name == name {
			return &ps[i]
		}
	}
	return nil
}
