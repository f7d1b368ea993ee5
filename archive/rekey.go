package archive

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/bundle/trustfile"
	"github.com/edgeseal/edgeseal/bundle/verify"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
)

// KindRekey is the alert kind of an operator's rekey.
const KindRekey = "device.rekey"

// eventRekey is the index event of a rekey statement.
const eventRekey = "device.rekey"

// rekeyEvent is the index event written after a rekey statement's log
// record; replaying it brings the registry up to date from the log.
type rekeyEvent struct {
	V        int    `json:"v"`
	Type     string `json:"type"`
	Time     string `json:"time"`
	Device   string `json:"device"`
	Epoch    uint64 `json:"epoch"`    // the epoch opened
	LogIndex uint64 `json:"logIndex"` // of the statement
}

func rekeyKey(device string, epoch uint64) []byte {
	return fmt.Appendf(nil, "rekey:%s#%d", device, epoch)
}

// isRekeyEvent tells a rekey event from an accept event (both are
// written by encoding/json, "v" then "type" first).
func isRekeyEvent(rec []byte) bool {
	return bytes.HasPrefix(rec, []byte(`{"v":1,"type":"`+eventRekey+`"`))
}

func parseRekeyEvent(rec []byte) (*rekeyEvent, error) {
	var ev rekeyEvent
	dec := json.NewDecoder(bytes.NewReader(rec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		return nil, err
	}
	if ev.V != 1 || ev.Type != eventRekey {
		return nil, fmt.Errorf("event %q version %d", ev.Type, ev.V)
	}
	return &ev, nil
}

// Rekeyed is what Rekey did.
type Rekeyed struct {
	Statement *EpochStatement
	LogIndex  uint64 // of the statement in the archive log
	// Checkpoint is the archive log's signed note at a size that
	// includes the statement.
	Checkpoint []byte
}

// Rekey continues the history of device name as a new epoch under keyID,
// the key of its pending enrollment (Devices.Enroll: a re-enrolled
// device's new trust material, after its TPM was cleared or its board or
// disk replaced). The device must be approved and keyID not one of its
// keys so far. Rekey waits for the device's bundles in flight, then
// appends an EpochStatement to the archive log (who, when, why, the
// closed epoch's last accepted checkpoint, counter and bundle, the new
// key and trust), records it in the index and the registry, and from
// then on:
//
//   - the new key's bundles are verified as a fresh chain (the first one
//     starts at size 0, counter and clock are the new TPM's), accepted
//     with receipts naming the new epoch;
//   - bundles signed by the closed epoch's key are refused (CheckEpoch),
//     but those accepted before keep their receipts, and the closed
//     epoch's trust stays in the registry (DeviceInfo.Epochs).
//
// by names the operator (required); reason is free text. Both are at
// most 1024 bytes.
func (a *Archive) Rekey(ctx context.Context, name, keyID, by, reason string) (*Rekeyed, error) {
	return a.RekeySigned(ctx, name, keyID, by, reason, nil)
}

// RekeySigned is Rekey with the statement signed by the operator key op
// (an OperatorSignature, as legal holds and purges carry). With
// Options.OperatorKeys set, op is required and must be one of them.
func (a *Archive) RekeySigned(ctx context.Context, name, keyID, by, reason string, op crypto.Signer) (*Rekeyed, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if op != nil || len(a.opts.OperatorKeys) > 0 {
		if op == nil {
			return nil, &OperatorError{Op: StatementRekey, Reason: "operator keys are configured: sign the rekey with an operator key (--operator-key)"}
		}
		if err := a.checkOperator(StatementRekey, op); err != nil {
			return nil, err
		}
	}
	l := a.deviceLock(name)
	l.Lock()
	defer l.Unlock()
	info, req, err := a.devices.rekeyCandidate(name, keyID)
	if err != nil {
		return nil, err
	}
	cur := info.CurrentEpoch()
	if err := a.loadState(ctx, name, cur); err != nil {
		return nil, err
	}
	// The device's bundles in flight (admitted before the lock) finish
	// first: the closed epoch ends at what is durable.
	for {
		a.mu.Lock()
		tail := a.stateOf(name, cur).tail
		a.mu.Unlock()
		if tail == nil {
			break
		}
		select {
		case <-tail.t.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	a.mu.Lock()
	ds := a.stateOf(name, cur)
	closed := ClosedEpoch{Epoch: cur, KeyID: info.KeyID, Bundles: ds.bundles}
	if ds.last != nil {
		cp, err := merkle.ParseCheckpoint([]byte(ds.last.Checkpoint))
		if err != nil {
			a.mu.Unlock()
			return nil, fmt.Errorf("archive: rekey: last checkpoint: %w", err)
		}
		closed.CheckpointSize, closed.CheckpointRoot, closed.Counter = cp.Size, wire.FormatHash(cp.Root), ds.last.Counter
		closed.Bundle, closed.LogIndex = wire.FormatHash(ds.lastBundle), ds.lastLogIndex
	}
	a.mu.Unlock()
	st := &EpochStatement{V: StatementVersion, Type: StatementRekey, Device: name, Epoch: cur + 1, KeyID: keyID,
		Trust: bytes.Clone(req.Trust), Closed: closed, By: by, Reason: reason, Time: wire.FormatTime(a.now())}
	if op != nil {
		if err := st.check(); err != nil {
			return nil, fmt.Errorf("archive: rekey: %w", err)
		}
		if err := st.sign(st, op); err != nil {
			return nil, err
		}
	}
	rec, err := st.Marshal()
	if err != nil {
		return nil, err
	}
	if st, err = ParseEpochStatement(rec); err != nil { // what Open will read back
		return nil, fmt.Errorf("archive: rekey: %w", err)
	}
	lgd, err := a.log.append(ctx, rec)
	if err != nil {
		return nil, fmt.Errorf("archive: rekey: log: %w", err)
	}
	res := lgd[0]
	if res.old != nil {
		// A rekey to this epoch was logged by an attempt that failed
		// after: complete that one if it is the same key.
		lr, perr := parseLogRecord(res.old)
		if perr != nil || lr.stmt == nil || lr.stmt.KeyID != keyID || lr.stmt.Closed != closed {
			return nil, fmt.Errorf("archive: rekey: log record %d already opens epoch %d of %s otherwise", res.seq, st.Epoch, name)
		}
		st = lr.stmt
	}
	signed, err := a.log.checkpoint(ctx, res.seq+1)
	if err != nil {
		return nil, err
	}
	if err := a.completeRekey(ctx, st, res.seq); err != nil {
		return nil, err
	}
	a.alert(ctx, Alert{Severity: SeverityWarning, Kind: KindRekey, Device: name, Reasons: []string{
		fmt.Sprintf("epoch %d (key %s) closed at checkpoint %d after %d bundles by %s: %s", closed.Epoch, closed.KeyID, closed.CheckpointSize, closed.Bundles, by, reason),
		fmt.Sprintf("epoch %d opened with key %s (archive log index %d)", st.Epoch, keyID, res.seq),
	}})
	return &Rekeyed{Statement: st, LogIndex: res.seq, Checkpoint: signed}, nil
}

// completeRekey writes the index event of the statement logged at seq
// (unless it is there) and applies it to the registry.
func (a *Archive) completeRekey(ctx context.Context, st *EpochStatement, seq uint64) error {
	ev, err := json.Marshal(rekeyEvent{V: 1, Type: eventRekey, Time: wire.FormatTime(a.now()), Device: st.Device, Epoch: st.Epoch, LogIndex: seq})
	if err != nil {
		return fmt.Errorf("archive: rekey: %w", err)
	}
	_, err = a.index.Append(ctx, store.Entry{Build: func(uint64, [32]byte) ([]byte, error) { return ev, nil }, Key: rekeyKey(st.Device, st.Epoch)})
	switch _, dup := errors.AsType[*store.DuplicateError](err); {
	case err == nil:
		a.mu.Lock()
		a.rekeys = append(a.rekeys, seq)
		a.mu.Unlock()
	case !dup:
		return fmt.Errorf("archive: rekey: index: %w", err)
	}
	if a.gate != nil {
		a.gate.applyRekey(st, seq)
	}
	if err := a.devices.applyRekey(ctx, st, seq); err != nil {
		a.markStale.Store(true) // the next Open applies it from its index event
		return err
	}
	return nil
}

// applyLoggedRekey applies the statement at log index seq to the
// registry (Open: the registry follows the log).
func (a *Archive) applyLoggedRekey(ctx context.Context, seq uint64) error {
	rec, err := a.log.record(ctx, seq)
	if err != nil {
		return fmt.Errorf("archive: rekey statement %d: %w", seq, err)
	}
	lr, err := parseLogRecord(rec)
	if err != nil || lr.stmt == nil {
		return fmt.Errorf("archive: log record %d is not a rekey statement: %w", seq, err)
	}
	return a.devices.applyRekey(ctx, lr.stmt, seq)
}

// recoverRekey completes a rekey statement a crash left without its
// index event.
func (a *Archive) recoverRekey(ctx context.Context, st *EpochStatement, seq uint64) error {
	if _, err := a.index.Lookup(rekeyKey(st.Device, st.Epoch)); err == nil {
		return nil
	}
	if err := a.completeRekey(ctx, st, seq); err != nil {
		return err
	}
	a.lg.Warn("recovered a rekey statement whose index event was lost", "device", st.Device, "epoch", st.Epoch, "logIndex", seq)
	return nil
}

// epochChecks explain a bundle not signed by the device's current key:
// signed by the key of an epoch a rekey closed (CheckEpoch), by the new
// key of a pending enrollment that waits for a rekey (CheckRekey), or
// sealed by a key the archive does not know for the device (CheckKey,
// with the way to a rekey).
// They verify the bundle against that key's trust, so a check names a
// key only when the bundle is really signed by it.
//
// The report returned with a failure (nil for CheckKey) is the bundle's
// verification under that key as the first of a chain: the checks
// against the current epoch's state say nothing about a bundle of
// another key.
func epochChecks(b *bundle.Bundle, st *bundle.Statement, info DeviceInfo) ([]failure, *verify.Report) {
	for _, ep := range slices.Backward(info.Epochs) {
		t, err := trustfile.ParseTrust(ep.Trust)
		if err != nil {
			continue
		}
		rep := verify.Verify(b, t, nil)
		if !signedByDevice(rep) {
			continue
		}
		return []failure{{check: CheckEpoch, reason: fmt.Sprintf(
			"signed by key %s of epoch %d of %s, closed at checkpoint %d (root %s, counter %d, %d bundle(s)) by %s on %s (%s); the device is at epoch %d, key %s",
			ep.KeyID, ep.Epoch, info.Name, ep.CheckpointSize, orNone(ep.CheckpointRoot), ep.Counter, ep.Bundles, ep.ClosedBy, ep.ClosedAt,
			orNone(ep.Reason), info.CurrentEpoch(), info.KeyID)}}, rep
	}
	for _, pe := range slices.Backward(info.Requests) {
		p := pe.Request
		if p.ParsedTrust().KeyID == info.KeyID {
			continue
		}
		if rep := verify.Verify(b, p.ParsedTrust(), nil); signedByDevice(rep) {
			k := p.ParsedTrust().KeyID
			return []failure{{check: CheckRekey, reason: fmt.Sprintf(
				"signed by key %s, enrolled for %s and waiting: if the device's TPM was cleared or its board or disk replaced, continue its history as epoch %d: edgeseal archive devices rekey %s --key %s",
				k, info.Name, info.CurrentEpoch()+1, info.Name, k)}}, rep
		}
	}
	if k := st.Predicate.KeyID; k != info.KeyID {
		return []failure{{check: CheckKey, reason: fmt.Sprintf(
			"sealed by key %.80s, not a key of %s (current key %s): if the device's TPM was cleared or its board or disk replaced, enroll its new key (edgeseal agent enroll, or archive enroll-file), then continue its history with: edgeseal archive devices rekey %s --key KEY",
			k, info.Name, info.KeyID, info.Name)}}, nil
	}
	return nil, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
