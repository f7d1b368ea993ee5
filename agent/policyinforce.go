package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/agent/policy"
	"github.com/edgeseal/edgeseal/agent/policy/signed"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/store"
)

// policyState is the policy in force and the alarm of the last refused
// reload. Ingest holds mu for reading while it checks and journals, a
// policy change holds it for writing while it journals its policy.change
// record and swaps: every export journaled after that record was checked
// against the new policy, every one before it against the old.
type policyState struct {
	mu      sync.RWMutex
	cur     atomic.Pointer[policy.Policy]
	signers atomic.Pointer[[]string]
	seq     atomic.Int64 // seq of the policy.change in force; -1: none
	refused atomic.Pointer[PolicyAlarm]
	fails   atomic.Uint64
}

// PolicyAlarm is a signed policy the agent refused on a reload; it keeps
// running on the policy in force. /v1/status shows the last one until a
// reload succeeds.
type PolicyAlarm struct {
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"`
}

// PolicyStatus is the policy part of /v1/status when the policy is signed.
type PolicyStatus struct {
	Signers []string `json:"signers"`
	// Seq is the journal sequence number of the policy.change record that
	// put it in force.
	Seq uint64 `json:"seq"`
	// Refused is the last reload refused since the policy in force was
	// installed (absent: none); RefusedTotal counts refusals since start.
	Refused      *PolicyAlarm `json:"refused,omitempty"`
	RefusedTotal uint64       `json:"refusedTotal"`
}

// policy is the policy in force.
func (c *Core) policy() *policy.Policy {
	if p := c.pol.cur.Load(); p != nil {
		return p
	}
	return c.opts.Policy
}

// Policy is the policy in force.
func (c *Core) Policy() *policy.Policy { return c.policy() }

// PolicyKey is the idempotency key the first policy.change record under an
// admin set carries (but the journal's first, which carries
// PolicySignedKey), so a set new to the journal is known at start.
func PolicyKey(admins *signed.Admins) []byte {
	return []byte("policy.admins:" + admins.Digest())
}

// PolicySignedKey is the idempotency key of the journal's first
// policy.change: from it on the journal runs on signed policies only.
var PolicySignedKey = []byte("policy.signed")

// adminsKey is the key the next policy.change under admins carries (nil:
// none) and whether the set is new to the journal.
func (c *Core) adminsKey(admins *signed.Admins) (key []byte, fresh bool, err error) {
	first, err := c.j.Lookup(PolicySignedKey)
	if errors.Is(err, store.ErrNotFound) {
		return PolicySignedKey, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	if _, err := c.j.Lookup(PolicyKey(admins)); err == nil {
		return nil, false, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, false, err
	}
	raw, err := c.j.Record(first)
	if err != nil {
		return nil, false, err
	}
	r, err := custody.ParseRecord(raw)
	if err != nil {
		return nil, false, err
	}
	var body struct {
		Admins *signed.Admins `json:"admins"`
	}
	if err := json.Unmarshal(r.Body, &body); err == nil && body.Admins != nil && body.Admins.Digest() == admins.Digest() {
		return nil, false, nil // the journal's first set
	}
	return PolicyKey(admins), true, nil
}

// SignedSince is the seq of the journal's first policy.change; false when
// the journal never ran on a signed policy.
func (c *Core) SignedSince() (uint64, bool, error) {
	seq, err := c.j.Lookup(PolicySignedKey)
	if errors.Is(err, store.ErrNotFound) {
		return 0, false, nil
	}
	return seq, err == nil, err
}

// InstallPolicy journals a policy.change record whose body is the whole
// signed policy s (checked against admins) and puts it in force. reason
// is signed.ReasonStart or signed.ReasonReload; actor says who asked. It
// reports whether the admin set is new to the journal (its first
// policy.change).
func (c *Core) InstallPolicy(ctx context.Context, s *signed.Signed, admins *signed.Admins, reason string, actor custody.Actor) (seq uint64, newAdmins bool, err error) {
	if err := signed.CheckDuties(s.Policy, admins); err != nil {
		return 0, false, err
	}
	c.pol.mu.Lock()
	defer c.pol.mu.Unlock()
	alerts := c.policyAlerts(ctx, s)
	e := c.entry(custody.TypePolicyChange, actor, signed.NewChangeBody(s, admins, reason))
	if e.Key, newAdmins, err = c.adminsKey(admins); err != nil {
		return 0, false, fmt.Errorf("agent: policy.change: %w", err)
	}
	a, err := c.j.Append(ctx, e)
	if err != nil {
		return 0, false, fmt.Errorf("agent: journal policy.change: %w", err)
	}
	c.cache.add(a, nil)
	c.maybeWake(a.Size)
	c.pol.cur.Store(s.Policy)
	signers := slices.Clone(s.Signers)
	c.pol.signers.Store(&signers)
	c.pol.seq.Store(int64(a.Seq))
	c.pol.refused.Store(nil)
	c.policyInForce(s, a.Seq)
	if err := c.raiseAlerts(ctx, s.Policy.Digest(), actor, alerts); err != nil {
		c.log.Error("governance alert not journaled", "err", err)
	}
	return a.Seq, newAdmins, nil
}

// RefusePolicy raises the alarm of a refused reload (logged, in
// /v1/status, handed to the alarm sink): the policy in force stays.
func (c *Core) RefusePolicy(cause error) {
	c.pol.fails.Add(1)
	c.pol.refused.Store(&PolicyAlarm{Time: c.opts.Now().UTC(), Reason: cause.Error()})
	c.log.Error("policy reload refused; the policy in force stays", "err", cause, "policy", c.policy().Digest())
	c.alarm(AlarmPolicyRefused, -1, cause.Error())
}

// PolicyRefusals counts reloads refused since the start (for metrics).
func (c *Core) PolicyRefusals() uint64 { return c.pol.fails.Load() }

// policyStatus is nil while the policy is unsigned.
func (c *Core) policyStatus() *PolicyStatus {
	s := c.pol.signers.Load()
	if s == nil {
		return nil
	}
	return &PolicyStatus{Signers: slices.Clone(*s), Seq: uint64(c.pol.seq.Load()), Refused: c.pol.refused.Load(), RefusedTotal: c.pol.fails.Load()}
}

// CheckPrincipalDuties refuses a config whose principal named like a
// policy admin holds the exporter role (separation of duties).
func CheckPrincipalDuties(ps config.Principals, admins *signed.Admins) error {
	for _, p := range ps {
		if admins.Has(p.Name) && p.Has(config.RoleExporter) {
			return &ConfigError{Key: "principals", Reason: fmt.Sprintf("principal %q is a policy admin and may not hold the exporter role (separation of duties)", p.Name)}
		}
	}
	return nil
}
