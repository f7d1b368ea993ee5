package tpm

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// PublicKey returns the ECDSA key of an ECC P-256 TPMT_PUBLIC (the AK or
// signing public area of an Identity).
func PublicKey(public []byte) (*ecdsa.PublicKey, error) {
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](public)
	if err != nil {
		return nil, fmt.Errorf("tpm: public area: %w", err)
	}
	k, err := eccPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("tpm: public area: %w", err)
	}
	return k, nil
}

// AKPublicPEM returns a TPMT_PUBLIC's key as a PEM "PUBLIC KEY" (PKIX),
// the form tpm2_checkquote -u reads.
func AKPublicPEM(public []byte) ([]byte, error) {
	k, err := PublicKey(public)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil, fmt.Errorf("tpm: public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}
