package verify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/edgeseal/edgeseal/bundle/internal/strict"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"

	"github.com/edgeseal/edgeseal/tpm/attest"
)

// Check names, stable: tools and tests match on them.
const (
	CheckBagItStructure     = "bagit.structure"
	CheckBagItManifest      = "bagit.manifest"
	CheckBagItTagManifest   = "bagit.tagmanifest"
	CheckSealEnvelope       = "seal.envelope"
	CheckSealSignature      = "seal.signature"
	CheckSealSubject        = "seal.subject"
	CheckCheckpointOrigin   = "checkpoint.origin"
	CheckCheckpointPrevious = "checkpoint.previous"
	CheckRecordsParse       = "records.parse"
	CheckRecordsSequence    = "records.sequence"
	CheckRecordsChain       = "records.chain"
	CheckRecordsDevice      = "records.device"
	CheckRecordsTime        = "records.time"
	CheckPayloadsDigest     = "payloads.digest"
	CheckPayloadsReferenced = "payloads.referenced"
	CheckPayloadCipher      = "payload.cipher" // encrypted payloads: known suite, one record per ciphertext, the suite's form (log.go)
	CheckMerkleRoot         = "merkle.root"
	CheckMerkleRange        = "merkle.range"
	CheckMerkleConsistency  = "merkle.consistency"
	CheckPCRsAuthorization  = "pcrs.authorization"
	CheckKeysChain          = "keys.chain" // key records: rotations signed by the key in force (verify_keys.go)
	CheckKeysTrusted        = "keys.trusted"
	CheckKeysCertify        = "keys.certify"
	CheckKeysAttributes     = "keys.attributes"
	CheckKeysPolicy         = "keys.policy"
	CheckQuoteSignature     = "quote.signature"
	CheckQuoteNonce         = "quote.nonce"
	CheckQuotePCRs          = "quote.pcrs"
	CheckQuoteFiles         = "quote.files"
	CheckQuoteClock         = "quote.clock"
	CheckQuoteResetCount    = "quote.resetcount"
	CheckCounterRising      = "counter.rising"
	CheckPreviousLeaf       = "previous.leaf"
	CheckSealSigners        = "seal.signers"     // exactly the sealing key's one signature, DER, low s (unique.go)
	CheckBundleCanonical    = "bundle.canonical" // what the format version fixes beyond the seal (unique.go)
	CheckPolicySigned       = "policy.signed"    // policy.change records signed by their admin set's threshold (policy.go)
	CheckPolicyInForce      = "policy.inforce"   // exports name the policy of the last policy.change before them
)

// CheckNames lists every check Verify runs, in order.
var CheckNames = []string{
	CheckBagItStructure, CheckBagItManifest, CheckBagItTagManifest,
	CheckSealEnvelope, CheckSealSignature, CheckSealSubject,
	CheckCheckpointOrigin, CheckCheckpointPrevious,
	CheckRecordsParse, CheckRecordsSequence, CheckRecordsChain, CheckRecordsDevice, CheckRecordsTime,
	CheckPayloadsDigest, CheckPayloadsReferenced, CheckPayloadCipher,
	CheckMerkleRoot, CheckMerkleRange, CheckMerkleConsistency,
	CheckPCRsAuthorization,
	CheckKeysChain, CheckKeysTrusted, CheckKeysCertify, CheckKeysAttributes, CheckKeysPolicy,
	CheckQuoteSignature, CheckQuoteNonce, CheckQuotePCRs, CheckQuoteFiles, CheckQuoteClock, CheckQuoteResetCount,
	CheckCounterRising, CheckPreviousLeaf,
	CheckSealSigners, CheckBundleCanonical,
	CheckPolicySigned, CheckPolicyInForce,
}

// Check is the outcome of one named check. Skipped checks could not run
// because an input they need did not parse; they count as failed.
type Check struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Skipped bool   `json:"skipped,omitempty"`
	// NotCompared: the check passed because it had nothing to compare
	// (no previous state, a first seal); Detail says what was missing.
	NotCompared bool   `json:"notCompared,omitempty"`
	Detail      string `json:"detail,omitempty"`
}

// Report is the outcome of Verify.
type Report struct {
	Checks []Check `json:"checks"`
	// State is set only when every check passed.
	State *State `json:"state,omitempty"`
	// Keys are the bundle's key records as keys.chain applied them.
	Keys []KeyEvent `json:"keys,omitempty"`
}

// OK reports whether every check passed.
func (r *Report) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return len(r.Checks) > 0
}

// Failed names the checks that failed (skipped ones included).
func (r *Report) Failed() []string {
	var out []string
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c.Name)
		}
	}
	return out
}

// Get returns the check with that name.
func (r *Report) Get(name string) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// String renders one line per check.
func (r *Report) String() string {
	var b strings.Builder
	for _, c := range r.Checks {
		status := "ok  "
		switch {
		case c.Skipped:
			status = "SKIP"
		case !c.OK:
			status = "FAIL"
		case c.NotCompared:
			status = "skip"
		}
		fmt.Fprintf(&b, "%s %-20s %s\n", status, c.Name, c.Detail)
	}
	return b.String()
}

// State is what verifying the next bundle of a device needs from this one.
type State struct {
	Checkpoint string           `json:"checkpoint"` // body text
	Counter    uint64           `json:"counter"`
	Clock      attest.ClockInfo `json:"clock"`
	LastLeaf   string           `json:"lastLeaf"` // "sha256:.."
	LastTime   string           `json:"lastTime"` // time of the last record
	// PCRs are the golden PCR values in force, for a device whose keys
	// are bound to a PCR-policy key (nil otherwise).
	PCRs *PCRState `json:"pcrs,omitempty"`

	// Keys is the signing-key chain (verify_keys.go); nil: the trust
	// file's key is in force.
	Keys *KeyState `json:"keys,omitempty"`

	// Policy is the signed policy in force (policy.go); nil before the
	// chain's first policy.change.
	Policy *PolicyState `json:"policy,omitempty"`
}

// maxStateSize bounds a state file.
const maxStateSize = 256 << 10

// Marshal returns the JSON form of the state.
func (s *State) Marshal() ([]byte, error) { return json.Marshal(s) }

// ParseState reads a state written by Marshal, strictly.
func ParseState(b []byte) (*State, error) {
	if len(b) > maxStateSize {
		return nil, fmt.Errorf("%w: state of %d bytes", wire.ErrTooLarge, len(b))
	}
	var s State
	if err := strict.Unmarshal(b, &s); err != nil {
		return nil, wire.WrapFormat("state", "json", err)
	}
	if _, err := merkle.ParseCheckpoint([]byte(s.Checkpoint)); err != nil {
		return nil, err
	}
	if _, err := wire.ParseHash(s.LastLeaf); err != nil {
		return nil, err
	}
	if s.LastTime != "" {
		if _, err := wire.ParseTime(s.LastTime); err != nil {
			return nil, err
		}
	}
	if s.PCRs != nil {
		if _, _, err := s.PCRs.values(); err != nil {
			return nil, wire.WrapFormat("state", "pcrs", err)
		}
	}
	if s.Keys != nil {
		if err := s.Keys.check(); err != nil {
			return nil, err
		}
	}
	if s.Policy != nil {
		if err := s.Policy.check(); err != nil {
			return nil, err
		}
	}
	if again, _ := s.Marshal(); !bytes.Equal(again, b) {
		return nil, &wire.NotCanonicalError{Format: "state", Offset: strict.FirstDiff(again, b)}
	}
	return &s, nil
}
