package verify

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/trustfile"

	"github.com/edgeseal/edgeseal/tpm/attest"
)

// skipError marks a check whose input is missing.
type skipError struct{ what string }

func (e skipError) Error() string { return "not run: " + e.what }

func skip(what string) error { return skipError{what} }

type verifier struct {
	b    *bundle.Bundle
	t    *trustfile.Trust
	prev *State
	rep  *Report

	files    []fileEntry      // every file, hashed once
	byName   map[string]int32 // index in files, but for payloads
	byDigest map[[32]byte]payloadFiles
	nData    int     // files under data/ (manifest)
	nTag     int     // other files but the tag manifest
	octets   int     // bytes under data/
	pays     []int32 // payload files, index in files

	env    *dsse.Envelope
	st     *bundle.Statement
	pred   *bundle.SealPredicate
	stErr  error
	cp     *merkle.Checkpoint
	prevCP *merkle.Checkpoint // size 0 for the first seal

	raw     [][]byte
	leaves  [][32]byte
	recs    []*custody.Record
	recsErr error

	ak, signing *attest.Public
	qa          *attest.Attest
	trustErr    error

	note        string // detail for a passing check, reset by run
	notCompared bool   // the passing check had nothing to compare, reset by run

	refs   map[[32]byte]*payloadRef // payload files export records name, by the digest of their path
	purged map[[32]byte]bool
	gone   map[[32]byte]bool // payloads purged at the archive (purged.go)

	kc  keychain  // the signing-key chain (verify_keys.go)
	pcr pcrGolden // set by the pcrs.authorization check

	policy *PolicyState // in force after the bundle (policy.inforce)
}

// Verify runs every check on b against the device's trust material t and
// the state prev left by the previous bundle (nil for the first bundle or
// when unknown: checks against it then pass with a note). Each check runs
// on the bytes present even when the manifests fail, so a tamperer who
// recomputes the manifests is still caught by name.
func Verify(b *bundle.Bundle, t *trustfile.Trust, prev *State) *Report {
	return (&verifier{b: b, t: t, prev: prev, rep: &Report{}}).verify()
}

// verify runs every check (Verify, VerifyPurged).
func (v *verifier) verify() *Report {
	b := v.b
	if b == nil || b.Files == nil {
		b = &bundle.Bundle{Files: map[string][]byte{}}
		v.b = b
	}
	v.prepare()
	v.run(CheckBagItStructure, v.bagitStructure)
	v.run(CheckBagItManifest, v.bagitManifest)
	v.run(CheckBagItTagManifest, v.bagitTagManifest)
	v.run(CheckSealEnvelope, func() error { return v.stErr })
	v.run(CheckSealSignature, v.sealSignature)
	v.run(CheckSealSubject, v.sealSubject)
	v.run(CheckCheckpointOrigin, v.checkpointOrigin)
	v.run(CheckCheckpointPrevious, v.checkpointPrevious)
	v.run(CheckRecordsParse, func() error { return v.recsErr })
	v.run(CheckRecordsSequence, v.recordsSequence)
	v.run(CheckRecordsChain, v.recordsChain)
	v.run(CheckRecordsDevice, v.recordsDevice)
	v.run(CheckRecordsTime, v.recordsTime)
	v.run(CheckPayloadsDigest, v.payloadsDigest)
	v.run(CheckPayloadsReferenced, v.payloadsReferenced)
	v.run(CheckPayloadCipher, v.payloadCipher)
	v.run(CheckMerkleRoot, v.merkleRoot)
	v.run(CheckMerkleRange, v.merkleRange)
	v.run(CheckMerkleConsistency, v.merkleConsistency)
	v.run(CheckPCRsAuthorization, v.pcrsAuthorization)
	v.run(CheckKeysChain, v.keysChain)
	v.run(CheckKeysTrusted, v.keysTrusted)
	v.run(CheckKeysCertify, v.keysCertify)
	v.run(CheckKeysAttributes, v.keysAttributes)
	v.run(CheckKeysPolicy, v.keysPolicy)
	v.run(CheckQuoteSignature, v.quoteSignature)
	v.run(CheckQuoteNonce, v.quoteNonce)
	v.run(CheckQuotePCRs, v.quotePCRs)
	v.run(CheckQuoteFiles, v.quoteFiles)
	v.run(CheckQuoteClock, v.quoteClock)
	v.run(CheckQuoteResetCount, v.quoteResetCount)
	v.run(CheckCounterRising, v.counterRising)
	v.run(CheckPreviousLeaf, v.previousLeaf)
	v.run(CheckSealSigners, v.sealSigners)
	v.run(CheckBundleCanonical, v.bundleCanonical)
	v.run(CheckPolicySigned, v.policySigned)
	v.run(CheckPolicyInForce, v.policyInForce)
	if v.rep.OK() {
		v.rep.State = v.state()
		v.rep.State.Keys = v.keysState()
		v.rep.State.Policy = v.policy
	}
	v.rep.Keys = v.kc.events
	return v.rep
}

func (v *verifier) run(name string, fn func() error) {
	v.note, v.notCompared = "", false
	err := fn()
	c := Check{Name: name, OK: err == nil, Detail: v.note, NotCompared: err == nil && v.notCompared}
	if err != nil {
		c.Detail = err.Error()
		var s skipError
		c.Skipped = errors.As(err, &s)
	}
	v.rep.Checks = append(v.rep.Checks, c)
}

func (v *verifier) needPred() error {
	if v.pred == nil {
		return skip("seal statement did not decode")
	}
	return nil
}

func (v *verifier) needCheckpoints() error {
	if err := v.needPred(); err != nil {
		return err
	}
	if v.cp == nil {
		return skip("checkpoint did not parse")
	}
	if v.prevCP == nil {
		return skip("previous checkpoint did not parse")
	}
	return nil
}

func (v *verifier) needRecords() error {
	if v.recs == nil && len(v.raw) > 0 || v.recsErr != nil {
		return skip("records did not parse")
	}
	return nil
}

func (v *verifier) needTrust() error {
	if v.trustErr != nil {
		return fmt.Errorf("trust: %w", v.trustErr)
	}
	return nil
}

func (v *verifier) needKeys() error {
	if v.ak == nil {
		return skip("keys/ak.pub did not parse")
	}
	if v.signing == nil {
		return skip("keys/signing.pub did not parse")
	}
	return nil
}

func (v *verifier) needQuote() error {
	if err := v.needPred(); err != nil {
		return err
	}
	if v.qa == nil {
		return skip("quote attestation did not decode")
	}
	return nil
}

func hexSum(s [32]byte) string { return hex.EncodeToString(s[:]) }

func joinErrs(errs []string) error {
	if len(errs) == 0 {
		return nil
	}
	if len(errs) > 5 {
		errs = append(errs[:5], fmt.Sprintf("and %d more", len(errs)-5))
	}
	return errors.New(strings.Join(errs, "; "))
}
