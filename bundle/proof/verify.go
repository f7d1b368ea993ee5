package proof

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"

	"github.com/edgeseal/edgeseal/tpm/attest"
)

// Check names of a proof, stable: tools and tests match on them. Those
// shared with bundle/verify mean the same there.
const (
	CheckTrust             = "trust.device"
	CheckSealEnvelope      = verify.CheckSealEnvelope
	CheckSealSignature     = verify.CheckSealSignature
	CheckSealSubject       = verify.CheckSealSubject
	CheckCheckpointOrigin  = verify.CheckCheckpointOrigin
	CheckRecordsParse      = verify.CheckRecordsParse
	CheckRecordsInclusion  = "records.inclusion"
	CheckPayloadDigest     = "payload.digest"
	CheckKeysTrusted       = verify.CheckKeysTrusted
	CheckKeysCertify       = verify.CheckKeysCertify
	CheckKeysAttributes    = verify.CheckKeysAttributes
	CheckKeysPolicy        = verify.CheckKeysPolicy
	CheckQuoteSignature    = verify.CheckQuoteSignature
	CheckQuoteNonce        = verify.CheckQuoteNonce
	CheckQuotePCRs         = verify.CheckQuotePCRs
	CheckQuoteFiles        = verify.CheckQuoteFiles
	CheckPolicySigned      = verify.CheckPolicySigned
	CheckReceiptSignature  = "receipt.signature"
	CheckReceiptBundle     = "receipt.bundle"
	CheckReceiptInclusion  = "receipt.inclusion"
	CheckReceiptCheckpoint = "receipt.checkpoint"
)

// CheckNames lists every check Verify runs, in order.
var CheckNames = []string{
	CheckTrust, CheckSealEnvelope, CheckSealSignature, CheckSealSubject, CheckCheckpointOrigin,
	CheckRecordsParse, CheckRecordsInclusion, CheckPayloadDigest,
	CheckKeysTrusted, CheckKeysCertify, CheckKeysAttributes, CheckKeysPolicy,
	CheckQuoteSignature, CheckQuoteNonce, CheckQuotePCRs, CheckQuoteFiles,
	CheckPolicySigned,
	CheckReceiptSignature, CheckReceiptBundle, CheckReceiptInclusion, CheckReceiptCheckpoint,
}

// Options are what the verifier pins from outside the proof. A proof
// carries the device's trust file and the archive's key; an auditor who
// holds them from the operator pins them here, and a proof carrying other
// ones fails trust.device or receipt.signature.
type Options struct {
	Trust      []byte // DEVICE.json the proof's must equal (compared as parsed)
	ArchiveKey []byte // PKIX DER or raw Ed25519 key the receipt must be signed by
}

// Report is the outcome of Verify: every check by name (the same type as
// bundle/verify's, so tools print both alike).
type Report = verify.Report

type skipError struct{ what string }

func (e skipError) Error() string { return "not run: " + e.what }

type checker struct {
	p    *Proof
	opts Options

	trust   *trustfile.Trust
	env     *dsse.Envelope
	st      *bundle.Statement
	cp      merkle.Checkpoint
	recs    []*custody.Record
	export  *custody.ExportBody
	ak      *attest.Public
	signing *attest.Public
	qa      *attest.Attest
	rc      *archivesig.Receipt
	akey    ed25519.PublicKey
	notes   map[string]string
}

// Verify checks a proof offline and reports every check by name.
func Verify(p *Proof, opts Options) *Report {
	c := &checker{p: p, opts: opts, notes: map[string]string{}}
	c.prepare()
	rep := &Report{}
	for _, run := range []struct {
		name string
		fn   func() error
	}{
		{CheckTrust, c.trustDevice},
		{CheckSealEnvelope, c.sealEnvelope},
		{CheckSealSignature, c.sealSignature},
		{CheckSealSubject, c.sealSubject},
		{CheckCheckpointOrigin, c.checkpointOrigin},
		{CheckRecordsParse, c.recordsParse},
		{CheckRecordsInclusion, c.recordsInclusion},
		{CheckPayloadDigest, c.payloadDigest},
		{CheckKeysTrusted, c.keysTrusted},
		{CheckKeysCertify, c.keysCertify},
		{CheckKeysAttributes, c.keysAttributes},
		{CheckKeysPolicy, c.keysPolicy},
		{CheckQuoteSignature, c.quoteSignature},
		{CheckQuoteNonce, c.quoteNonce},
		{CheckQuotePCRs, c.quotePCRs},
		{CheckQuoteFiles, c.quoteFiles},
		{CheckPolicySigned, c.policySigned},
		{CheckReceiptSignature, c.receiptSignature},
		{CheckReceiptBundle, c.receiptBundle},
		{CheckReceiptInclusion, c.receiptInclusion},
		{CheckReceiptCheckpoint, c.receiptCheckpoint},
	} {
		err := run.fn()
		ch := verify.Check{Name: run.name, OK: err == nil, Detail: c.notes[run.name]}
		if err != nil {
			ch.Detail = err.Error()
			var s skipError
			ch.Skipped = errors.As(err, &s)
		}
		rep.Checks = append(rep.Checks, ch)
	}
	return rep
}

// prepare decodes what the checks share; what does not decode leaves its
// field nil and the checks that need it are skipped.
func (c *checker) prepare() {
	p := c.p
	if t, err := trustfile.ParseTrust(p.Trust); err == nil {
		c.trust = t
	}
	if env, err := dsse.ParseEnvelope(p.Seal); err == nil {
		if st, err := bundle.ParseStatement(env.Payload); err == nil && env.PayloadType == dsse.PayloadTypeInToto {
			if cp, err := merkle.ParseCheckpoint([]byte(st.Predicate.Checkpoint)); err == nil {
				c.env, c.st, c.cp = env, st, cp
			}
		}
	}
	for _, r := range p.Records {
		rec, err := custody.ParseRecord([]byte(r.Record))
		if err != nil {
			c.recs = nil
			break
		}
		c.recs = append(c.recs, rec)
	}
	if len(c.recs) > 0 && c.recs[0].Type == custody.TypeExport && c.recs[0].Actor.ID == p.Principal {
		if e, err := c.recs[0].ExportBody(); err == nil && e.ExportID == p.ExportID {
			c.export = e
		}
	}
	c.ak, _ = attest.ParsePublic(p.Files[bundle.PathAKPub])
	c.signing, _ = attest.ParsePublic(p.Files[bundle.PathSigningPub])
	if c.st != nil {
		c.qa, _ = attest.ParseAttest(c.st.Predicate.Quote.Attest)
		if c.qa != nil && c.qa.Type != 0x8018 {
			c.qa = nil
		}
	}
	if _, rc, err := archivesig.ParseReceipt(p.Receipt); err == nil {
		c.rc = rc
	}
	if k, err := parseArchiveKey(p.ArchiveKey); err == nil {
		c.akey = k
	}
}

func skip(what string) error { return skipError{what} }

func (c *checker) needSeal() error {
	if c.st == nil {
		return skip("the seal did not parse")
	}
	return nil
}

func (c *checker) needTrust() error {
	if c.trust == nil {
		return skip("the trust file did not parse")
	}
	return nil
}

func (c *checker) needKeys() error {
	if c.ak == nil || c.signing == nil {
		return skip("keys/ak.pub or keys/signing.pub did not parse")
	}
	return nil
}

func joinErrs(errs []string) error {
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "; "))
}

func (c *checker) trustDevice() error {
	t, err := trustfile.ParseTrust(c.p.Trust)
	if err != nil {
		return err
	}
	if t.DeviceName() != c.p.Device {
		return fmt.Errorf("the trust file is of %s, the proof of %s", t.DeviceName(), c.p.Device)
	}
	if c.opts.Trust != nil {
		pinned, err := trustfile.ParseTrust(c.opts.Trust)
		if err != nil {
			return fmt.Errorf("pinned trust file: %w", err)
		}
		a, _ := pinned.Marshal()
		b, _ := t.Marshal()
		if !bytes.Equal(a, b) {
			return errors.New("the proof's trust file is not the pinned one")
		}
	} else {
		c.notes[CheckTrust] = "trust file carried by the proof, not pinned (give --trust to pin it)"
	}
	return nil
}

func (c *checker) sealEnvelope() error {
	env, err := dsse.ParseEnvelope(c.p.Seal)
	if err != nil {
		return err
	}
	if env.PayloadType != dsse.PayloadTypeInToto {
		return fmt.Errorf("payload type %.80q", env.PayloadType)
	}
	st, err := bundle.ParseStatement(env.Payload)
	if err != nil {
		return err
	}
	_, err = merkle.ParseCheckpoint([]byte(st.Predicate.Checkpoint))
	return err
}

func (c *checker) sealSignature() error {
	if err := c.needSeal(); err != nil {
		return err
	}
	if c.signing == nil {
		return skip("keys/signing.pub did not parse")
	}
	id := custody.KeyID(c.p.Files[bundle.PathSigningPub])
	if c.st.Predicate.KeyID != id {
		return fmt.Errorf("statement key id %.80s, keys/signing.pub is %s", c.st.Predicate.KeyID, id)
	}
	if len(c.env.Signatures) != 1 {
		return fmt.Errorf("%d signatures, want 1", len(c.env.Signatures))
	}
	low := bundle.FormatOf(c.st.PredicateType) == bundle.FormatV2
	if err := bundle.CheckSealSig(c.env.Signatures[0].Sig, low); err != nil {
		return err
	}
	return c.env.VerifyECDSA(id, c.signing.Key)
}

// sealSubject: in format 2 every carried file is a subject of the
// statement with its digest; in format 1 only the records are.
func (c *checker) sealSubject() error {
	if err := c.needSeal(); err != nil {
		return err
	}
	if bundle.FormatOf(c.st.PredicateType) != bundle.FormatV2 {
		c.notes[CheckSealSubject] = "format 1 bundle: key and attestation files are not sealed"
		return nil
	}
	subj := map[string]string{}
	for _, s := range c.st.Subject {
		subj[s.Name] = s.Digest["sha256"]
	}
	var errs []string
	for _, name := range Files {
		data, ok := c.p.Files[name]
		want, named := subj[name]
		switch {
		case ok && !named:
			errs = append(errs, name+" is not a subject of the seal")
		case !ok && named:
			errs = append(errs, name+" is sealed but missing")
		case ok:
			if sum := sha256.Sum256(data); fmt.Sprintf("%x", sum) != want {
				errs = append(errs, name+" is not the sealed file")
			}
		}
	}
	return joinErrs(errs)
}

func (c *checker) checkpointOrigin() error {
	if err := c.needSeal(); err != nil {
		return err
	}
	if err := c.needTrust(); err != nil {
		return err
	}
	if c.cp.Origin != c.trust.Origin {
		return fmt.Errorf("checkpoint origin %.80s, trust file %s", c.cp.Origin, c.trust.Origin)
	}
	return nil
}
