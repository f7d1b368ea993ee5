package tlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/mysql"
	"golang.org/x/mod/sumdb/note"
)

// DefaultMySQLCheckpointInterval is MySQLOptions.CheckpointInterval's
// default, the least Tessera's MySQL driver allows.
const DefaultMySQLCheckpointInterval = time.Second

// DefaultMySQLMaxConns is MySQLOptions.MaxConns's default.
const DefaultMySQLMaxConns = 16

// MySQLOptions configure OpenMySQL.
type MySQLOptions struct {
	// DSN names the database (github.com/go-sql-driver/mysql form:
	// "user:password@unix(/run/mysqld/mysqld.sock)/edgeseal_log" or
	// "user:password@tcp(db.example:3306)/edgeseal_log?tls=true"). The
	// database must exist; OpenMySQL creates the log's tables in it when
	// they are missing. Required. It is never logged.
	DSN string
	// Signer signs checkpoints; its name is the checkpoint origin.
	// Required.
	Signer note.Signer
	// Verifier checks every checkpoint read back; it must be Signer's.
	// Required.
	Verifier note.Verifier
	// Previous are the log's earlier keys (same name), as in POSIXOptions.
	Previous []note.Verifier
	// CheckpointInterval is the least time between two published
	// checkpoints (at least 1s); DefaultMySQLCheckpointInterval when zero.
	CheckpointInterval time.Duration
	// RepublishInterval, when set, makes Tessera publish a checkpoint
	// this often (at least CheckpointInterval) even when the tree did
	// not grow: a log reopened with a new key signs one at once.
	RepublishInterval time.Duration
	// BatchMaxAge and BatchMaxSize bound how long and how many entries
	// Tessera gathers before it writes them in one transaction.
	BatchMaxAge  time.Duration
	BatchMaxSize uint
	// MaxConns bounds the connections to the server;
	// DefaultMySQLMaxConns when zero.
	MaxConns int
	// Logger; slog.Default() when nil.
	Logger *slog.Logger
}

// OpenMySQL opens the Tessera log in the MySQL or MariaDB database
// opts.DSN names, on Tessera's MySQL driver; any number of processes may
// open the same database and append (the tree state row is locked for
// each batch). Append returns once the transaction that sequenced the
// entry, wrote its bundle and the tiles it changed and moved the tree
// state committed: durable as the server makes a commit (InnoDB with
// innodb_flush_log_at_trx_commit=1, the default). The checkpoint,
// tiles and bundles are read from the database. Close closes the
// connections.
func OpenMySQL(ctx context.Context, opts MySQLOptions) (*Tessera, error) {
	if opts.DSN == "" {
		return nil, errors.New("tlog: open: DSN is required")
	}
	if opts.CheckpointInterval == 0 {
		opts.CheckpointInterval = DefaultMySQLCheckpointInterval
	}
	if opts.MaxConns == 0 {
		opts.MaxConns = DefaultMySQLMaxConns
	}
	o := tesseraOptions{signer: opts.Signer, verifier: opts.Verifier, previous: opts.Previous, checkpointInterval: opts.CheckpointInterval,
		republishInterval: opts.RepublishInterval, batchMaxAge: opts.BatchMaxAge, batchMaxSize: opts.BatchMaxSize, logger: opts.Logger}
	if err := o.check(); err != nil {
		return nil, err
	}
	db, err := sql.Open("mysql", opts.DSN) // the driver Tessera's MySQL storage registers
	if err != nil {
		return nil, fmt.Errorf("tlog: open mysql: %w", err)
	}
	db.SetMaxOpenConns(opts.MaxConns)
	db.SetMaxIdleConns(opts.MaxConns)
	db.SetConnMaxIdleTime(time.Minute)
	if err := createSchema(ctx, db); err != nil {
		_ = db.Close()
		return nil, err
	}
	routeKlog()
	drv, err := mysql.New(ctx, db)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("tlog: open mysql: %w", err)
	}
	p, err := openTessera(ctx, o, drv, func(r tessera.LogReader) backend { return readerBackend{r} }, db.Close)
	if err != nil {
		return nil, fmt.Errorf("tlog: open mysql: %w", err)
	}
	p.settled = func(ctx context.Context) (uint64, error) { return settledSize(ctx, db) }
	return p, nil
}

// settledSize reads the tree size with a shared lock on the tree state
// row (Tessera's sequenceBatch reads it FOR UPDATE and writes it last,
// in the transaction that writes the entries and tiles): it waits for an
// append transaction under way, in any process, to end.
func settledSize(ctx context.Context, db *sql.DB) (uint64, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }()
	var n uint64
	if err := tx.QueryRowContext(ctx, "SELECT `size` FROM `TreeState` WHERE `id` = 0 LOCK IN SHARE MODE").Scan(&n); err != nil {
		return 0, err
	}
	return n, tx.Commit()
}

// mysqlSchema is Tessera's MySQL schema (storage/mysql/schema.sql of
// github.com/transparency-dev/tessera v1.0.4, Apache License 2.0, the
// Tessera authors), one statement each; every one is idempotent.
var mysqlSchema = []string{
	"CREATE TABLE IF NOT EXISTS `Tessera` (`id` TINYINT UNSIGNED NOT NULL, `compatibilityVersion` BIGINT UNSIGNED NOT NULL, PRIMARY KEY (`id`))",
	"INSERT IGNORE INTO `Tessera` (`id`, `compatibilityVersion`) VALUES (0, 1)",
	"CREATE TABLE IF NOT EXISTS `Checkpoint` (`id` TINYINT UNSIGNED NOT NULL, `note` MEDIUMBLOB NOT NULL, `published_at` BIGINT NOT NULL, PRIMARY KEY(`id`))",
	"CREATE TABLE IF NOT EXISTS `TreeState` (`id` TINYINT UNSIGNED NOT NULL, `size` BIGINT UNSIGNED NOT NULL, `root` TINYBLOB NOT NULL, PRIMARY KEY(`id`))",
	"CREATE TABLE IF NOT EXISTS `Subtree` (`level` TINYINT UNSIGNED NOT NULL, `index` BIGINT UNSIGNED NOT NULL, `nodes` MEDIUMBLOB NOT NULL, PRIMARY KEY(`level`, `index`))",
	"CREATE TABLE IF NOT EXISTS `TiledLeaves` (`tile_index` BIGINT UNSIGNED NOT NULL, `size` SMALLINT UNSIGNED NOT NULL, `data` LONGBLOB NOT NULL, PRIMARY KEY(`tile_index`))",
}

// createSchema creates the log's tables where missing.
func createSchema(ctx context.Context, db *sql.DB) error {
	for _, stmt := range mysqlSchema {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("tlog: open mysql: schema: %w", err)
		}
	}
	return nil
}

// readerBackend reads through Tessera's LogReader (its MySQL driver
// returns a wider tile or bundle than asked when it has one).
type readerBackend struct{ r tessera.LogReader }

func (b readerBackend) checkpoint(ctx context.Context) ([]byte, error) {
	return b.r.ReadCheckpoint(ctx)
}

func (b readerBackend) tile(ctx context.Context, level, index uint64, w uint8) ([]byte, error) {
	return b.r.ReadTile(ctx, level, index, w)
}

func (b readerBackend) bundle(ctx context.Context, index uint64, w uint8) ([]byte, error) {
	return b.r.ReadEntryBundle(ctx, index, w)
}
