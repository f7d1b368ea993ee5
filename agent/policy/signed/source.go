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
	seen := map[uint64]bool{}
	var recs []*custody.Record
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("policy history: %w", err)
		}
		b, err := bundle.Read(bytes.NewReader(data), bundle.DefaultLimits)
		if err != nil {
			return nil, fmt.Errorf("policy history: %s: %w", p, err)
		}
		raws, err := b.Records()
		if err != nil {
			return nil, fmt.Errorf("policy history: %s: %w", p, err)
		}
		for _, raw := range raws {
			r, err := custody.ParseRecord(raw)
			if err != nil {
				return nil, fmt.Errorf("policy history: %s: %w", p, err)
			}
			if !seen[r.Seq] {
				seen[r.Seq] = true
				recs = append(recs, r)
			}
		}
	}
	slices.SortFunc(recs, func(a, b *custody.Record) int { return cmp.Compare(a.Seq, b.Seq) })
	return recs, nil
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
