package verify

import (
	"bytes"
	"errors"
	"fmt"
	"maps"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/internal/tpmcheck"

	"github.com/edgeseal/edgeseal/tpm/attest"
)

// Checks of the key material, the quote, the clock and the NV counter.

func (v *verifier) keysTrusted() error {
	if err := v.needTrust(); err != nil {
		return err
	}
	errs := tpmcheck.TrustedKeys(v.b.Files, []tpmcheck.KeyFile{{Path: bundle.PathSigningPub, Trusted: v.inForce()},
		{Path: bundle.PathAKPub, Trusted: v.t.AKPublic}, {Path: bundle.PathEKPub, Trusted: v.t.EKPublic},
		{Path: bundle.PathEKCert, Trusted: v.t.EKCert}}, v.t.AK().Key)
	if msg := v.sealKeyProblem(); msg != "" {
		errs = append(errs, msg)
	}
	return joinErrs(errs)
}

func (v *verifier) keysCertify() error {
	if err := v.needKeys(); err != nil {
		return err
	}
	return tpmcheck.Certify(v.b.Files, v.ak, v.signing)
}

func (v *verifier) keysAttributes() error {
	if err := v.needKeys(); err != nil {
		return err
	}
	return joinErrs(tpmcheck.KeyAttributes(v.ak, v.signing))
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
	return tpmcheck.Policy(v.signing, v.t.PolicyDigest)
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
	return tpmcheck.Nonce(v.qa, v.pred.Checkpoint)
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
	if err := tpmcheck.Selection(v.qa, pcrs, want); err != nil {
		return err
	}
	if !maps.EqualFunc(values, golden, bytes.Equal) {
		return fmt.Errorf("pcr values %s differ from golden %s", attest.FormatPCRs(pcrs, values), attest.FormatPCRs(pcrs, golden))
	}
	return tpmcheck.Digest(v.qa, pcrs, values)
}

func (v *verifier) quoteFiles() error {
	if err := v.needPred(); err != nil {
		return err
	}
	return joinErrs(tpmcheck.QuoteFiles(v.b.Files, v.pred.Quote))
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
