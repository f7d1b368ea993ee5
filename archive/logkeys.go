package archive

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"

	"github.com/edgeseal/edgeseal/archive/tlog"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/store"
)

// The log's keys (Dir/logkeys/): record i is the deduplication key of
// log entry i (logengine.go).
//
// Replicas (the mysql engine) keep their own keys and bring them up to
// the shared log's size before each append, so that a bundle another
// replica logged (and died before answering, or before its chain
// advance) is found and keeps its index instead of being logged twice.
// That holds because of how Tessera's MySQL driver (v1.0.4,
// storage/mysql) appends: it has no sequenced-but-not-integrated state.
// One transaction reads the tree state row FOR UPDATE, writes the
// entries' bundles and the tiles, and writes the new tree state; the
// size other processes read (IntegratedSize, a plain read of that row)
// moves only when it commits, and a transaction whose process died
// before its COMMIT reached the server is rolled back. What a plain read
// misses is an append whose COMMIT is under way: a replica killed then
// loses its device lease (its lock connection closes) while the server
// may still be committing on its other connection; the replica that
// takes the lease next would read the size before that commit, find no
// key for the bundle, and log it again once the commit is done (its own
// append's FOR UPDATE waits for it). The catch-up therefore reads the
// size with a shared lock on the tree state row (settledSize,
// tlog.Tessera.SettledSize): it waits for any append transaction under
// way, in any process, to commit or to be rolled back, and every entry
// committed before it is in the size it reads. A process cannot start
// an append after it died (the protocol is one statement at a time, so
// its last packets can at most finish the transaction under way), and
// under the lease no live replica appends the device's bundles, so no
// append of the same bundle can commit between the catch-up and this
// replica's own append. (A lease lost while its holder lives, its lock
// connection broken, is another matter: the holder is not told.)

// settledSizer is a log whose size can be read once the appends under
// way, any process's, have ended (tlog.Tessera.SettledSize).
type settledSizer interface {
	SettledSize(ctx context.Context) (uint64, error)
}

// settledSize is l's SettledSize, or its Size.
func settledSize(ctx context.Context, l tlog.Log) (uint64, error) {
	if s, ok := l.(settledSizer); ok {
		return s.SettledSize(ctx)
	}
	return l.Size(ctx)
}

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
