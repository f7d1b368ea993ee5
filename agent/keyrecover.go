package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/internal/fsutil"
	"github.com/edgeseal/edgeseal/store"
)

// The cases of a key recovery (KeyRecoverBody.Case).
const (
	// RecoverReseal: the same TPM, only the PCRs moved; the data key was
	// sealed again to the TPM as it is now. The signing key is unchanged.
	RecoverReseal = "reseal"
	// RecoverNewTPM: the TPM was cleared or replaced; new keys were made
	// (a signing key certified by the new AK, the recovered data key
	// sealed again) and a new sealing epoch began.
	RecoverNewTPM = "new-tpm"
)

// KeyRecoverBody is the body of a `key.recover` record: the device's data
// key was recovered from the operator's recovery wrap.
type KeyRecoverBody struct {
	ID             string `json:"id"`     // the recovery's random id, journaled once
	Device         string `json:"device"` // "<site>/<name>"
	Case           string `json:"case"`   // RecoverReseal or RecoverNewTPM
	KeyID          string `json:"keyId"`  // the signing key from now on
	PreviousKeyID  string `json:"previousKeyId"`
	RecoveryKeyID  string `json:"recoveryKeyId"` // the operator's recovery key that opened the wrap
	Epoch          uint64 `json:"epoch"`         // the sealing epoch from now on
	RetiredBundles int    `json:"retiredBundles"`
	Reason         string `json:"reason"` // what the TPM said
}

// keyRecoverKey is the idempotency key of the record of recovery id.
func keyRecoverKey(id string) []byte { return []byte("key.recover/" + id) }

// JournalKeyRecover journals a `key.recover` record in j, which no agent
// has open (`edgeseal tpm recover` runs while the agent is stopped; the
// journal's lock makes sure). It is journaled once per body.ID: a second
// call finds the first (dup true) and appends nothing. The record's time
// is now, or the last record's time if that is later. The agent seals it
// with what follows, under the key it names.
func JournalKeyRecover(ctx context.Context, j *store.Journal, body KeyRecoverBody, now time.Time) (seq uint64, dup bool, err error) {
	if body.ID == "" || body.Device == "" || (body.Case != RecoverReseal && body.Case != RecoverNewTPM) {
		return 0, false, fmt.Errorf("agent: key.recover: id, device and case are required")
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return 0, false, fmt.Errorf("agent: key.recover: %w", err)
	}
	if n := j.Size(); n > 0 {
		rec, err := j.Record(n - 1)
		if err != nil {
			return 0, false, fmt.Errorf("agent: key.recover: last record: %w", err)
		}
		r, err := custody.ParseRecord(rec)
		if err != nil {
			return 0, false, fmt.Errorf("agent: key.recover: last record: %w", err)
		}
		if now.Before(r.Time) {
			now = r.Time
		}
	}
	a, err := j.Append(ctx, store.Entry{
		Build: func(seq uint64, prev [32]byte) ([]byte, error) {
			r := custody.Record{Seq: seq, Type: custody.TypeKeyRecover, Time: now, Device: body.Device, Prev: prev,
				Actor: custody.Actor{Kind: "operator", ID: body.RecoveryKeyID}, Body: raw}
			return r.Marshal()
		},
		Key: keyRecoverKey(body.ID),
	})
	if d, ok := errors.AsType[*store.DuplicateError](err); ok {
		return d.Seq, true, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("agent: key.recover: %w", err)
	}
	return a.Seq, false, nil
}

// RetiredOutboxDir is where StartEpoch moves the bundles the outbox still
// held when epoch ended: DATA/epoch-<epoch>-outbox.
func RetiredOutboxDir(dataDir string, epoch uint64) string {
	return filepath.Join(dataDir, fmt.Sprintf("epoch-%d-outbox", epoch))
}

// StartEpoch begins a new sealing epoch in j after the device's signing
// key was lost (a cleared or replaced TPM), with no agent running: the
// bundles still in the outbox (sealed and signed by the lost key, never
// delivered) are written to RetiredOutboxDir(dataDir, old epoch) as
// <id>.bundle files (0600) and removed from the outbox, then the stored
// checkpoints are forgotten (store.Journal.StartEpoch), so the agent's
// next seals cover the journal again from size 0 under the new key. It
// returns the new epoch and the retired bundle files. Running it again
// after a crash finishes the job.
func StartEpoch(ctx context.Context, j *store.Journal, dataDir string) (uint64, []string, error) {
	old, err := j.Epoch()
	if err != nil {
		return 0, nil, fmt.Errorf("agent: new epoch: %w", err)
	}
	var ids []string
	if err := j.OutboxIDs(ctx, func(id string) error { ids = append(ids, id); return nil }); err != nil {
		return 0, nil, fmt.Errorf("agent: new epoch: %w", err)
	}
	dir := RetiredOutboxDir(dataDir, old)
	var files []string
	if len(ids) > 0 {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return 0, nil, fmt.Errorf("agent: new epoch: %w", err)
		}
	}
	var buf []byte
	for _, id := range ids {
		data, ok, err := j.OutboxGetInto(ctx, id, &buf)
		if err != nil {
			return 0, nil, fmt.Errorf("agent: new epoch: outbox %s: %w", id, err)
		}
		if !ok {
			continue
		}
		p := filepath.Join(dir, id+".bundle")
		if err := fsutil.WriteFileAtomic(p, data, 0o600); err != nil {
			return 0, nil, fmt.Errorf("agent: new epoch: %w", err)
		}
		files = append(files, p)
	}
	if err := j.DeleteOutboxes(ctx, ids); err != nil {
		return 0, nil, fmt.Errorf("agent: new epoch: %w", err)
	}
	e, err := j.StartEpoch(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("agent: new epoch: %w", err)
	}
	return e, files, nil
}

// LastKeyID returns the signing key id the journal last named: the keyId
// of its last `agent.start`, `seal` or `key.recover` record ("" if none).
func LastKeyID(j *store.Journal) (string, error) {
	for seq := j.Size(); seq > 0; seq-- {
		rec, err := j.Record(seq - 1)
		if err != nil {
			return "", fmt.Errorf("agent: last key: %w", err)
		}
		r, err := custody.ParseRecord(rec)
		if err != nil {
			return "", fmt.Errorf("agent: last key: record %d: %w", seq-1, err)
		}
		switch r.Type {
		case custody.TypeAgentStart, custody.TypeSeal, custody.TypeKeyRecover:
			var b struct {
				KeyID string `json:"keyId"`
			}
			if json.Unmarshal(r.Body, &b) == nil && b.KeyID != "" {
				return b.KeyID, nil
			}
		}
	}
	return "", nil
}

// deliveryKey is the idempotency key of the receipt record of outbox
// entry id in the core's epoch: DeliveryKey in the first, and the epoch
// named after it in later ones (a new epoch's bundles reuse the old
// epoch's outbox ids, as their checkpoints restart from size 0).
func (c *Core) deliveryKey(id string) []byte {
	return EpochDeliveryKey(c.epoch, id)
}

// EpochDeliveryKey is the idempotency key of the receipt record of outbox
// entry id sealed in epoch: "delivery/<id>" in epoch 1 (DeliveryKey),
// "delivery/e<epoch>/<id>" after.
func EpochDeliveryKey(epoch uint64, id string) []byte {
	if epoch <= 1 {
		return DeliveryKey(id)
	}
	return fmt.Appendf(nil, "delivery/e%d/%s", epoch, id)
}
