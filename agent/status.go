package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
)

// Export statuses reported by ExportStatus, in the order an export goes
// through them.
const (
	StatusJournaled = "journaled" // durable, not yet covered by a checkpoint
	StatusSealed    = "sealed"    // covered by a checkpoint; its bundle is in the outbox
	// StatusSent: the broker acknowledged (PUBACK) every frame of its
	// bundle at least once since the agent started. Not delivery: the
	// bundle stays in the outbox until a receipt. Known in memory only;
	// after a restart it reads sealed until the publisher sends it again.
	StatusSent = "sent"
	// StatusArchived: the archive's verified receipt for its bundle is
	// journaled (a `delivery.receipt` record; durable).
	StatusArchived = "archived"
	// StatusRefused: the export was refused and journaled as
	// export.rejected (ExportInfo.Reason says why); Checkpoint, Proof
	// and Bundle locate that record once sealed.
	StatusRefused = "refused"
)

// TPM states reported by Status.
const (
	TPMOK          = "ok"
	TPMPCRMismatch = "pcr_mismatch"
	TPMError       = "error"
)

// NotFoundError: there is no such export (or no checkpoint yet).
type NotFoundError struct {
	What, ID string
}

func (e *NotFoundError) Error() string {
	if e.ID == "" {
		return fmt.Sprintf("agent: no %s", e.What)
	}
	return fmt.Sprintf("agent: no %s %q", e.What, e.ID)
}

// CheckpointInfo is a checkpoint of the journal.
type CheckpointInfo struct {
	Origin string `json:"origin"`
	Size   uint64 `json:"size"`
	Root   string `json:"root"` // "sha256:..."
	Text   string `json:"text"` // the C2SP checkpoint body, as sealed
}

// ExportInfo is what ExportStatus knows of an export.
type ExportInfo struct {
	ID string `json:"id"`
	// Principal sent the export (export ids are scoped by principal).
	Principal string `json:"principal"`
	Status    string `json:"status"` // StatusJournaled, StatusSealed, StatusSent, StatusArchived or StatusRefused
	// Reason is why the export was refused (StatusRefused only), as
	// journaled in its export.rejected record.
	Reason string          `json:"reason,omitempty"`
	Seq    uint64          `json:"seq"`
	Leaf   string          `json:"leaf"`
	Record json.RawMessage `json:"record"` // the record's canonical bytes
	// Bundle is the outbox id of the bundle sealing the export (sealed only).
	Bundle string `json:"bundle,omitempty"`
	// Checkpoint and Proof: the latest checkpoint and the inclusion proof of
	// the record's leaf in it ("sha256:..." hashes; sealed only).
	Checkpoint *CheckpointInfo `json:"checkpoint,omitempty"`
	Proof      []string        `json:"proof,omitempty"`
	// Delivery is the journaled receipt of the bundle (archived only).
	Delivery *DeliveryBody `json:"delivery,omitempty"`
	// PayloadPurged: the payload bytes left the journal (a retention.purge
	// record, e.g. the local retention); the record and its leaf stay.
	PayloadPurged bool `json:"payloadPurged,omitempty"`
}

// SealInfo describes the last seal.
type SealInfo struct {
	Size    uint64    `json:"size"`
	Time    time.Time `json:"time,omitzero"`
	Counter uint64    `json:"counter"`
	Bundle  string    `json:"bundle"`           // outbox id
	Digest  string    `json:"digest,omitempty"` // SHA-256 of the bundle file
}

// TPMStatus is the TPM's state as the core sees it.
type TPMStatus struct {
	State   string `json:"state"`             // TPMOK, TPMPCRMismatch or TPMError
	Changed []int  `json:"changed,omitempty"` // PCRs that moved (pcr_mismatch)
	Error   string `json:"error,omitempty"`
	KeyID   string `json:"keyId"`
}

// Status is the agent's state for GET /v1/status.
type Status struct {
	Device      string    `json:"device"`
	JournalSize uint64    `json:"journalSize"`
	Pending     uint64    `json:"pending"` // records not yet covered by a checkpoint
	LastSeal    *SealInfo `json:"lastSeal,omitempty"`
	Outbox      int       `json:"outbox"` // bundles waiting for a receipt
	// OutboxBytes is the outbox's size, OutboxQuota the size above which
	// OutboxOverQuota is set (and logged once): bundles are not reaching
	// the archive. Exports are still journaled and sealed.
	OutboxBytes     int64     `json:"outboxBytes"`
	OutboxQuota     int64     `json:"outboxQuota"`
	OutboxOverQuota bool      `json:"outboxOverQuota"`
	TPM             TPMStatus `json:"tpm"`
	Policy          string    `json:"policy,omitempty"` // digest of the policy in force
	// PolicySigned is who signed the policy in force and the last reload
	// refused (absent: the policy is not signed).
	PolicySigned *PolicyStatus `json:"policySigned,omitempty"`
	// Governance are the governance alerts raised since start (absent:
	// none); see docs/formats.md, governance.alert.
	Governance *GovernanceStatus `json:"governance,omitempty"`
	// Key is the signing key in force and whether it waits for a PCR
	// authorization.
	Key KeyStatus `json:"key"`
	// Broker is the sync link to the MQTT broker (absent: sync is off);
	// LastDelivery the last bundle the archive receipted, LastRefusal
	// the archive's last signed refusal of a bundle (status_sync.go).
	Broker       *BrokerLink     `json:"broker,omitempty"`
	LastDelivery *DeliveryStatus `json:"lastDelivery,omitempty"`
	LastRefusal  *ArchiveRefusal `json:"lastRefusal,omitempty"`
}

// pcrReader is implemented by *tpm.TPM; Status uses it when present.
type pcrReader interface {
	ReadPCRs(ctx context.Context) (map[int][]byte, error)
}

// Checkpoint returns the latest checkpoint, or *NotFoundError before the
// first seal.
func (c *Core) Checkpoint() (*CheckpointInfo, error) {
	_, note, err := c.j.LastCheckpoint()
	if errors.Is(err, store.ErrNotFound) {
		return nil, &NotFoundError{What: "checkpoint"}
	}
	if err != nil {
		return nil, fmt.Errorf("agent: checkpoint: %w", err)
	}
	cp, err := merkle.ParseCheckpoint(note)
	if err != nil {
		return nil, fmt.Errorf("agent: checkpoint: %w", err)
	}
	return &CheckpointInfo{Origin: cp.Origin, Size: cp.Size, Root: wire.FormatHash(cp.Root), Text: string(note)}, nil
}

// ExportStatus reports an export the named principal sent: its record,
// whether a checkpoint covers it and, if so, its inclusion proof against
// the latest checkpoint and the bundle that sealed it. An id the principal
// sent that was refused reports StatusRefused with the journaled reason
// (its first refusal, unless the id was accepted later). *NotFoundError
// when the principal sent no export with that id: another principal's id
// is answered exactly like an unknown one.
func (c *Core) ExportStatus(ctx context.Context, principal, id string) (*ExportInfo, error) {
	if checkID(id) != nil {
		return nil, &NotFoundError{What: "export", ID: id}
	}
	var reason string
	seq, err := c.lookupExport(principal, id)
	if errors.Is(err, store.ErrNotFound) {
		var rf refusal
		rf, err = c.lookupRefused(principal, id)
		seq, reason = rf.seq, rf.reason
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, &NotFoundError{What: "export", ID: id}
	}
	if err != nil {
		return nil, fmt.Errorf("agent: export %s: %w", id, err)
	}
	rec, err := c.j.Record(seq)
	if err != nil {
		return nil, fmt.Errorf("agent: export %s: %w", id, err)
	}
	info := &ExportInfo{ID: id, Principal: principal, Status: StatusJournaled, Seq: seq, Leaf: wire.FormatHash(merkle.LeafHash(rec)), Record: rec}
	if reason != "" {
		info.Status, info.Reason = StatusRefused, reason
	} else if d, _, ok, err := custody.RecordPayloadFile(rec); err == nil && ok {
		if _, purged, err := c.j.PayloadState(d); err == nil {
			info.PayloadPurged = purged
		}
	}
	cp, err := c.Checkpoint()
	var nf *NotFoundError
	if errors.As(err, &nf) || (err == nil && cp.Size <= seq) {
		return info, nil
	}
	if err != nil {
		return nil, err
	}
	proof, err := c.j.InclusionProof(seq, cp.Size)
	if err != nil {
		return nil, fmt.Errorf("agent: export %s: proof: %w", id, err)
	}
	info.Checkpoint = cp
	if reason == "" {
		info.Status = StatusSealed
	}
	for _, h := range proof {
		info.Proof = append(info.Proof, wire.FormatHash(h))
	}
	// The bundle sealing seq is the one of the first checkpoint past it.
	first, _, err := c.j.NextCheckpoint(seq)
	if err != nil {
		return nil, fmt.Errorf("agent: export %s: bundle: %w", id, err)
	}
	info.Bundle = OutboxID(first)
	d, err := c.delivery(info.Bundle)
	if err != nil {
		return nil, fmt.Errorf("agent: export %s: delivery: %w", id, err)
	}
	switch {
	case reason != "":
		info.Delivery = d // a refusal stays refused, sealed or not
	case d != nil:
		info.Status, info.Delivery = StatusArchived, d
	case c.isSent(info.Bundle):
		info.Status = StatusSent
	}
	return info, nil
}

// Status reports the journal, the last seal, the outbox, the TPM and the
// key in force, and the link to the archive.
func (c *Core) Status(ctx context.Context) (*Status, error) {
	st := &Status{Device: c.device, JournalSize: c.j.Size(), LastSeal: c.lastSeal.Load()}
	if p := c.policy(); p != nil {
		st.Policy = p.Digest()
	}
	st.PolicySigned = c.policyStatus()
	st.Governance = c.governanceStatus()
	cpSize, _, err := c.j.LastCheckpoint()
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("agent: status: %w", err)
	}
	st.Pending = st.JournalSize - min(cpSize, st.JournalSize)
	u, err := c.CheckOutbox(ctx)
	if err != nil {
		return nil, fmt.Errorf("agent: status: %w", err)
	}
	st.Outbox, st.OutboxBytes, st.OutboxQuota, st.OutboxOverQuota = u.Bundles, u.Bytes, u.Quota, u.OverQuota
	st.TPM = c.tpmStatus(ctx)
	st.Key = c.keyStatus(st.TPM)
	c.syncStatus(st)
	return st, nil
}

// tpmStatus compares the PCRs with the values the signing key is bound to,
// or those of the PCR authorization in force (when the TPM can read them),
// and looks at the last seal's error.
func (c *Core) tpmStatus(ctx context.Context) TPMStatus {
	id := c.t.Identity()
	ts := TPMStatus{State: TPMOK, KeyID: id.KeyID}
	if r, ok := c.t.(pcrReader); ok {
		cur, err := r.ReadPCRs(ctx)
		if err != nil {
			return TPMStatus{State: TPMError, Error: err.Error(), KeyID: id.KeyID}
		}
		want := expectedPCRs(c.t, id)
		for _, p := range id.PCRs {
			if string(cur[p]) != string(want[p]) {
				ts.Changed = append(ts.Changed, p)
			}
		}
		if len(ts.Changed) > 0 {
			ts.State = TPMPCRMismatch
			return ts
		}
	}
	if ep := c.sealErr.Load(); ep != nil {
		var pe *tpm.PCRMismatchError
		if errors.As(*ep, &pe) {
			return TPMStatus{State: TPMPCRMismatch, Changed: pe.Changed(), Error: (*ep).Error(), KeyID: id.KeyID}
		}
		return TPMStatus{State: TPMError, Error: (*ep).Error(), KeyID: id.KeyID}
	}
	return ts
}

// maxSealScan bounds the records recoverLastSeal reads.
const maxSealScan = 10000

// recoverLastSeal finds the seal record of the last checkpoint after a
// restart, so Status can report the last seal's time and counter.
func (c *Core) recoverLastSeal(ctx context.Context) error {
	cpSize, _, err := c.j.LastCheckpoint()
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("agent: last seal: %w", err)
	}
	info := &SealInfo{Size: cpSize, Bundle: OutboxID(cpSize)}
	errFound := errors.New("found")
	end := min(c.j.Size(), cpSize+maxSealScan)
	err = c.j.Records(ctx, cpSize, end, func(_ uint64, rec []byte) error {
		r, err := custody.ParseRecord(rec)
		if err != nil || r.Type != custody.TypeSeal {
			return err
		}
		var body struct {
			Checkpoint struct {
				Size uint64 `json:"size"`
			} `json:"checkpoint"`
			Counter uint64 `json:"counter"`
			Bundle  string `json:"bundle"`
		}
		if json.Unmarshal(r.Body, &body) != nil || body.Checkpoint.Size != cpSize {
			return nil
		}
		info.Time, info.Counter, info.Digest = r.Time, body.Counter, body.Bundle
		return errFound
	})
	if err != nil && !errors.Is(err, errFound) {
		return fmt.Errorf("agent: last seal: %w", err)
	}
	c.lastSeal.Store(info)
	return nil
}
