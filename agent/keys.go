package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/dsse"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
	"github.com/edgeseal/edgeseal/tpm"
)

// Signing keys. Every key operation is a journal record, sealed like any
// other (docs/keys.md):
//
//   - key.create names the signing key in force the first time the
//     journal sees it (the first record of a new journal);
//   - key.rotate carries a statement naming the new key, signed by the
//     old key through the TPM before the switch (RotateKey, and the
//     sealer when the key is older than Options.RotateEvery);
//   - key.revoke (reason "rotated") retires the old key after it.
//
// The record that introduced a key is journaled under the idempotency key
// "key/<key id>", a revocation under "key.revoke/<key id>": Open finds the
// key in force's record with one lookup, never a scan, and a rotation a
// crash interrupted is finished or dropped by what the journal holds.

// KeyRotator is what a rotation needs of the TPM beyond TPM; *tpm.TPM
// implements it (tpm/rotate.go).
type KeyRotator interface {
	PrepareRotation(ctx context.Context) (tpm.Identity, error)
	PendingRotation(ctx context.Context) (tpm.Identity, bool, error)
	CommitRotation(ctx context.Context, keyID string) (tpm.Identity, error)
	DiscardRotation(ctx context.Context) error
}

// ErrRotationUnsupported reports a TPM that is not a KeyRotator.
var ErrRotationUnsupported = errors.New("agent: rotate: the TPM cannot rotate keys")

// OldKeyError reports that the key in force could not sign the rotation
// statement (typically *tpm.PCRMismatchError: the PCRs moved). Nothing was
// journaled and the key in force is unchanged; a PCR change is handled by
// PCR authorization, not by a rotation.
type OldKeyError struct {
	KeyID string
	Err   error
}

func (e *OldKeyError) Error() string {
	return fmt.Sprintf("agent: rotate: the key in force %s cannot sign the rotation: %v", e.KeyID, e.Err)
}

func (e *OldKeyError) Unwrap() error { return e.Err }

// KeyMismatchError reports that the TPM's signing key is not the key the
// journal has in force and no pending rotation explains it: the core does
// not seal.
type KeyMismatchError struct {
	Journal, TPM string
}

func (e *KeyMismatchError) Error() string {
	return fmt.Sprintf("agent: signing key: the journal has %s in force, the TPM signs with %s", e.Journal, e.TPM)
}

// KeyRotation is the outcome of RotateKey.
type KeyRotation struct {
	OldKeyID, NewKeyID string
	RotateSeq          uint64 // the key.rotate record
	RevokeSeq          uint64 // the key.revoke record of the old key
}

// KeyInForce is the signing key the journal has in force and the record
// that put it there.
type KeyInForce struct {
	KeyID string
	Since time.Time // time of its key.create or key.rotate record
	Seq   uint64
}

// coreKeys is the core's key state.
type coreKeys struct {
	cur     atomic.Pointer[KeyInForce]
	retryAt time.Time // scheduled rotation failed: not again before (under sealMu)
}

// rotateRetry is how long the sealer waits after a failed scheduled
// rotation.
const rotateRetry = time.Hour

func keyIdem(id string) []byte    { return []byte("key/" + id) }
func revokeIdem(id string) []byte { return []byte("key.revoke/" + id) }

// Key returns the signing key the journal has in force.
func (c *Core) Key() KeyInForce {
	if k := c.keys.cur.Load(); k != nil {
		return *k
	}
	return KeyInForce{}
}

// appendKeyed journals one record under an idempotency key and returns
// it with its time.
func (c *Core) appendKeyed(ctx context.Context, typ string, actor custody.Actor, body any, key []byte) (store.Appended, time.Time, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return store.Appended{}, time.Time{}, fmt.Errorf("agent: body: %w", err)
	}
	var at time.Time
	a, err := c.j.Append(ctx, store.Entry{
		Build: func(seq uint64, prev [32]byte) ([]byte, error) {
			at = c.stamp()
			r := custody.Record{Seq: seq, Type: typ, Time: at, Device: c.device, Prev: prev, Actor: actor, Body: raw}
			return r.Marshal()
		},
		Key: key,
	})
	if err != nil {
		return a, at, err
	}
	c.cache.add(a, nil)
	c.maybeWake(a.Size)
	return a, at, nil
}

// openKeys finishes or drops a rotation a crash interrupted, then learns
// the key in force from the journal, journaling its key.create when the
// journal does not know it.
func (c *Core) openKeys(ctx context.Context) error {
	if kr, ok := c.t.(KeyRotator); ok {
		if err := c.finishRotation(ctx, kr); err != nil {
			return err
		}
	}
	id := c.t.Identity()
	seq, err := c.j.Lookup(keyIdem(id.KeyID))
	switch {
	case err == nil:
		raw, err := c.j.Record(seq)
		if err != nil {
			return fmt.Errorf("agent: signing key record: %w", err)
		}
		r, err := custody.ParseRecord(raw)
		if err != nil {
			return fmt.Errorf("agent: signing key record %d: %w", seq, err)
		}
		c.keys.cur.Store(&KeyInForce{KeyID: id.KeyID, Since: r.Time, Seq: seq})
		if r.Type == custody.TypeKeyRotate {
			body, _, err := custody.ParseKeyRotateBody(r.Body)
			if err != nil {
				return fmt.Errorf("agent: signing key record %d: %w", seq, err)
			}
			if _, err := c.revokeRotated(ctx, body.OldKeyID, id.KeyID); err != nil {
				return err
			}
		}
		return nil
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("agent: signing key: %w", err)
	}
	a, at, err := c.appendKeyed(ctx, custody.TypeKeyCreate, custody.Actor{Kind: "agent", ID: id.KeyID},
		custody.NewKeyCreateBody(BundleIdentity(id)), keyIdem(id.KeyID))
	if err != nil {
		return fmt.Errorf("agent: journal key.create: %w", err)
	}
	c.keys.cur.Store(&KeyInForce{KeyID: id.KeyID, Since: at, Seq: a.Seq})
	c.log.Info("signing key journaled", "key_id", id.KeyID, "seq", a.Seq)
	return nil
}

// finishRotation commits a pending candidate whose key.rotate the journal
// holds and drops one it does not.
func (c *Core) finishRotation(ctx context.Context, kr KeyRotator) error {
	p, ok, err := kr.PendingRotation(ctx)
	if err != nil {
		return fmt.Errorf("agent: pending rotation: %w", err)
	}
	if !ok {
		return nil
	}
	inForce := c.t.Identity().KeyID
	_, lerr := c.j.Lookup(keyIdem(p.KeyID))
	switch {
	case p.KeyID == inForce || lerr == nil:
		if p.KeyID != inForce {
			c.log.Warn("finishing a signing-key rotation a restart interrupted", "key_id", p.KeyID, "old_key_id", inForce)
		}
		if _, err := kr.CommitRotation(ctx, p.KeyID); err != nil {
			return fmt.Errorf("agent: finish rotation: %w", err)
		}
	case errors.Is(lerr, store.ErrNotFound):
		c.log.Warn("dropping a signing-key rotation that was never journaled", "candidate", p.KeyID, "key_id", inForce)
		if err := kr.DiscardRotation(ctx); err != nil {
			return fmt.Errorf("agent: drop rotation: %w", err)
		}
	default:
		return fmt.Errorf("agent: pending rotation: %w", lerr)
	}
	return nil
}

// revokeRotated journals the key.revoke of a key a rotation replaced,
// once (a repeat is a no-op).
func (c *Core) revokeRotated(ctx context.Context, oldID, newID string) (uint64, error) {
	a, _, err := c.appendKeyed(ctx, custody.TypeKeyRevoke, custody.Actor{Kind: "agent", ID: newID},
		custody.KeyRevokeBody{V: custody.KeyBodyVersion, KeyID: oldID, Reason: custody.KeyRevokeRotated}, revokeIdem(oldID))
	var dup *store.DuplicateError
	switch {
	case errors.As(err, &dup):
		return dup.Seq, nil
	case err != nil:
		return 0, fmt.Errorf("agent: journal key.revoke: %w", err)
	}
	return a.Seq, nil
}

// RotateKey rotates the signing key: the TPM creates and certifies a new
// key; the old key signs a statement naming it (DSSE, through the TPM);
// the key.rotate record carrying the statement is journaled; the new key
// is committed in the TPM and signs every later seal; the old key's
// key.revoke (reason "rotated") follows. No seal runs meanwhile. A crash
// at any step leaves either the old key in force or the new one with its
// key.rotate journaled (Open finishes the rest). When the old key cannot
// sign it returns *OldKeyError and nothing changes.
func (c *Core) RotateKey(ctx context.Context, reason string) (*KeyRotation, error) {
	c.sealMu.Lock()
	defer c.sealMu.Unlock()
	return c.rotateLocked(ctx, reason)
}

func (c *Core) rotateLocked(ctx context.Context, reason string) (*KeyRotation, error) {
	kr, ok := c.t.(KeyRotator)
	if !ok {
		return nil, ErrRotationUnsupported
	}
	if reason == "" {
		return nil, &FieldError{Field: "reason", Reason: "required"}
	}
	if err := c.keyInForce(ctx); err != nil {
		return nil, err
	}
	old := c.t.Identity()
	cand, err := kr.PrepareRotation(ctx)
	if err != nil {
		return nil, fmt.Errorf("agent: rotate: %w", err)
	}
	st := custody.KeyRotateStatement{
		V: custody.KeyBodyVersion, Type: custody.KeyRotateStatementType, Device: c.device,
		OldKeyID: old.KeyID, NewKeyID: cand.KeyID, NewPublic: cand.SigningPublic,
		NewCertification: custody.KeyCert{Attest: cand.Certify.Attest, Signature: cand.Certify.Signature},
		AKID:             custody.KeyID(old.AKPublic), Reason: reason, Time: wire.FormatTime(c.stamp()),
	}
	payload, err := st.Marshal()
	if err != nil {
		_ = kr.DiscardRotation(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("agent: rotate: %w", err)
	}
	env, err := dsse.SignEnvelope(ctx, tpmSigner{t: c.t, id: old.KeyID, obs: c.obs}, custody.KeyRotatePayloadType, payload)
	if err != nil {
		_ = kr.DiscardRotation(context.WithoutCancel(ctx))
		var pm *tpm.PCRMismatchError
		if errors.As(err, &pm) {
			return nil, &OldKeyError{KeyID: old.KeyID, Err: err}
		}
		return nil, fmt.Errorf("agent: rotate: sign statement: %w", err)
	}
	body := custody.KeyRotateBody{V: custody.KeyBodyVersion, OldKeyID: old.KeyID, NewKeyID: cand.KeyID, Reason: reason, Statement: env}
	// From here the candidate stays until the journal decides: a failed
	// append may still have reached the disk (Open looks it up).
	a, at, err := c.appendKeyed(ctx, custody.TypeKeyRotate, custody.Actor{Kind: "agent", ID: old.KeyID}, body, keyIdem(cand.KeyID))
	if err != nil {
		return nil, fmt.Errorf("agent: journal key.rotate: %w", err)
	}
	c.keys.cur.Store(&KeyInForce{KeyID: cand.KeyID, Since: at, Seq: a.Seq})
	if _, err := kr.CommitRotation(ctx, cand.KeyID); err != nil {
		// The next seal (or start) commits it: nothing seals before.
		return nil, fmt.Errorf("agent: rotate: commit: %w", err)
	}
	rs, err := c.revokeRotated(ctx, old.KeyID, cand.KeyID)
	if err != nil {
		return nil, err
	}
	c.log.Warn("signing key rotated", "key_id", cand.KeyID, "old_key_id", old.KeyID, "reason", reason, "seq", a.Seq)
	return &KeyRotation{OldKeyID: old.KeyID, NewKeyID: cand.KeyID, RotateSeq: a.Seq, RevokeSeq: rs}, nil
}

// keyInForce makes sure the TPM signs with the key the journal has in
// force, committing a rotation whose key.rotate is journaled.
func (c *Core) keyInForce(ctx context.Context) error {
	k := c.keys.cur.Load()
	if k == nil {
		return nil
	}
	id := c.t.Identity().KeyID
	if id == k.KeyID {
		return nil
	}
	if kr, ok := c.t.(KeyRotator); ok {
		p, pending, err := kr.PendingRotation(ctx)
		if err != nil {
			return fmt.Errorf("agent: signing key: %w", err)
		}
		if pending && p.KeyID == k.KeyID {
			if _, err := kr.CommitRotation(ctx, p.KeyID); err != nil {
				return fmt.Errorf("agent: signing key: %w", err)
			}
			_, err := c.revokeRotated(ctx, id, p.KeyID)
			return err
		}
	}
	return &KeyMismatchError{Journal: k.KeyID, TPM: id}
}

// maybeRotate rotates the key in force once it is older than
// Options.RotateEvery (under sealMu). A failure is logged and tried again
// after rotateRetry; sealing goes on with the old key.
func (c *Core) maybeRotate(ctx context.Context) {
	k := c.keys.cur.Load()
	if c.opts.RotateEvery <= 0 || k == nil {
		return
	}
	if _, ok := c.t.(KeyRotator); !ok {
		return
	}
	now := c.opts.Now()
	if now.Sub(k.Since) < c.opts.RotateEvery || now.Before(c.keys.retryAt) {
		return
	}
	rot, err := c.rotateLocked(ctx, "scheduled")
	if err != nil {
		if ctx.Err() == nil {
			c.log.Error("scheduled signing-key rotation failed; sealing goes on with the key in force", "key_id", k.KeyID, "err", err)
			c.keys.retryAt = now.Add(rotateRetry)
		}
		return
	}
	c.log.Info("scheduled signing-key rotation", "key_id", rot.NewKeyID, "old_key_id", rot.OldKeyID, "age", now.Sub(k.Since))
}
