// Package tpmcheck holds the checks of a seal's TPM key material and quote
// that bundle/verify (a bundle over the device's chain) and bundle/proof
// (one record's proof, checked alone) run alike. Each returns the problems
// it found, worded as both packages report them; the callers decide which
// inputs they pass (the previous bundle, the trust file's key in force)
// and how they join several problems.
package tpmcheck

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"maps"
	"slices"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/tpm/attest"
)

// KeyFile is a key file and the approved bytes it must equal.
type KeyFile struct {
	Path    string
	Trusted []byte
}

// TrustedKeys lists the problems of the key files: each of keys not the
// approved bytes, keys/ak.pem not one PUBLIC KEY block of the approved AK.
func TrustedKeys(files map[string][]byte, keys []KeyFile, ak *ecdsa.PublicKey) []string {
	var errs []string
	for _, k := range keys {
		if !bytes.Equal(files[k.Path], k.Trusted) {
			errs = append(errs, k.Path+" is not the approved key")
		}
	}
	if blk, rest := pem.Decode(files[bundle.PathAKPEM]); blk == nil || blk.Type != "PUBLIC KEY" || len(rest) != 0 {
		errs = append(errs, bundle.PathAKPEM+" is not one PUBLIC KEY block")
	} else if k, err := x509.ParsePKIXPublicKey(blk.Bytes); err != nil {
		errs = append(errs, bundle.PathAKPEM+": "+err.Error())
	} else if ek, ok := k.(*ecdsa.PublicKey); !ok || !ek.Equal(ak) {
		errs = append(errs, bundle.PathAKPEM+" is not the approved AK")
	}
	return errs
}

// Certify checks that the AK certified the signing key.
func Certify(files map[string][]byte, ak, signing *attest.Public) error {
	return attest.VerifyCertify(ak, files[bundle.PathCertifyMsg], files[bundle.PathCertifySig], signing)
}

// KeyAttributes lists the problems of the AK's and the signing key's
// TPM attributes.
func KeyAttributes(ak, signing *attest.Public) []string {
	var errs []string
	a := ak
	if !a.Restricted || !a.SignEncrypt || a.Decrypt || !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin {
		errs = append(errs, "ak is not a TPM-resident restricted signing key")
	}
	s := signing
	if s.Restricted || !s.SignEncrypt || s.Decrypt || !s.FixedTPM || !s.FixedParent || !s.SensitiveDataOrigin {
		errs = append(errs, "signing key is not a TPM-resident unrestricted signing key")
	}
	if s.UserWithAuth {
		errs = append(errs, "signing key usable by password (userWithAuth)")
	}
	if len(s.AuthPolicy) == 0 {
		errs = append(errs, "signing key has no authPolicy")
	}
	return errs
}

// Policy checks the signing key's policy against the trusted one.
func Policy(signing *attest.Public, trusted []byte) error {
	if !bytes.Equal(signing.AuthPolicy, trusted) {
		return fmt.Errorf("signing key policy %x, trusted policy %x", signing.AuthPolicy, trusted)
	}
	return nil
}

// Nonce checks that the quote's nonce is SHA-256(checkpoint).
func Nonce(qa *attest.Attest, checkpoint string) error {
	want := sha256.Sum256([]byte(checkpoint))
	if !bytes.Equal(qa.ExtraData, want[:]) {
		return fmt.Errorf("quote nonce %x, SHA-256(checkpoint) %x", qa.ExtraData, want)
	}
	return nil
}

// Selection checks that the quote and the statement select the approved
// PCRs.
func Selection(qa *attest.Attest, pcrs, want []int) error {
	if !slices.Equal(qa.PCRs, want) || !slices.Equal(pcrs, want) {
		return fmt.Errorf("quoted pcrs %v (statement %v), approved %v", qa.PCRs, pcrs, want)
	}
	return nil
}

// Digest checks the quote's PCR digest against the statement's values.
func Digest(qa *attest.Attest, pcrs []int, values map[int][]byte) error {
	d, err := attest.PCRDigest(pcrs, values)
	if err != nil {
		return err
	}
	if !bytes.Equal(d, qa.PCRDigest) {
		return fmt.Errorf("quote pcrDigest %x, values give %x", qa.PCRDigest, d)
	}
	return nil
}

// QuoteFiles lists the differences of the quote files from the sealed
// quote.
func QuoteFiles(files map[string][]byte, q bundle.SealQuote) []string {
	var errs []string
	if !bytes.Equal(files[bundle.PathQuoteMsg], q.Attest) {
		errs = append(errs, bundle.PathQuoteMsg+" is not the sealed quote")
	}
	if !bytes.Equal(files[bundle.PathQuoteSig], q.Signature) {
		errs = append(errs, bundle.PathQuoteSig+" is not the sealed signature")
	}
	pcrs, values, err := attest.ParsePCRsFile(files[bundle.PathQuotePCRs])
	if err != nil {
		errs = append(errs, bundle.PathQuotePCRs+": "+err.Error())
	} else if wp, wv, err := q.Values(); err != nil || !slices.Equal(pcrs, wp) || !maps.EqualFunc(values, wv, bytes.Equal) {
		errs = append(errs, bundle.PathQuotePCRs+" differs from the sealed pcr values")
	}
	return errs
}
