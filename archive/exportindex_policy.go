package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
)

// Per-device policy keys: for every device and every policy digest its
// index entries name, one key
//
//	'p' || comp(device) || comp(policy)   JSON policySpan
//
// holding the record times of the oldest and newest entry under that
// policy and their count, kept by the indexer (its only writer) in the
// batch of the entries they count. The policy page reads them with one
// prefix scan instead of a search per device.
//
// An index written by a build without these keys (or the case keys,
// exportindex_case.go) lacks the marker 'v' = indexKeysVersion: it is
// written when an empty index is opened, so its presence says both cover
// every entry; without it DevicePolicies falls back to searching each
// device's newest entries, and a search by case to the log's holds.

const (
	kPolicy  = 'p'
	kVersion = 'v'
	// indexKeysVersion is the value of the 'v' marker: policy and case keys.
	indexKeysVersion = "2"
)

// policySpan is the value of a policy key.
type policySpan struct {
	First   string `json:"first"`
	Last    string `json:"last"`
	Exports uint64 `json:"exports"`
	first   time.Time
	last    time.Time
}

func policyKey(device, policy string) []byte {
	return comp(comp([]byte{kPolicy}, device), policy)
}

// merge adds the entries of o to s.
func (s *policySpan) merge(o *policySpan) {
	if s.Exports == 0 || o.first.Before(s.first) {
		s.first, s.First = o.first, o.First
	}
	if s.Exports == 0 || !o.last.Before(s.last) {
		s.last, s.Last = o.last, o.Last
	}
	s.Exports += o.Exports
}

func (s *policySpan) parse() error {
	var err1, err2 error
	s.first, err1 = wire.ParseTime(s.First)
	s.last, err2 = wire.ParseTime(s.Last)
	return errors.Join(err1, err2)
}

// policySpans gathers the policy spans of index entries.
type policySpans map[string]*policySpan // key: string(policyKey)

// add counts e (an entry without a policy, or with a device or policy
// too long to key, is not counted).
func (ps policySpans) add(e *ExportEntry) {
	if e.Policy == "" || len(e.Policy) > maxKeyValue || len(e.Device) > maxKeyValue {
		return
	}
	t := wire.FormatTime(e.at)
	o := &policySpan{First: t, Last: t, Exports: 1, first: e.at, last: e.at}
	k := string(policyKey(e.Device, e.Policy))
	if s, ok := ps[k]; ok {
		s.merge(o)
		return
	}
	ps[k] = o
}

// ops are the puts of the spans, each merged with what get returns for
// its key (store.ErrNotFound: nothing yet).
func (ps policySpans) ops(ctx context.Context, get func(context.Context, []byte) ([]byte, error)) ([]store.IndexOp, error) {
	keys := make([]string, 0, len(ps))
	for k := range ps {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	ops := make([]store.IndexOp, 0, len(keys))
	for _, k := range keys {
		s := ps[k]
		old, err := get(ctx, []byte(k))
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("archive: export index: %w", err)
		default:
			var o policySpan
			if err := json.Unmarshal(old, &o); err != nil || o.parse() != nil {
				return nil, fmt.Errorf("archive: export index: malformed policy key %x", k)
			}
			o.merge(s)
			s = &o
		}
		b, err := json.Marshal(s)
		if err != nil {
			return nil, err
		}
		ops = append(ops, store.IndexOp{Kind: store.IndexPut, Key: []byte(k), Value: b})
	}
	return ops, nil
}

// markIndexKeys writes the 'v' marker in an index that has no entries
// yet (its watermark is absent; access-log keys do not matter).
func markIndexKeys(ctx context.Context, x store.IndexStore) error {
	return x.Write(ctx, []store.IndexOp{{Kind: store.IndexPut, Key: []byte{kVersion}, Value: []byte(indexKeysVersion)}})
}

// hasIndexKeys reports whether the index's policy and case keys cover
// every entry.
func hasIndexKeys(ctx context.Context, x store.IndexStore) (bool, error) {
	v, err := x.Get(ctx, []byte{kVersion})
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("archive: export index: %w", err)
	}
	return bytes.Equal(v, []byte(indexKeysVersion)), nil
}

// policiesFromKeys reads the policy keys of device (every device when
// empty): per device its policies, newest (by last record time) first,
// the newest Current. Without a device only the current policy of each
// device is returned, with Last set and First and Exports unset.
func (a *Archive) policiesFromKeys(ctx context.Context, device string) ([]DevicePolicy, error) {
	pfx := []byte{kPolicy}
	if device != "" {
		pfx = comp(pfx, device)
	}
	var all []DevicePolicy
	var ferr error
	err := a.xi.x.Scan(ctx, store.IndexRange{Lo: pfx, Hi: store.PrefixEnd(pfx)}, func(k, v []byte) bool {
		dev, rest, ok1 := readComp(k[1:])
		pol, _, ok2 := readComp(rest)
		var s policySpan
		if !ok1 || !ok2 || json.Unmarshal(v, &s) != nil || s.parse() != nil {
			ferr = fmt.Errorf("archive: export index: malformed policy key %x", k)
			return false
		}
		all = append(all, DevicePolicy{Device: dev, Policy: pol, First: s.First, Last: s.Last, Exports: int(s.Exports), last: s.last})
		return true
	})
	if err == nil {
		err = ferr
	}
	if err != nil {
		return nil, err
	}
	// Keys are ordered by device: sort each device's run newest first.
	var out []DevicePolicy
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && all[j].Device == all[i].Device {
			j++
		}
		run := all[i:j]
		slices.SortStableFunc(run, func(x, y DevicePolicy) int { return y.last.Compare(x.last) })
		run[0].Current = true
		if device == "" {
			p := run[0]
			p.First, p.Exports = "", 0
			out = append(out, p)
		} else {
			out = append(out, run...)
		}
		i = j
	}
	return out, nil
}
