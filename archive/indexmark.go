package archive

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// The index mark (Dir/index-mark.json) is how far Open's reading of the
// index got: every index event before Index has been applied to the
// chain-state store (chainstate.go) and the registry, and every log
// entry before Log has its index event. It carries what the events
// before Index tell besides chain state: the counts of rekey, operator
// and policy.admins events, and the policy admin keys (separation.go).
// Open reads only the events from Index on and completes only the log
// entries from Log on, so its work is what the last run left unread
// (nothing after a clean Close), never the history. It lists the log
// indexes of the rekey statements, which Open applies to the registry
// every time (a few log records).
//
// An archive without a mark (created before chain state was kept, or
// whose index still holds accept events without admins) is read whole
// once: the accept events fill the chain-state store (a one-time
// migration) and the mark is written. The mark is written at the end of
// Open and at Close; not at a Close after a failed journal commit or a
// failed chain-state write, so that the next Open reads those events
// again (applying an event twice changes nothing: chainstate.go).

const indexMarkFile = "index-mark.json"

// maxIndexMark bounds the mark file.
const maxIndexMark = 16 << 20

type indexMark struct {
	V            int               `json:"v"`
	Index        uint64            `json:"index"`
	Log          uint64            `json:"log"`
	Rekeys       []uint64          `json:"rekeys"` // the log indexes of the rekey statements
	OpStatements uint64            `json:"opStatements"`
	AdminsEvents uint64            `json:"adminsEvents"`
	Admins       map[string]string `json:"admins"` // key id -> device
}

// readIndexMark returns the mark, nil when there is none.
func readIndexMark(dir string) (*indexMark, error) {
	b, err := fsutil.ReadRegular(filepath.Join(dir, indexMarkFile), maxIndexMark)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("archive: index mark: %w", err)
	}
	var m indexMark
	if err := json.Unmarshal(b, &m); err != nil || m.V != 1 {
		return nil, fmt.Errorf("archive: index mark %s: unreadable (version %d, %v): remove it to read the index whole", filepath.Join(dir, indexMarkFile), m.V, err)
	}
	return &m, nil
}

// writeIndexMark writes the mark for what this run applied, unless
// something was left unapplied (see above); logCovered is the log size
// whose entries all have index events, 0 to keep the last mark's.
func (a *Archive) writeIndexMark() error {
	if a.markStale.Load() || a.Err() != nil {
		return nil
	}
	a.mu.Lock()
	m := indexMark{V: 1, Index: a.index.Size(), Log: a.markLog, Rekeys: slices.Clone(a.rekeys), OpStatements: a.opStatements,
		AdminsEvents: a.adminsEvents, Admins: maps.Clone(a.idxAdmins.keys)}
	legacy := len(a.idxAdmins.legacy)
	a.mu.Unlock()
	if legacy > 0 {
		return nil // read whole until an Open with operator keys records them
	}
	if n := m.Index - m.AdminsEvents + a.logKeyEntries(); n >= a.log.size() {
		m.Log = a.log.size()
	}
	if m.Admins == nil {
		m.Admins = map[string]string{}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("archive: index mark: %w", err)
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(a.opts.Dir, indexMarkFile), b, 0o600); err != nil {
		return fmt.Errorf("archive: index mark: %w", err)
	}
	a.mu.Lock()
	a.markLog = m.Log
	a.mu.Unlock()
	return nil
}

// RefillChainState makes the next Open of the archive in dir read its
// whole index once, filling the chain-state store it is given from the
// accept events (a store new to the archive, or one another store
// stood in for: applying an event again changes nothing): it removes
// the index mark. The archive must be closed.
func RefillChainState(dir string) error {
	if err := removeIndexMark(dir); err != nil {
		return fmt.Errorf("archive: index mark: %w", err)
	}
	return fsutil.SyncDir(dir)
}

// removeIndexMark is for tests: an archive as an earlier version left it.
func removeIndexMark(dir string) error {
	err := os.Remove(filepath.Join(dir, indexMarkFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
