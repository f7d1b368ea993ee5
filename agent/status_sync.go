package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/store"
)

// BrokerLink is the sync publisher's connection to the MQTT broker, as
// reported by the function given to SetBrokerLink.
type BrokerLink struct {
	Broker    string `json:"broker"`
	Connected bool   `json:"connected"`
	// Since is when Connected last changed: when the connection came up
	// or, not connected, when it was lost (or the agent began trying).
	Since         time.Time `json:"since,omitzero"`
	LastError     string    `json:"lastError,omitempty"`
	LastErrorTime time.Time `json:"lastErrorTime,omitzero"`
}

// DeliveryStatus is the last bundle the archive receipted.
type DeliveryStatus struct {
	Bundle   string    `json:"bundle"`   // outbox id
	Digest   string    `json:"digest"`   // "sha256:.." of the bundle file
	Time     time.Time `json:"time"`     // when its receipt was journaled
	LogIndex uint64    `json:"logIndex"` // the bundle's leaf index in the archive log
}

// ArchiveRefusal is the archive's last signed refusal of a bundle.
type ArchiveRefusal struct {
	Bundle  string    `json:"bundle"`  // outbox id
	Digest  string    `json:"digest"`  // "sha256:.." of the bundle file
	Checks  []string  `json:"checks"`  // the archive's checks that failed
	Message string    `json:"message"` // the archive's reason
	Time    time.Time `json:"time"`    // when the agent last received it
	// Count is how many times the archive refused this bundle for this
	// reason (the first time and the retries) since the agent started or
	// the last delivery; the refusal is logged once.
	Count uint64 `json:"count"`
}

// KeyStatus is the signing key in force and what it needs to seal.
type KeyStatus struct {
	KeyID string    `json:"keyId"`
	Since time.Time `json:"since,omitzero"` // time of its key.create or key.rotate record
	// PCRPolicy: the key is bound to an operator's PCR-policy key (a
	// firmware update needs `edgeseal tpm authorize-pcrs`, not a new
	// key); false: bound to the PCR values it was created with.
	PCRPolicy bool `json:"pcrPolicy"`
	// PCRAuthorizationNeeded: the PCRs do not hold the values the
	// authorization in force names (or there is none), so the agent
	// cannot seal until an operator's authorization for the values the
	// PCRs hold now is stored in the TPM state directory.
	PCRAuthorizationNeeded bool `json:"pcrAuthorizationNeeded"`
}

// syncState is what the core knows of the link to the archive.
type syncState struct {
	mu       sync.Mutex
	link     func() BrokerLink
	delivery *DeliveryStatus
	refusal  *ArchiveRefusal
	fileMu   sync.Mutex // LastRefusalFile's writes
	// seen counts the refusals logged since the last delivery, by
	// bundle, digest, checks and message (at most maxSeenRefusals).
	seen map[string]uint64
}

// maxSeenRefusals bounds syncState.seen; past it the memory starts over
// (a refusal is then logged once more).
const maxSeenRefusals = 1024

// SetBrokerLink gives the core the function that reports the sync
// publisher's broker connection; Status calls it. It must not block.
func (c *Core) SetBrokerLink(f func() BrokerLink) {
	c.syncSt.mu.Lock()
	c.syncSt.link = f
	c.syncSt.mu.Unlock()
}

// NoteRefusal records the archive's signed refusal of outbox entry id
// (bundle digest, failed checks, reason) for Status, kept across restarts
// in LastRefusalFile, and logs it at error
// level once: the same refusal of the same bundle again, as the
// publisher's retries bring it, is only counted until a bundle is
// delivered (several held bundles are each logged once).
func (c *Core) NoteRefusal(id, digest string, checks []string, message string) {
	now := c.opts.Now()
	key := strings.Join([]string{id, digest, strings.Join(checks, ","), message}, "\x00")
	c.syncSt.mu.Lock()
	if c.syncSt.seen == nil || len(c.syncSt.seen) >= maxSeenRefusals {
		c.syncSt.seen = map[string]uint64{}
	}
	c.syncSt.seen[key]++
	n := c.syncSt.seen[key]
	rf := ArchiveRefusal{Bundle: id, Digest: digest, Checks: slices.Clone(checks), Message: message, Time: now, Count: n}
	boundRefusal(&rf)
	c.syncSt.refusal = &rf
	c.syncSt.mu.Unlock()
	c.saveRefusal(rf)
	if n > 1 {
		c.log.Debug("the archive refused the bundle again", "outbox", id, "count", n)
		return
	}
	failed := strings.Join(checks, ", ")
	if failed == "" {
		failed = "none named"
	}
	c.log.Error("the archive REFUSED a bundle: "+message+" (failed checks: "+failed+"); it stays in the outbox and is sent again after sync.retry_held; logged once per bundle and reason",
		"outbox", id, "bundle", digest, "checks", checks, "reason", message)
}

// noteDelivery records the last bundle receipted. A delivery ends a run
// of refusals: the next refusal is logged again.
func (c *Core) noteDelivery(d DeliveryStatus) {
	c.syncSt.mu.Lock()
	c.syncSt.delivery = &d
	c.syncSt.seen = nil
	c.syncSt.mu.Unlock()
}

// syncStatus fills st's broker link, last delivery and last refusal.
func (c *Core) syncStatus(st *Status) {
	c.syncSt.mu.Lock()
	link, d, r := c.syncSt.link, c.syncSt.delivery, c.syncSt.refusal
	c.syncSt.mu.Unlock()
	if link != nil {
		l := link()
		st.Broker = &l
	}
	if d != nil {
		dc := *d
		st.LastDelivery = &dc
	}
	if r != nil {
		rc := *r
		rc.Checks = slices.Clone(r.Checks)
		st.LastRefusal = &rc
	}
}

// keyStatus is the key in force and whether it needs a PCR authorization,
// from the TPM state ts.
func (c *Core) keyStatus(ts TPMStatus) KeyStatus {
	k := c.Key()
	ks := KeyStatus{KeyID: k.KeyID, Since: k.Since}
	if ks.KeyID == "" {
		ks.KeyID = ts.KeyID
	}
	ks.PCRPolicy = c.t.Identity().PCRPolicyKey != nil
	ks.PCRAuthorizationNeeded = ks.PCRPolicy && ts.State == TPMPCRMismatch
	return ks
}

// recoverLastDelivery reads the last delivery after a restart (see
// LastDelivery), so Status reports it.
func (c *Core) recoverLastDelivery(ctx context.Context) error {
	d, err := LastDelivery(ctx, c.j)
	if err != nil {
		return err
	}
	if d != nil {
		c.noteDelivery(*d)
	}
	return nil
}

// LastDelivery finds the last `delivery.receipt` record among the last
// maxSealScan records of j; nil when there is none that recent.
func LastDelivery(ctx context.Context, j *store.Journal) (*DeliveryStatus, error) {
	end := j.Size()
	start := end - min(end, maxSealScan)
	var last *DeliveryStatus
	err := j.Records(ctx, start, end, func(_ uint64, rec []byte) error {
		r, err := custody.ParseRecord(rec)
		if err != nil || r.Type != custody.TypeDeliveryReceipt {
			return err
		}
		var b DeliveryBody
		if json.Unmarshal(r.Body, &b) != nil {
			return nil
		}
		last = &DeliveryStatus{Bundle: b.Outbox, Digest: b.Bundle, Time: r.Time, LogIndex: b.LogIndex}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("agent: last delivery: %w", err)
	}
	return last, nil
}
