package bundletest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
)

// PolicyDev is a software device whose signing key is bound with
// TPM2_PolicyAuthorize to an operator's PCR-policy key; its identity names
// that key, so a chain of it has a version 2 trust.
type PolicyDev struct {
	Soft
	PolicyKey []byte // PKIX DER of the operator's public key
}

// Identity is the software TPM's identity with the PCR-policy key.
func (d PolicyDev) Identity() custody.Identity {
	id := d.Soft.Identity()
	id.PCRPolicyKey = d.PolicyKey
	return id
}

// NewPolicyDev returns a software device for device ("<site>/<name>")
// bound to a new operator PCR-policy key, and that key.
func NewPolicyDev(device string) (PolicyDev, *ecdsa.PrivateKey, error) {
	op, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return PolicyDev{}, nil, err
	}
	soft, err := NewSoft()
	if err != nil {
		return PolicyDev{}, nil, err
	}
	if soft.AuthPolicy, err = trustfile.PCRAuthorizationDigest(&op.PublicKey, device); err != nil {
		return PolicyDev{}, nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(&op.PublicKey)
	if err != nil {
		return PolicyDev{}, nil, err
	}
	return PolicyDev{Soft: soft, PolicyKey: der}, op, nil
}
