package archive

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"

	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
)

// The log's keys (Dir/logkeys/): record i is the deduplication key of
// log entry i (logengine.go).

// recordKeys records the keys of log entries [keys' size, upTo), read
// from known or else from the log.
func (l *archiveLog) recordKeys(ctx context.Context, upTo uint64, known map[uint64][]byte) error {
	from := l.keys.Size()
	if from > upTo {
		if known == nil {
			return fmt.Errorf("archive: the log keys record %d entries, the log has %d", from, upTo)
		}
		return nil
	}
	if from == upTo {
		return nil
	}
	const chunk = 256
	for from < upTo {
		to := min(upTo, from+chunk)
		es := make([]store.Entry, 0, to-from)
		add := func(seq uint64, rec []byte) error {
			k := logKeyOf(rec)
			v := k
			if v == nil {
				v = []byte("-") // no key
			}
			es = append(es, store.Entry{Build: func(uint64, [32]byte) ([]byte, error) { return v, nil }, Key: k})
			return nil
		}
		all := true
		for s := from; s < to && all; s++ {
			_, all = known[s]
		}
		var err error
		if all {
			for s := from; s < to && err == nil; s++ {
				err = add(s, known[s])
			}
		} else {
			err = l.l.Entries(ctx, from, to, func(seq uint64, rec []byte) error {
				if r, ok := known[seq]; ok {
					rec = r
				}
				return add(seq, rec)
			})
		}
		if err != nil {
			return fmt.Errorf("archive: log keys: %w", err)
		}
		res, err := l.keys.AppendBatch(ctx, es)
		if err != nil {
			return fmt.Errorf("archive: log keys: %w", err)
		}
		if len(res) > 0 && res[0].Seq != from {
			return fmt.Errorf("archive: log keys: entry %d recorded as %d", from, res[0].Seq)
		}
		from = to
	}
	return nil
}

// logKeyOf is the deduplication key of a log record: a bundle's digest,
// an archive or content key's id, a rekey's device and epoch, an
// operator statement's hash; nil for a content key operation (escrow,
// restore), which is logged each time.
func logKeyOf(rec []byte) []byte {
	var probe struct {
		Type         *string `json:"type"`
		Announcement []byte  `json:"announcement"`
	}
	if json.Unmarshal(rec, &probe) != nil {
		return nil
	}
	if probe.Type == nil {
		var e archivesig.ReceiptEntry
		if json.Unmarshal(rec, &e) != nil {
			return nil
		}
		d, err := wire.ParseHash(e.BundleDigest)
		if err != nil {
			return nil
		}
		return append([]byte("bundle/"), d[:]...)
	}
	switch *probe.Type {
	case LogKeyEntryType:
		if _, an, err := archivesig.ParseArchiveKey(probe.Announcement); err == nil {
			return []byte("archive-key/" + an.NewKeyID)
		}
		return nil
	case LogContentKeyEntryType:
		if _, an, err := archivesig.ParseContentKey(probe.Announcement); err == nil {
			return []byte("content-key/" + an.KeyID)
		}
		return nil
	case LogContentKeyEscrowEntryType, LogContentKeyRestoreEntryType:
		return nil
	case StatementRekey:
		if st, err := ParseEpochStatement(rec); err == nil {
			return rekeyKey(st.Device, st.Epoch)
		}
		return nil
	}
	sum := sha256.Sum256(rec)
	return append([]byte("op:"), sum[:]...)
}
