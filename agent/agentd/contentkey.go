package agentd

import (
	"fmt"
	"time"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
	"github.com/edgeseal/edgeseal/internal/fsutil"
)

// UseContentKey reads encryption.content_key, verifies the announcement
// against the archive key (encryption.archive_key, else sync.archive_key
// and the archive key rotations learned since) and makes the core seal
// payloads to it. Without encryption.content_key it does nothing.
func UseContentKey(cfg *config.Config, core *agent.Core, now time.Time) error {
	e := cfg.Encryption
	if e.ContentKey == "" {
		return nil
	}
	raw, err := fsutil.ReadLimited(e.ContentKey, archivesig.MaxContentKeySize)
	if err != nil {
		return fmt.Errorf("encryption.content_key: %w", err)
	}
	rootPath := e.ArchiveKey
	if rootPath == "" {
		rootPath = cfg.Sync.ArchiveKey
	}
	root, err := ReadArchiveKey(rootPath)
	if err != nil {
		return fmt.Errorf("encryption: %w", err)
	}
	keys, err := learnedArchiveKeys(cfg, root)
	if err != nil {
		return fmt.Errorf("encryption: %w", err)
	}
	k, err := agent.ContentKeyFromAnnouncement(raw, keys, now)
	if err != nil {
		return fmt.Errorf("encryption.content_key %s: %w", e.ContentKey, err)
	}
	core.UseContentKey(k)
	return nil
}
