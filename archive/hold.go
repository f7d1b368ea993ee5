package archive

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
)

// KindOperator is the alert kind of a signed operator statement (legal
// hold, purge).
const KindOperator = "operator.statement"

// eventOperator is the index event of a signed operator statement.
const eventOperator = "operator.statement"

// OperatorError refuses an operator action: the key is not an operator
// of the archive, the target names nothing, or the objects are retained.
type OperatorError struct {
	Op     string // "hold.set", "hold.release", "retention.purge"
	Reason string
}

func (e *OperatorError) Error() string { return "archive: " + e.Op + ": " + e.Reason }

// Logged is what an operator action appended to the archive log.
type Logged struct {
	Statement *OperatorStatement
	LogIndex  uint64
	// Checkpoint is the archive log's signed note at a size that
	// includes the statement.
	Checkpoint []byte
}

// isOperator reports whether pub is one of Options.OperatorKeys.
func (a *Archive) isOperator(pub ed25519.PublicKey) bool {
	return slices.ContainsFunc(a.opts.OperatorKeys, func(k ed25519.PublicKey) bool { return k.Equal(pub) })
}

// checkOperator refuses a key that is not an operator of the archive.
func (a *Archive) checkOperator(op string, key crypto.Signer) error {
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok || !a.isOperator(pub) {
		kid := "not Ed25519"
		if ok {
			kid = KeyID(pub)
		}
		return &OperatorError{Op: op, Reason: "key " + kid + " is not an operator key of the archive (operator_keys)"}
	}
	return a.checkOperatorKey(a.bg, op, pub)
}

// logStatement signs s with key, appends it to the archive log, writes
// its index event and signs a checkpoint.
func (a *Archive) logStatement(ctx context.Context, s *OperatorStatement, key crypto.Signer) (*Logged, error) {
	rec, err := SignOperatorStatement(s, key)
	if err != nil {
		return nil, err
	}
	return a.appendStatement(ctx, rec)
}

// appendStatement appends the signed statement rec to the archive log,
// writes its index event and signs a checkpoint.
func (a *Archive) appendStatement(ctx context.Context, rec []byte) (*Logged, error) {
	s, err := ParseOperatorStatement(rec) // what a log reader reads back
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(rec)
	lgd, err := a.log.append(ctx, rec)
	if err != nil {
		return nil, fmt.Errorf("archive: %s: log: %w", s.Type, err)
	}
	res := lgd[0]
	if res.old != nil {
		return nil, fmt.Errorf("archive: %s: log: %w", s.Type, &store.DuplicateError{Key: append([]byte("op:"), sum[:]...), Seq: res.seq})
	}
	ev, err := json.Marshal(operatorEvent{V: 1, Type: eventOperator, Time: wire.FormatTime(a.now()), Statement: s.Type, Key: s.Key, LogIndex: res.seq})
	if err != nil {
		return nil, err
	}
	if _, err := a.index.Append(ctx, store.Entry{Build: func(uint64, [32]byte) ([]byte, error) { return ev, nil }, Key: fmt.Appendf(nil, "op:%d", res.seq)}); err != nil {
		return nil, fmt.Errorf("archive: %s: index: %w", s.Type, err)
	}
	a.mu.Lock()
	a.opStatements++
	a.mu.Unlock()
	signed, err := a.log.checkpoint(ctx, res.seq+1)
	if err != nil {
		return nil, err
	}
	a.lg.Warn("operator statement", "type", s.Type, "by", s.By, "key", s.Key, "logIndex", res.seq)
	return &Logged{Statement: s, LogIndex: res.seq, Checkpoint: signed}, nil
}

// operatorEvent is the index event written after a signed operator
// statement's log record (counted at Open, so that recovery knows every
// log record is accounted for).
type operatorEvent struct {
	V         int    `json:"v"`
	Type      string `json:"type"` // eventOperator
	Time      string `json:"time"`
	Statement string `json:"statement"` // its type
	Key       string `json:"key"`       // its operator key
	LogIndex  uint64 `json:"logIndex"`
}

// isOperatorEvent tells an operator statement's index event.
func isOperatorEvent(rec []byte) bool {
	return bytes.HasPrefix(rec, []byte(`{"v":1,"type":"`+eventOperator+`"`))
}

// logState is what the archive log says of retention: the bundles it
// accepted (digest -> device), the legal holds in force (digest -> cases)
// and the purges (digest -> the purged object).
type logState struct {
	bundles map[[32]byte]string
	order   [][32]byte
	holds   map[[32]byte][]string
	purged  map[[32]byte]PurgedObject
	// devHolds are the cases holding a device (a hold.set whose target
	// is the device, not released by a hold.release of that case and
	// target): they hold each bundle of the device logged after it.
	devHolds deviceHolds
}

// readLogState reads the whole archive log. Every logged statement
// counts, also one whose key was since taken off Options.OperatorKeys:
// the archive checked its key when it logged it.
func (a *Archive) readLogState(ctx context.Context) (*logState, error) {
	ls := &logState{bundles: map[[32]byte]string{}, holds: map[[32]byte][]string{}, purged: map[[32]byte]PurgedObject{}, devHolds: deviceHolds{}}
	err := a.log.all(ctx, func(seq uint64, rec []byte) error {
		lr, err := parseLogRecord(rec)
		if err != nil {
			return fmt.Errorf("archive: log record %d: %w", seq, err)
		}
		switch {
		case lr.entry != nil:
			d, _ := wire.ParseHash(lr.entry.BundleDigest)
			if _, ok := ls.bundles[d]; !ok {
				ls.order = append(ls.order, d)
			}
			ls.bundles[d] = lr.entry.Device
			for _, c := range ls.devHolds[lr.entry.Device] {
				if !slices.Contains(ls.holds[d], c) {
					ls.holds[d] = append(ls.holds[d], c)
				}
			}
		case lr.op != nil:
			ls.apply(lr.op)
		}
		return nil
	})
	return ls, err
}

func (ls *logState) apply(s *OperatorStatement) {
	ls.devHolds.apply(s)
	switch s.Type {
	case StatementHoldSet, StatementHoldRelease:
		for _, o := range s.Objects {
			d, _ := wire.ParseHash(o)
			cases := slices.DeleteFunc(ls.holds[d], func(c string) bool { return c == s.Case })
			if s.Type == StatementHoldSet {
				cases = append(cases, s.Case)
			}
			if len(cases) == 0 {
				delete(ls.holds, d)
			} else {
				ls.holds[d] = cases
			}
		}
	case StatementPurge:
		for _, p := range s.Purged {
			d, _ := wire.ParseHash(p.Bundle)
			ls.purged[d] = p
		}
	}
}

// stored returns the stored bytes of an accepted bundle: the bundle, or
// its skeleton once purged.
func (a *Archive) stored(ctx context.Context, ls *logState, d [32]byte) ([]byte, error) {
	if p, ok := ls.purged[d]; ok {
		sk, _ := wire.ParseHash(p.Skeleton)
		return a.objects.Get(ctx, sk)
	}
	return a.objects.Get(ctx, d)
}

// resolve returns the accepted bundles t names, sorted.
func (a *Archive) resolve(ctx context.Context, ls *logState, t HoldTarget) ([]string, error) {
	var out []string
	for _, d := range ls.order {
		switch {
		case t.Bundle != "":
			if wire.FormatHash(d) != t.Bundle {
				continue
			}
		case t.Device != "":
			if ls.bundles[d] != t.Device {
				continue
			}
		case t.Export != "":
			raw, err := a.stored(ctx, ls, d)
			if err != nil {
				return nil, err
			}
			ok, err := holdsExport(raw, t.Export, a.opts.Limits)
			if err != nil {
				return nil, fmt.Errorf("archive: bundle %s: %w", wire.FormatHash(d), err)
			}
			if !ok {
				continue
			}
		}
		out = append(out, wire.FormatHash(d))
	}
	slices.Sort(out)
	return out, nil
}

// holdsExport reports whether the bundle raw has an export record of id.
func holdsExport(raw []byte, id string, lim bundle.Limits) (bool, error) {
	b, err := bundle.ReadBytes(raw, lim)
	if err != nil {
		return false, err
	}
	recs, err := b.Records()
	if err != nil {
		return false, err
	}
	for _, rec := range recs {
		r, err := custody.ParseRecord(rec)
		if err != nil || r.Type != custody.TypeExport {
			continue
		}
		if e, err := r.ExportBody(); err == nil && e.ExportID == id {
			return true, nil
		}
	}
	return false, nil
}

// Hold sets (release false) or releases the legal hold of case caseID
// on the bundles target names, as a statement signed by the operator's
// key: the statement lists the bundles, goes to the archive log, then the
// object store's legal hold of each is set (or cleared when no other
// case holds it). A held bundle is not purged, and the store refuses its
// deletion. A release names the bundles the case holds among the
// target's.
func (a *Archive) Hold(ctx context.Context, target HoldTarget, caseID, by, reason string, key crypto.Signer, release bool) (*Logged, error) {
	op := StatementHoldSet
	if release {
		op = StatementHoldRelease
	}
	if err := a.checkOperator(op, key); err != nil {
		return nil, err
	}
	r, err := a.retainer()
	if err != nil {
		return nil, err
	}
	if target.Device != "" { // no bundle of it logged between reading and appending (hold_device.go)
		a.holdMu.Lock()
		defer a.holdMu.Unlock()
	}
	ls, err := a.readLogState(ctx)
	if err != nil {
		return nil, err
	}
	objs, err := a.resolve(ctx, ls, target)
	if err != nil {
		return nil, err
	}
	if release {
		objs = slices.DeleteFunc(objs, func(o string) bool {
			d, _ := wire.ParseHash(o)
			return !slices.Contains(ls.holds[d], caseID)
		})
	}
	// A device hold covers the device's later bundles: it may name none
	// yet, and its release ends it even when it held none.
	deviceCase := target.Device != "" && (!release || slices.Contains(a.devHolds[target.Device], caseID))
	if len(objs) == 0 && !deviceCase {
		what := "no accepted bundle"
		if release {
			what = "no bundle held by case " + caseID
		}
		return nil, &OperatorError{Op: op, Reason: fmt.Sprintf("%s matches %+v", what, target)}
	}
	if len(objs) == 0 {
		objs = nil // absent from the statement
	}
	t := target
	s := &OperatorStatement{Type: op, By: by, Reason: reason, Time: wire.FormatTime(a.now()), Case: caseID, Target: &t, Objects: objs}
	res, err := a.logStatement(ctx, s, key)
	if err != nil {
		return nil, err
	}
	ls.apply(res.Statement)
	a.devHolds.apply(res.Statement)
	if err := a.applyHolds(ctx, r, ls, objs); err != nil {
		return res, err
	}
	a.alert(ctx, Alert{Severity: SeverityWarning, Kind: KindOperator, Reasons: []string{
		fmt.Sprintf("%s case %s on %d bundle(s) by %s (key %s), archive log index %d", op, caseID, len(objs), by, res.Statement.Key, res.LogIndex)}})
	return res, nil
}

// applyHolds brings the store's legal hold of objs to what the log says.
func (a *Archive) applyHolds(ctx context.Context, r Retainer, ls *logState, objs []string) error {
	var errs []error
	for _, o := range objs {
		d, _ := wire.ParseHash(o)
		on := len(ls.holds[d]) > 0
		target := d
		if p, ok := ls.purged[d]; ok {
			target, _ = wire.ParseHash(p.Skeleton)
		}
		if err := r.SetLegalHold(ctx, target, on); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
