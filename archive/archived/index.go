package archived

import (
	"context"
	"fmt"

	"github.com/edgeseal/edgeseal/archive/config"
	"github.com/edgeseal/edgeseal/archive/sqlindex"
	"github.com/edgeseal/edgeseal/store"
)

// openIndex opens the export index archive_index chooses: nil for badger
// (archive.Open opens its own under data_dir/search), the table of
// archive/sqlindex on the database of archive_index.mysql_dsn_file for
// mysql (the caller closes it after the archive). The index is derived
// from the archive log, the stored bundles and the access log: an index
// on a new engine starts empty and the archive fills it as its indexer
// catches up, so a switch needs no step of its own.
func openIndex(ctx context.Context, cfg *config.Config) (store.IndexStore, error) {
	switch cfg.ArchiveIndex.Engine {
	case config.IndexEngineBadger, "":
		return nil, nil
	case config.IndexEngineMySQL:
		dsn, err := readSecretFile(cfg.ArchiveIndex.MySQLDSNFile)
		if err != nil {
			return nil, fmt.Errorf("archive_index.mysql_dsn_file: %w", err)
		}
		x, err := sqlindex.OpenMySQL(ctx, dsn, sqlindex.Options{})
		if err != nil {
			return nil, fmt.Errorf("archive_index: %w", err)
		}
		return x, nil
	default:
		return nil, fmt.Errorf("archive_index.engine %q: want badger or mysql", cfg.ArchiveIndex.Engine)
	}
}
