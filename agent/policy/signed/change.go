package signed

import (
	"encoding/json"
	"fmt"
)

// Reasons a policy.change record gives.
const (
	ReasonStart  = "start"  // the policy the agent started with
	ReasonReload = "reload" // a reload (SIGHUP or POST /v1/policy/reload)
)

// ChangeBody is the body of a policy.change record: the signed policy the
// agent put in force, whole, and the admin set it was checked against.
type ChangeBody struct {
	Policy   string          `json:"policy"` // policy.Policy.Digest, as exports name it
	Reason   string          `json:"reason"`
	Signers  []string        `json:"signers"`
	Admins   *Admins         `json:"admins"`
	Envelope json.RawMessage `json:"envelope"` // the canonical DSSE envelope
}

// NewChangeBody is the record body for s, checked against admins.
func NewChangeBody(s *Signed, admins *Admins, reason string) *ChangeBody {
	return &ChangeBody{Policy: s.Policy.Digest(), Reason: reason, Signers: s.Signers, Admins: admins, Envelope: s.Envelope}
}

// ParseChangeBody reads a policy.change body and verifies its envelope
// against the admin set it carries (the verifier compares that set with
// the one it trusts). The returned Signed is the verified policy.
func ParseChangeBody(b []byte) (*ChangeBody, *Signed, error) {
	var c ChangeBody
	if err := unmarshalStrict(b, &c); err != nil {
		return nil, nil, &Error{What: "policy.change", Reason: "decode", Err: err}
	}
	if c.Admins == nil {
		return nil, nil, &Error{What: "policy.change", Reason: "no admin set"}
	}
	if err := c.Admins.init(); err != nil {
		return nil, nil, err
	}
	s, err := Verify(c.Envelope, c.Admins)
	if err != nil {
		return &c, nil, err
	}
	if s.Policy.Digest() != c.Policy {
		return &c, nil, &Error{What: "policy.change", Reason: fmt.Sprintf("names policy %s, its envelope carries %s", c.Policy, s.Policy.Digest())}
	}
	return &c, s, nil
}
