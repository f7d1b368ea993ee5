package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// LastRefusalFile, in Options.StateDir, keeps the archive's last signed
// refusal (ArchiveRefusal, as /v1/status shows it) across restarts.
const LastRefusalFile = "last-refusal.json"

const (
	// maxRefusalFile bounds LastRefusalFile when it is read at start.
	maxRefusalFile = 8 << 10
	// maxRefusalMessage and maxRefusalChecks bound what is kept of a
	// refusal (the archive's words are outside bytes).
	maxRefusalMessage = 1 << 10
	maxRefusalChecks  = 32
)

// boundRefusal cuts r's message and checks to what the file keeps.
func boundRefusal(r *ArchiveRefusal) {
	if len(r.Message) > maxRefusalMessage {
		r.Message = r.Message[:maxRefusalMessage]
	}
	if len(r.Checks) > maxRefusalChecks {
		r.Checks = slices.Clone(r.Checks[:maxRefusalChecks])
	}
}

// saveRefusal writes r to LastRefusalFile (a failure is logged: the
// refusal then shows only until the next restart).
func (c *Core) saveRefusal(r ArchiveRefusal) {
	if c.opts.StateDir == "" {
		return
	}
	b, err := json.Marshal(r)
	if err == nil {
		c.syncSt.fileMu.Lock()
		err = fsutil.WriteFileAtomic(filepath.Join(c.opts.StateDir, LastRefusalFile), b, 0o600)
		c.syncSt.fileMu.Unlock()
	}
	if err != nil {
		c.log.Warn("cannot keep the archive's last refusal for the next start", "err", err)
	}
}

// recoverLastRefusal reads LastRefusalFile after a restart, so Status
// reports the archive's last refusal; a missing file is no refusal.
func (c *Core) recoverLastRefusal() error {
	if c.opts.StateDir == "" {
		return nil
	}
	b, found, err := c.readStateFile(LastRefusalFile, maxRefusalFile)
	if err != nil || !found {
		return err
	}
	var r ArchiveRefusal
	if err := json.Unmarshal(b, &r); err != nil {
		c.log.Warn("the archive's last refusal kept at the last run is unreadable; ignored", "file", LastRefusalFile, "err", err)
		return nil
	}
	boundRefusal(&r)
	c.syncSt.mu.Lock()
	c.syncSt.refusal = &r
	c.syncSt.mu.Unlock()
	return nil
}

// readStateFile reads the file name of Options.StateDir, at most limit
// bytes; found is false when there is none. A file that is not a regular
// file (a symbolic link) is refused.
func (c *Core) readStateFile(name string, limit int) (data []byte, found bool, err error) {
	p := filepath.Join(c.opts.StateDir, name)
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("agent: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, false, fmt.Errorf("agent: %s is not a regular file", p)
	}
	if data, err = fsutil.ReadLimited(p, limit); err != nil {
		return nil, false, fmt.Errorf("agent: %w", err)
	}
	return data, true, nil
}
