package verify

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

	"github.com/edgeseal/edgeseal/tpm/attest"
)

// Checks of the key material, the quote, the clock and the NV counter.

func (v *verifier) keysTrusted() error {
	if err := v.needTrust(); err != nil {
		return err
	}
	var errs []string
	f := v.b.Files
	for _, c := range []struct {
		path    string
		trusted []byte
	}{{bundle.PathSigningPub, v.inForce()}, {bundle.PathAKPub, v.t.AKPublic}, {bundle.PathEKPub, v.t.EKPublic}, {bundle.PathEKCert, v.t.EKCert}} {
		if !bytes.Equal(f[c.path], c.trusted) {
			errs = append(errs, c.path+" is not the approved key")
		}
	}
	if blk, rest := pem.Decode(f[bundle.PathAKPEM]); blk == nil || blk.Type != "PUBLIC KEY" || len(rest) != 0 {
		errs = append(errs, bundle.PathAKPEM+" is not one PUBLIC KEY block")
	} else if k, err := x509.ParsePKIXPublicKey(blk.Bytes); err != nil {
		errs = append(errs, bundle.PathAKPEM+": "+err.Error())
	} else if ek, ok := k.(*ecdsa.PublicKey); !ok || !ek.Equal(v.t.AK().Key) {
		errs = append(errs, bundle.PathAKPEM+" is not the approved AK")
	}
	if msg := v.sealKeyProblem(); msg != "" {
		errs = append(errs, msg)
	}
	return joinErrs(errs)
}

func (v *verifier) keysCertify() error {
	if err := v.needKeys(); err != nil {
		return err
	}
	return attest.VerifyCertify(v.ak, v.b.Files[bundle.PathCertifyMsg], v.b.Files[bundle.PathCertifySig], v.signing)
}

func (v *verifier) keysAttributes() error {
	if err := v.needKeys(); err != nil {
		return err
	}
	var errs []string
	a := v.ak
	if !a.Restricted || !a.SignEncrypt || a.Decrypt || !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin {
		errs = append(errs, "ak is not a TPM-resident restricted signing key")
	}
	s := v.signing
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

func (v *verifier) keysPolicy() error {
	if err := v.needKeys(); err != nil {
		return err
	}
	if err := v.needTrust(); err != nil {
		return err
	}
	// ParseTrust checked t.PolicyDigest: PolicyPCR(golden values), or
	// PolicyAuthorize(PCR policy key, policyRef) for a version 2 trust.
	if !bytes.Equal(v.signing.AuthPolicy, v.t.PolicyDigest) {
		return fmt.Errorf("signing key policy %x, trusted policy %x", v.signing.AuthPolicy, v.t.PolicyDigest)
	}
	return nil
}

func (v *verifier) quoteSignature() error {
	if err := v.needPred(); err != nil {
		return err
	}
	if v.ak == nil {
		return skip("keys/ak.pub did not parse")
	}
	q := v.pred.Quote
	if err := attest.VerifySignature(v.ak.Key, q.Attest, q.Signature, "quote"); err != nil {
		return err
	}
	if v.qa == nil {
		_, err := attest.ParseAttest(q.Attest)
		return errors.Join(errors.New("not a quote"), err)
	}
	return nil
}

func (v *verifier) quoteNonce() error {
	if err := v.needQuote(); err != nil {
		return err
	}
	want := sha256.Sum256([]byte(v.pred.Checkpoint))
	if !bytes.Equal(v.qa.ExtraData, want[:]) {
		return fmt.Errorf("quote nonce %x, SHA-256(checkpoint) %x", v.qa.ExtraData, want)
	}
	return nil
}

func (v *verifier) quotePCRs() error {
	if err := v.needQuote(); err != nil {
		return err
	}
	if err := v.needTrust(); err != nil {
		return err
	}
	pcrs, values, err := v.pred.Quote.Values()
	if err != nil {
		return err
	}
	want, golden, err := v.goldenPCRs()
	if err != nil {
		return err
	}
	switch {
	case !slices.Equal(v.qa.PCRs, want) || !slices.Equal(pcrs, want):
		return fmt.Errorf("quoted pcrs %v (statement %v), approved %v", v.qa.PCRs, pcrs, want)
	case !maps.EqualFunc(values, golden, bytes.Equal):
		return fmt.Errorf("pcr values %s differ from golden %s", attest.FormatPCRs(pcrs, values), attest.FormatPCRs(pcrs, golden))
	}
	d, err := attest.PCRDigest(pcrs, values)
	if err != nil {
		return err
	}
	if !bytes.Equal(d, v.qa.PCRDigest) {
		return fmt.Errorf("quote pcrDigest %x, values give %x", v.qa.PCRDigest, d)
	}
	return nil
}

func (v *verifier) quoteFiles() error {
	if err := v.needPred(); err != nil {
		return err
	}
	var errs []string
	f, q := v.b.Files, v.pred.Quote
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

func (v *verifier) quoteClock() error {
	if err := v.needQuote(); err != nil {
		return err
	}
	c := v.qa.Clock
	if v.pred.Clock != c {
		return fmt.Errorf("statement clock %+v, quote says %+v", v.pred.Clock, c)
	}
	if v.prev == nil || c.Clock > v.prev.Clock.Clock {
		return nil
	}
	// The clock did not advance. Within one boot that is an old quote
	// replayed. Across a reset or restart a TPM may resume from the clock
	// it last saved to NV (it should say safe = NO then; simulators do not
	// always): the quote is still bound to this checkpoint by its nonce
	// and quote.resetcount keeps the boot order, so it passes with a note.
	p := v.prev.Clock
	rebooted := c.ResetCount > p.ResetCount || c.ResetCount == p.ResetCount && c.RestartCount > p.RestartCount
	if !rebooted {
		return fmt.Errorf("quote clock %d not after last verified %d in the same boot (reset/restart %d/%d)",
			c.Clock, p.Clock, c.ResetCount, c.RestartCount)
	}
	v.note = fmt.Sprintf("clock %d back from %d across a reset/restart (safe %v)", c.Clock, p.Clock, c.Safe)
	return nil
}

func (v *verifier) quoteResetCount() error {
	if err := v.needQuote(); err != nil {
		return err
	}
	c := v.qa.Clock
	if v.prev == nil {
		return v.nothingToCompare("no previous state")
	}
	p := v.prev.Clock
	if c.ResetCount < p.ResetCount || c.ResetCount == p.ResetCount && c.RestartCount < p.RestartCount {
		return fmt.Errorf("reset/restart count %d/%d below last verified %d/%d", c.ResetCount, c.RestartCount, p.ResetCount, p.RestartCount)
	}
	return nil
}

func (v *verifier) counterRising() error {
	if err := v.needPred(); err != nil {
		return err
	}
	if v.pred.Counter == 0 {
		return errors.New("nv counter 0 (never incremented)")
	}
	if v.prev != nil && v.pred.Counter <= v.prev.Counter {
		return fmt.Errorf("nv counter %d not above last verified %d", v.pred.Counter, v.prev.Counter)
	}
	if v.prev == nil {
		return v.nothingToCompare(fmt.Sprintf("no previous state (counter %d)", v.pred.Counter))
	}
	return nil
}
