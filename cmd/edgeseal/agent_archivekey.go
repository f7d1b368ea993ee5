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
	return core.ArchiveKeyring(filepath.Join(cfg.DataDir, agent.ArchiveKeysFile), archiveOrigin(cfg), root)
}

// importArchiveKeys is agentArchiveKeys for `bundles import-receipts`
// (the agent stopped): rotations learned from the imported replies are
// journaled and kept as the running agent does.
func importArchiveKeys(cfg *config.Config, rj *agent.ReceiptJournal, root ed25519.PublicKey) (*agent.ArchiveKeyring, error) {
	return rj.ArchiveKeyring(filepath.Join(cfg.DataDir, agent.ArchiveKeysFile), archiveOrigin(cfg), root)
}

// archiveOrigin is sync.archive_origin, default archive.DefaultName.
func archiveOrigin(cfg *config.Config) string {
	if cfg.Sync.ArchiveOrigin != "" {
		return cfg.Sync.ArchiveOrigin
	}
	return archive.DefaultName
}
