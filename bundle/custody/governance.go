package custody

import (
	"github.com/edgeseal/edgeseal/bundle/internal/strict"
	"github.com/edgeseal/edgeseal/bundle/wire"
)

// Governance alert kinds (docs/formats.md, "governance.alert").
const (
	// AlertSchemaChanged: a schema's bytes changed under the same
	// name@version as in the policy in force before.
	AlertSchemaChanged = "schema.changed"
	// AlertDestinationNew: a workflow names a destination no earlier
	// policy version had.
	AlertDestinationNew = "destination.new"
	// AlertSignerUnknown: a policy carried signatures by keys not in the
	// admin set (the reload was refused).
	AlertSignerUnknown = "signer.unknown"
	// AlertRetentionShort: a workflow's retention class is shorter than
	// its schema's min_retention (or has no duration to compare).
	AlertRetentionShort = "retention.short"
)

var alertKinds = map[string]bool{AlertSchemaChanged: true, AlertDestinationNew: true, AlertSignerUnknown: true, AlertRetentionShort: true}

// GovernanceAlertBody is the body of a governance.alert record.
type GovernanceAlertBody struct {
	Kind string `json:"kind"`
	// Subject is what the alert is about: the schema id, the destination,
	// the unknown key ids joined by ",", or the workflow.
	Subject string `json:"subject"`
	// Policy is the digest ("sha256:<hex>") of the policy that raised it:
	// the one put in force, or the one refused.
	Policy string `json:"policy,omitempty"`
	Detail string `json:"detail"` // free text for a person
}

// ParseGovernanceAlertBody decodes and checks a governance.alert body.
func ParseGovernanceAlertBody(b []byte) (*GovernanceAlertBody, error) {
	var g GovernanceAlertBody
	if err := strict.Unmarshal(b, &g); err != nil {
		return nil, wire.WrapFormat("record", "governance.alert body", err)
	}
	if !alertKinds[g.Kind] {
		return nil, wire.FormatErr("record", "governance.alert kind %.64q unknown", g.Kind)
	}
	if g.Subject == "" || len(g.Subject) > 4096 || len(g.Detail) > 4096 {
		return nil, wire.FormatErr("record", "governance.alert: subject empty or subject/detail over 4096 bytes")
	}
	if g.Policy != "" {
		if _, err := wire.ParseHash(g.Policy); err != nil {
			return nil, err
		}
	}
	return &g, nil
}
