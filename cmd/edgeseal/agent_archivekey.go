package main

import (
	"crypto/ed25519"
	"path/filepath"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/archive"
)

// agentArchiveKeys is the agent's keyring of the archive's keys: the
// configured sync.archive_key and the rotations learned since, kept in
// <data_dir>/archive-keys.json.
func agentArchiveKeys(cfg *config.Config, core *agent.Core, root ed25519.PublicKey) (*agent.ArchiveKeyring, error) {
	origin := cfg.Sync.ArchiveOrigin
	if origin == "" {
		origin = archive.DefaultName
	}
	return core.ArchiveKeyring(filepath.Join(cfg.DataDir, agent.ArchiveKeysFile), origin, root)
}
