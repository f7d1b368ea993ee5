package proof

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/trustfile"

	"github.com/edgeseal/edgeseal/tpm/attest"
)

// Checks of the device's keys and the quote, as bundle/verify runs them,
// without the previous bundle: a proof is checked alone.

func (c *checker) keysTrusted() error {
	if err := c.needTrust(); err != nil {
		return err
	}
	var errs []string
	f := c.p.Files
	for _, k := range []struct {
		path    string
		trusted []byte
	}{{bundle.PathAKPub, c.trust.AKPublic}, {bundle.PathEKPub, c.trust.EKPublic}, {bundle.PathEKCert, c.trust.EKCert}} {
		if !bytes.Equal(f[k.path], k.trusted) {
			errs = append(errs, k.path+" is not the approved key")
		}
	}
	if blk, rest := pem.Decode(f[bundle.PathAKPEM]); blk == nil || blk.Type != "PUBLIC KEY" || len(rest) != 0 {
		errs = append(errs, bundle.PathAKPEM+" is not one PUBLIC KEY block")
	} else if k, err := x509.ParsePKIXPublicKey(blk.Bytes); err != nil {
		errs = append(errs, bundle.PathAKPEM+": "+err.Error())
	} else if ek, ok := k.(*ecdsa.PublicKey); !ok || !ek.Equal(c.trust.AK().Key) {
		errs = append(errs, bundle.PathAKPEM+" is not the approved AK")
	}
	if pemFile, ok := f[bundle.PathSigningPEM]; ok {
		if want, err := bundle.SigningPEM(f[bundle.PathSigningPub]); err != nil || !bytes.Equal(pemFile, want) {
			errs = append(errs, bundle.PathSigningPEM+" is not keys/signing.pub")
		}
	}
	if len(errs) == 0 && !bytes.Equal(f[bundle.PathSigningPub], c.trust.SigningPublic) {
		c.notes[CheckKeysTrusted] = "sealed by a rotated signing key: it counts as the device's because the approved AK certified it with the approved policy (keys.certify, keys.policy); its rotation records are not in the proof"
	}
	return joinErrs(errs)
}

func (c *checker) keysCertify() error {
	if err := c.needKeys(); err != nil {
		return err
	}
	return attest.VerifyCertify(c.ak, c.p.Files[bundle.PathCertifyMsg], c.p.Files[bundle.PathCertifySig], c.signing)
}

func (c *checker) keysAttributes() error {
	if err := c.needKeys(); err != nil {
		return err
	}
	var errs []string
	a := c.ak
	if !a.Restricted || !a.SignEncrypt || a.Decrypt || !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin {
		errs = append(errs, "ak is not a TPM-resident restricted signing key")
	}
	s := c.signing
	if s.Restricted || !s.SignEncrypt || s.Decrypt || !s.FixedTPM || !s.FixedParent || !s.SensitiveDataOrigin {
		errs = append(errs, "signing key is not a TPM-resident unrestricted signing key")
	}
	if s.UserWithAuth {
		errs = append(errs, "signing key usable by password (userWithAuth)")
	}
	if len(s.AuthPolicy) == 0 {
		errs = append(errs, "signing key has no authPolicy")
	}
	return joinErrs(errs)
}

func (c *checker) keysPolicy() error {
	if err := c.needKeys(); err != nil {
		return err
	}
	if err := c.needTrust(); err != nil {
		return err
	}
	if !bytes.Equal(c.signing.AuthPolicy, c.trust.PolicyDigest) {
		return fmt.Errorf("signing key policy %x, trusted policy %x", c.signing.AuthPolicy, c.trust.PolicyDigest)
	}
	return nil
}

func (c *checker) quoteSignature() error {
	if err := c.needSeal(); err != nil {
		return err
	}
	if c.ak == nil {
		return skip("keys/ak.pub did not parse")
	}
	q := c.st.Predicate.Quote
	if err := attest.VerifySignature(c.ak.Key, q.Attest, q.Signature, "quote"); err != nil {
		return err
	}
	if c.qa == nil {
		return errors.New("not a quote")
	}
	return nil
}

func (c *checker) quoteNonce() error {
	if err := c.needSeal(); err != nil {
		return err
	}
	if c.qa == nil {
		return skip("the quote did not parse")
	}
	want := sha256.Sum256([]byte(c.st.Predicate.Checkpoint))
	if !bytes.Equal(c.qa.ExtraData, want[:]) {
		return fmt.Errorf("quote nonce %x, SHA-256(checkpoint) %x", c.qa.ExtraData, want)
	}
	return nil
}

func (c *checker) quotePCRs() error {
	if err := c.needSeal(); err != nil {
		return err
	}
	if c.qa == nil {
		return skip("the quote did not parse")
	}
	if err := c.needTrust(); err != nil {
		return err
	}
	pcrs, values, err := c.st.Predicate.Quote.Values()
	if err != nil {
		return err
	}
	want, golden := c.trust.PCRs()
	switch {
	case !slices.Equal(c.qa.PCRs, want) || !slices.Equal(pcrs, want):
		return fmt.Errorf("quoted pcrs %v (statement %v), approved %v", c.qa.PCRs, pcrs, want)
	case !maps.EqualFunc(values, golden, bytes.Equal):
		if err := c.authorized(pcrs, values); err != nil {
			return fmt.Errorf("pcr values %s differ from golden %s: %w", attest.FormatPCRs(pcrs, values), attest.FormatPCRs(pcrs, golden), err)
		}
	}
	d, err := attest.PCRDigest(pcrs, values)
	if err != nil {
		return err
	}
	if !bytes.Equal(d, c.qa.PCRDigest) {
		return fmt.Errorf("quote pcrDigest %x, values give %x", c.qa.PCRDigest, d)
	}
	return nil
}

func (c *checker) quoteFiles() error {
	if err := c.needSeal(); err != nil {
		return err
	}
	var errs []string
	f, q := c.p.Files, c.st.Predicate.Quote
	if !bytes.Equal(f[bundle.PathQuoteMsg], q.Attest) {
		errs = append(errs, bundle.PathQuoteMsg+" is not the sealed quote")
	}
	if !bytes.Equal(f[bundle.PathQuoteSig], q.Signature) {
		errs = append(errs, bundle.PathQuoteSig+" is not the sealed signature")
	}
	pcrs, values, err := attest.ParsePCRsFile(f[bundle.PathQuotePCRs])
	if err != nil {
		errs = append(errs, bundle.PathQuotePCRs+": "+err.Error())
	} else if wp, wv, err := q.Values(); err != nil || !slices.Equal(pcrs, wp) || !maps.EqualFunc(values, wv, bytes.Equal) {
		errs = append(errs, bundle.PathQuotePCRs+" differs from the sealed pcr values")
	}
	return joinErrs(errs)
}

// authorized checks the proof's PCR authorization: signed by the trust
// file's PCR-policy key for this device, of the quoted selection and
// values.
func (c *checker) authorized(pcrs []int, values map[int][]byte) error {
	key := c.trust.PCRPolicy()
	switch {
	case key == nil:
		return errors.New("the trust file has no PCR-policy key to authorize other values")
	case c.p.PCRAuthorization == nil:
		return errors.New("the proof carries no PCR authorization of them")
	}
	a, err := trustfile.ParsePCRAuthorization(c.p.PCRAuthorization)
	if err != nil {
		return err
	}
	if err := a.Verify(key, c.p.Device); err != nil {
		return err
	}
	ap, av := a.PCRs()
	if !slices.Equal(ap, pcrs) || !maps.EqualFunc(av, values, bytes.Equal) {
		return errors.New("the proof's PCR authorization is of other values")
	}
	c.notes[CheckQuotePCRs] = "values the operator authorized at " + a.Time + " (that no newer authorization replaced them is checked over the device's chain)"
	return nil
}
