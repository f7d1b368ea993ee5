package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/edgeseal/edgeseal/agent/policy/signed"
	"github.com/edgeseal/edgeseal/bundle/custody"
)

// governance watches the policies put in force (continuous monitoring):
// the document in force and the destinations of every version, those put
// in force before this start included (restoreGovernance). Alerts are
// journaled as governance.alert records, logged, counted by kind, shown in
// /v1/status and handed to the alarm sink.
type governance struct {
	mu       sync.Mutex
	restored bool // the policies before this start were looked up
	prev     *signed.Document
	seen     map[string]bool // nil until the first policy
	index    []uint64        // seqs of the last policy.change records (PolicyChangesFile)
	counts   map[string]uint64
	last     []GovernanceAlert
}

// GovernanceAlert is a governance alert as /v1/status shows it.
type GovernanceAlert struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Subject string    `json:"subject"`
	Policy  string    `json:"policy,omitempty"`
	Seq     uint64    `json:"seq"` // of its governance.alert record
	Detail  string    `json:"detail"`
}

// maxLastAlerts is how many alerts /v1/status keeps.
const maxLastAlerts = 16

// policyAlerts are the alerts next raises against the policies put in
// force before it, before this start too. Called with c.pol.mu held.
func (c *Core) policyAlerts(ctx context.Context, next *signed.Signed) []signed.Alert {
	g := &c.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.restored {
		c.restoreGovernance(ctx)
	}
	al, err := signed.Alerts(g.prev, g.seen, next.Document)
	if err != nil {
		c.log.Error("governance: cannot compare policies", "err", err)
	}
	for _, s := range next.Policy.ShortRetentions() {
		al = append(al, signed.Alert{Kind: custody.AlertRetentionShort, Subject: s.Workflow, Detail: s.String()})
	}
	return al
}

// policyInForce records next, journaled at seq, as the policy in force
// for later comparisons, at this run and the next start.
func (c *Core) policyInForce(next *signed.Signed, seq uint64) {
	g := &c.gov
	g.mu.Lock()
	defer g.mu.Unlock()
	c.indexPolicyChange(seq)
	g.prev = next.Document
	if g.seen == nil {
		g.seen = map[string]bool{}
	}
	ds, _ := signed.Destinations(next.Document)
	for _, d := range ds {
		g.seen[d] = true
	}
}

// raiseAlerts journals, logs and counts alerts about policy (a digest) and
// hands each to the alarm sink.
func (c *Core) raiseAlerts(ctx context.Context, policy string, actor custody.Actor, al []signed.Alert) error {
	var errs []error
	for _, a := range al {
		body := custody.GovernanceAlertBody{Kind: a.Kind, Subject: a.Subject, Policy: policy, Detail: a.Detail}
		ap, err := c.j.Append(ctx, c.entry(custody.TypeGovernanceAlert, actor, body))
		var seq uint64
		alarmSeq := int64(-1)
		if err != nil {
			errs = append(errs, fmt.Errorf("agent: journal governance.alert: %w", err))
		} else {
			c.cache.add(ap, nil)
			c.maybeWake(ap.Size)
			seq, alarmSeq = ap.Seq, int64(ap.Seq)
		}
		c.log.Warn("governance alert", "kind", a.Kind, "subject", a.Subject, "policy", policy, "seq", seq, "detail", a.Detail)
		c.alarm(a.Kind, alarmSeq, a.Subject+": "+a.Detail)
		g := &c.gov
		g.mu.Lock()
		if g.counts == nil {
			g.counts = map[string]uint64{}
		}
		g.counts[a.Kind]++
		g.last = append(g.last, GovernanceAlert{Time: c.opts.Now().UTC(), Kind: a.Kind, Subject: a.Subject, Policy: policy, Seq: seq, Detail: a.Detail})
		if n := len(g.last); n > maxLastAlerts {
			g.last = g.last[n-maxLastAlerts:]
		}
		g.mu.Unlock()
	}
	return errors.Join(errs...)
}

// unknownSignerAlert is the alert of a policy refused with signatures by
// keys outside the admin set (nil if err is not such a refusal).
func unknownSignerAlert(err error) []signed.Alert {
	var te *signed.ThresholdError
	if !errors.As(err, &te) || len(te.Unknown) == 0 {
		return nil
	}
	ids := strings.Join(te.Unknown, ",")
	return []signed.Alert{{Kind: custody.AlertSignerUnknown, Subject: ids,
		Detail: fmt.Sprintf("policy signed by %d key(s) not in the admin set; reload refused", len(te.Unknown))}}
}

// GovernanceAlerts counts the alerts raised since start, by kind (for
// metrics).
func (c *Core) GovernanceAlerts() map[string]uint64 {
	c.gov.mu.Lock()
	defer c.gov.mu.Unlock()
	return maps.Clone(c.gov.counts)
}

// GovernanceStatus is the governance part of /v1/status.
type GovernanceStatus struct {
	Total  map[string]uint64 `json:"total"`  // alerts since start, by kind
	Recent []GovernanceAlert `json:"recent"` // the last alerts, oldest first
}

// governanceStatus is nil while no alert was raised.
func (c *Core) governanceStatus() *GovernanceStatus {
	c.gov.mu.Lock()
	defer c.gov.mu.Unlock()
	if len(c.gov.last) == 0 {
		return nil
	}
	return &GovernanceStatus{Total: maps.Clone(c.gov.counts), Recent: append([]GovernanceAlert(nil), c.gov.last...)}
}
