package signed

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/edgeseal/edgeseal/bundle"
	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/store"
)

// BundleRecords reads the records of bundle files (in any order) and
// returns them by sequence number, each once.
func BundleRecords(paths []string) ([]*custody.Record, error) {
	var set RecordSet
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("policy history: %w", err)
		}
		b, err := bundle.Read(bytes.NewReader(data), bundle.DefaultLimits)
		if err != nil {
			return nil, fmt.Errorf("policy history: %s: %w", p, err)
		}
		if err := set.Add(b, p); err != nil {
			return nil, err
		}
	}
	return set.Records(), nil
}

// RecordSet gathers the records of one device's bundles, each once (by
// sequence number).
type RecordSet struct {
	seen map[uint64]bool
	recs []*custody.Record
}

// Add adds the records of bundle b (named name in errors).
func (s *RecordSet) Add(b *bundle.Bundle, name string) error {
	raws, err := b.Records()
	if err != nil {
		return fmt.Errorf("policy history: %s: %w", name, err)
	}
	if s.seen == nil {
		s.seen = map[uint64]bool{}
	}
	for _, raw := range raws {
		r, err := custody.ParseRecord(raw)
		if err != nil {
			return fmt.Errorf("policy history: %s: %w", name, err)
		}
		if !s.seen[r.Seq] {
			s.seen[r.Seq] = true
			s.recs = append(s.recs, r)
		}
	}
	return nil
}

// Records returns the records added, by sequence number.
func (s *RecordSet) Records() []*custody.Record {
	slices.SortFunc(s.recs, func(a, b *custody.Record) int { return cmp.Compare(a.Seq, b.Seq) })
	return s.recs
}

// JournalRecords reads the policy.change records of a journal.
func JournalRecords(ctx context.Context, j *store.Journal) ([]*custody.Record, error) {
	var recs []*custody.Record
	err := j.Records(ctx, 0, j.Size(), func(seq uint64, raw []byte) error {
		if !bytes.Contains(raw, []byte(`"type":"`+custody.TypePolicyChange+`"`)) {
			return nil
		}
		r, err := custody.ParseRecord(raw)
		if err != nil {
			return fmt.Errorf("record %d: %w", seq, err)
		}
		if r.Type == custody.TypePolicyChange {
			recs = append(recs, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("policy history: %w", err)
	}
	return recs, nil
}
