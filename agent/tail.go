package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/edgeseal/edgeseal/bundle/custody"
	"github.com/edgeseal/edgeseal/bundle/merkle"
	"github.com/edgeseal/edgeseal/store"
)

// VerifyTail checks the last max records of a journal: each parses, has
// the sequence number of its place, links to its predecessor's hash, is
// of device and not older than its predecessor, and the journal's last
// leaf is the last record's hash. It returns how many records it checked.
func VerifyTail(ctx context.Context, j *store.Journal, device string, max uint64) (uint64, error) {
	size := j.Size()
	from := size - min(size, max)
	var prev [32]byte
	var prevTime time.Time
	if from > 0 {
		rec, err := j.Record(from - 1)
		if err != nil {
			return 0, fmt.Errorf("record %d: %w", from-1, err)
		}
		prev = merkle.LeafHash(rec)
	}
	err := j.Records(ctx, from, size, func(seq uint64, rec []byte) error {
		r, err := custody.ParseRecord(rec)
		switch {
		case err != nil:
			return fmt.Errorf("record %d: %w", seq, err)
		case r.Seq != seq:
			return fmt.Errorf("record %d says it is %d", seq, r.Seq)
		case r.Prev != prev:
			return fmt.Errorf("record %d: hash chain broken (prev does not match record %d)", seq, seq-1)
		case r.Device != device:
			return fmt.Errorf("record %d is of device %s, not %s", seq, r.Device, device)
		case r.Time.Before(prevTime):
			return fmt.Errorf("record %d at %s is older than its predecessor", seq, r.Time.Format(time.RFC3339Nano))
		}
		prev, prevTime = merkle.LeafHash(rec), r.Time
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("tail: %w", err)
	}
	if size > 0 && j.LastLeaf() != prev {
		return 0, errors.New("tail: the journal's last leaf is not its last record's hash")
	}
	return size - from, nil
}
