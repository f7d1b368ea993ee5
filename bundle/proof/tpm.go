package proof

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/internal/tpmcheck"
	"github.com/edgeseal/edgeseal/bundle/trustfile"

	"github.com/edgeseal/edgeseal/tpm/attest"
)

// Checks of the device's keys and the quote, as bundle/verify runs them,
// without the previous bundle: a proof is checked alone.

func (c *checker) keysTrusted() error {
	if err := c.needTrust(); err != nil {
		return err
	}
	f := c.p.Files
	errs := tpmcheck.TrustedKeys(f, []tpmcheck.KeyFile{{Path: bundle.PathAKPub, Trusted: c.trust.AKPublic},
		{Path: bundle.PathEKPub, Trusted: c.trust.EKPublic}, {Path: bundle.PathEKCert, Trusted: c.trust.EKCert}}, c.trust.AK().Key)
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
	return tpmcheck.Certify(c.p.Files, c.ak, c.signing)
}

func (c *checker) keysAttributes() error {
	if err := c.needKeys(); err != nil {
		return err
	}
	return joinErrs(tpmcheck.KeyAttributes(c.ak, c.signing))
}

func (c *checker) keysPolicy() error {
	if err := c.needKeys(); err != nil {
		return err
	}
	if err := c.needTrust(); err != nil {
		return err
	}
	return tpmcheck.Policy(c.signing, c.trust.PolicyDigest)
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
	return tpmcheck.Nonce(c.qa, c.st.Predicate.Checkpoint)
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
	if err := tpmcheck.Selection(c.qa, pcrs, want); err != nil {
		return err
	}
	if !maps.EqualFunc(values, golden, bytes.Equal) {
		if err := c.authorized(pcrs, values); err != nil {
			return fmt.Errorf("pcr values %s differ from golden %s: %w", attest.FormatPCRs(pcrs, values), attest.FormatPCRs(pcrs, golden), err)
		}
	}
	return tpmcheck.Digest(c.qa, pcrs, values)
}

func (c *checker) quoteFiles() error {
	if err := c.needSeal(); err != nil {
		return err
	}
	return joinErrs(tpmcheck.QuoteFiles(c.p.Files, c.st.Predicate.Quote))
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
