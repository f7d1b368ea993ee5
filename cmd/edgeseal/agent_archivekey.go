package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/archive"
	"github.com/edgeseal/edgeseal/bundle/archivesig"
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

// currentArchiveKey is the newest archive key the agent learned from
// root (<data_dir>/archive-keys.json), or root: enrollment answers carry
// no key chain and are signed by the archive's current key.
func currentArchiveKey(cfg *config.Config, root ed25519.PublicKey) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, agent.ArchiveKeysFile))
	if errors.Is(err, fs.ErrNotExist) {
		return root, nil
	}
	if err != nil {
		return nil, fmt.Errorf("archive keys: %w", err)
	}
	f, err := archivesig.ParseKeyChainFile(b)
	if err != nil {
		return nil, fmt.Errorf("archive keys: %w", err)
	}
	keys := archivesig.NewArchiveKeys(archiveOrigin(cfg), root)
	// What does not link to root (the configured key changed) is left out,
	// as the running agent does.
	_, _ = keys.LearnChain(f.Announcements)
	if _, cur := keys.Current(); cur != nil {
		return cur, nil
	}
	return root, nil
}
