package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/edgeseal/edgeseal/store"
)

// Case keys: the legal-hold cases holding each index entry, so that a
// search by case walks the case's own secondary keys
//
//	'x' || 'K' || comp(caseKey(case)) || be64(time µs) || pk   empty value
//
// kept by the indexer as it follows the log: a hold.set statement keys
// the entries of every bundle it names, a hold.release removes them, and
// a bundle of a device under a device hold (hold_device.go) is keyed for
// each case holding the device when it is indexed. The cases holding a
// device, as of the indexer's watermark, are the keys
//
//	'H' || comp(device) || comp(case)   empty value
//
// A hold statement may name many bundles: its keys are written in
// batches, the watermark's second number counting the bundles done (a
// batch replayed after a crash writes the same keys again).

const (
	fieldCase   = 'K'
	kDeviceHold = 'H'
)

// caseKey is how a case is keyed: itself when short enough, else
// "sha256:" and the hex SHA-256 of it.
func caseKey(c string) string {
	if len(c) <= maxKeyValue {
		return c
	}
	h := sha256.Sum256([]byte(c))
	return "sha256:" + hex.EncodeToString(h[:])
}

func deviceHoldKey(device, c string) []byte {
	return comp(comp([]byte{kDeviceHold}, device), c)
}

// caseKeyOf is the case key of the entry whose secondary key (of any
// field) is k: the same time and primary key under the case.
func caseKeyOf(c string, k []byte) ([]byte, bool) {
	if len(k) < 2 {
		return nil, false
	}
	_, rest, ok := readComp(k[2:])
	if !ok || len(rest) < 8 {
		return nil, false
	}
	return append(secondaryPrefix(fieldCase, caseKey(c)), rest...), true
}

// heldCases returns the cases holding device (as of the watermark).
func (a *Archive) heldCases(ctx context.Context, device string) ([]string, error) {
	pfx := comp([]byte{kDeviceHold}, device)
	var out []string
	err := a.xi.x.Scan(ctx, store.IndexRange{Lo: pfx, Hi: store.PrefixEnd(pfx)}, func(k, _ []byte) bool {
		if c, _, ok := readComp(k[len(pfx):]); ok {
			out = append(out, c)
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("archive: export index: %w", err)
	}
	return out, nil
}

// caseEntryOps are the case keys of a new entry held by cases.
func caseEntryOps(e *ExportEntry, cases []string) []store.IndexOp {
	if len(cases) == 0 {
		return nil
	}
	li := uint64(0)
	if e.LogIndex != nil {
		li = *e.LogIndex
	}
	pk := entryPK(e.Device, e.Export, li, e.Seq)
	ops := make([]store.IndexOp, 0, len(cases))
	for _, c := range cases {
		k := binary.BigEndian.AppendUint64(secondaryPrefix(fieldCase, caseKey(c)), timeKey(e.at))
		ops = append(ops, store.IndexOp{Kind: store.IndexPut, Key: append(k, pk...)})
	}
	return ops
}

// holdBatchOps bounds the operations of one batch of a hold statement.
func (a *Archive) holdBatchOps() int { return max(1, a.xi.x.MaxBatchBytes()/(2*maxCaseKeyBytes)) }

// maxCaseKeyBytes is the longest export index key a hold statement
// writes (a case key): what its batches are sized by.
const maxCaseKeyBytes = 2 + 2 + maxKeyValue + 8 + 2 + maxKeyValue + 2 + maxKeyValue + 16 + 16

// indexHold indexes the hold statement at log index li from its bundle
// off: the case keys of the entries of each bundle it names (set or
// removed), then the device hold. It advances the watermark past it.
func (a *Archive) indexHold(ctx context.Context, li, off uint64, s *OperatorStatement) error {
	kind := store.IndexPut
	if s.Type == StatementHoldRelease {
		kind = store.IndexDelete
	}
	casePfx := secondaryPrefix(fieldCase, caseKey(s.Case))
	limit := a.holdBatchOps()
	var ops []store.IndexOp
	for i := off; i < uint64(len(s.Objects)); i++ {
		bpfx, err := bundleKeys(ctx, a.xi.x, s.Objects[i])
		if err != nil {
			return err
		}
		lo := bpfx
		for {
			var last []byte
			n := 0
			err := a.xi.x.Scan(ctx, store.IndexRange{Lo: lo, Hi: store.PrefixEnd(bpfx), Limit: limit}, func(k, _ []byte) bool {
				n++
				last = bytes.Clone(k)
				ops = append(ops, store.IndexOp{Kind: kind, Key: append(bytes.Clone(casePfx), k[len(bpfx):]...)})
				return true
			})
			if err != nil {
				return fmt.Errorf("archive: export index: %w", err)
			}
			if len(ops) >= limit {
				// Bundles before i are done; i is redone after a crash.
				if err := a.advance(ctx, ops, li, i); err != nil {
					return err
				}
				ops = nil
			}
			if n < limit {
				break
			}
			lo = append(last, 0)
		}
	}
	if s.Target != nil && s.Target.Device != "" {
		ops = append(ops, store.IndexOp{Kind: kind, Key: deviceHoldKey(s.Target.Device, s.Case)})
	}
	return a.advance(ctx, ops, li+1, 0)
}

// isHold reports whether s is a hold statement.
func isHold(s *OperatorStatement) bool {
	return s != nil && (s.Type == StatementHoldSet || s.Type == StatementHoldRelease)
}

// caseFilter narrows a walk to the entries case c holds: by a point read
// of the entry's case key, or (an index without case keys) by the
// bundles the log says c holds.
type caseFilter func(ctx context.Context, k []byte, e *ExportEntry) (bool, error)

func (a *Archive) caseFilter(ctx context.Context, c string, keyed bool) (caseFilter, error) {
	if keyed {
		return func(ctx context.Context, k []byte, _ *ExportEntry) (bool, error) {
			ck, ok := caseKeyOf(c, k)
			if !ok {
				return false, fmt.Errorf("archive: export index: malformed key %x", k)
			}
			_, err := a.xi.x.Get(ctx, ck)
			if errors.Is(err, store.ErrNotFound) {
				return false, nil
			}
			return err == nil, err
		}, nil
	}
	held, err := a.HeldBundles(ctx, c)
	if err != nil {
		return nil, err
	}
	slices.Sort(held)
	return func(_ context.Context, _ []byte, e *ExportEntry) (bool, error) {
		_, ok := slices.BinarySearch(held, e.Bundle)
		return ok, nil
	}, nil
}
