package archived

import (
	"context"
	"fmt"

	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/archive/sqlframes"
	"github.com/edgeseal/edgeseal/sync"
)

// openFrames opens where the subscriber joins the frames of multi-frame
// bundles: with archive_state.engine mysql (where replicas share a
// subscription group, and the broker deals one bundle's frames to
// several of them) the database of archive_state.mysql_dsn_file
// (archive/sqlframes), so that whichever replica gets a bundle's last
// frame joins it; nil otherwise (the subscriber's in-memory Assembler).
// The caller closes the store after the subscriber stopped.
func openFrames(ctx context.Context, cfg *config.Config) (sync.FrameStore, func() error, error) {
	if cfg.ArchiveState.Engine != config.StateEngineMySQL {
		return nil, func() error { return nil }, nil
	}
	dsn, err := readSecretFile(cfg.ArchiveState.MySQLDSNFile)
	if err != nil {
		return nil, nil, fmt.Errorf("archive_state.mysql_dsn_file: %w", err)
	}
	s, err := sqlframes.OpenMySQL(ctx, dsn, sync.AssemblerLimits{})
	if err != nil {
		return nil, nil, fmt.Errorf("archive_state: %w", err)
	}
	return s, s.Close, nil
}
