// Package sqlindex is store.IndexStore (the archive's ordered index: the
// export index and the access log's keys) on a MySQL or MariaDB table,
// for archives that keep their state in a shared database. It passes the
// same conformance suite (store/indextest) as the Badger store.Index.
//
// The index is one InnoDB table of key/value rows:
//
//	k VARBINARY(1024) PRIMARY KEY   (binary: ordered as bytes.Compare)
//	v MEDIUMBLOB                    (a value is at most 1 MiB)
//
// A Write is one transaction: the counters its IndexAdd operations touch
// and the keys its IndexExpect conditions name are read with SELECT ...
// FOR UPDATE (so concurrent writers of one counter or one guarded key, in
// this process or another, wait for each other: a condition holds until
// the commit), the batch
// is applied in order in memory, and its net result is written with
// multi-row INSERT ... ON DUPLICATE KEY UPDATE and DELETE statements,
// then committed. A commit is as durable as the server makes it
// (InnoDB's default innodb_flush_log_at_trx_commit=1). A transaction the
// server rolls back as a deadlock or a lock wait timeout is retried
// (a few times) before the Write fails.
//
// A Scan runs in one read-only REPEATABLE READ transaction (one InnoDB
// snapshot), reading the range in pages ordered by key, so that a scan
// stopped early does not drain a large result set.
package sqlindex

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/edgeseal/edgeseal/store"
)

// DefaultTable is the index's table.
const DefaultTable = "edgeseal_index"

// DefaultMaxBatchBytes bounds the key and value bytes of one Write (the
// Badger index's bound with its default memtable is about 2.4 MiB).
const DefaultMaxBatchBytes = 4 << 20

// DefaultMaxConns bounds the connections of OpenMySQL's pool.
const DefaultMaxConns = 8

// Options configure Open.
type Options struct {
	// Table is the table's name (letters, digits, underscores; at most
	// 64). Default DefaultTable.
	Table string
	// MaxBatchBytes bounds one Write. Default DefaultMaxBatchBytes. The
	// server's max_allowed_packet must exceed the largest value (1 MiB)
	// by a margin: MariaDB's default is 16 MiB.
	MaxBatchBytes int
}

// Index is the SQL store.IndexStore.
type Index struct {
	db    *sql.DB
	own   bool // Close closes db (OpenMySQL)
	table string
	max   int
}

var _ store.IndexStore = (*Index)(nil)

var tableName = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// Open creates the table when missing and returns the index on db (a pool
// of the go-sql-driver/mysql driver, which the caller opened and closes
// after the index).
func Open(ctx context.Context, db *sql.DB, opts Options) (*Index, error) {
	if opts.Table == "" {
		opts.Table = DefaultTable
	}
	if !tableName.MatchString(opts.Table) {
		return nil, fmt.Errorf("sqlindex: table name %q: letters, digits and underscores, at most 64", opts.Table)
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = DefaultMaxBatchBytes
	}
	stmt := fmt.Sprintf("CREATE TABLE IF NOT EXISTS `%s` (k VARBINARY(%d) NOT NULL PRIMARY KEY, v MEDIUMBLOB NOT NULL) ENGINE=InnoDB",
		opts.Table, store.MaxIndexKeyLen)
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		return nil, fmt.Errorf("sqlindex: schema: %w", err)
	}
	return &Index{db: db, table: "`" + opts.Table + "`", max: opts.MaxBatchBytes}, nil
}

// OpenMySQL opens a pool on the MySQL or MariaDB database dsn names
// (github.com/go-sql-driver/mysql form:
// "user:password@unix(/run/mysqld/mysqld.sock)/edgeseal"; the database
// must exist), checks that it answers and returns the index on it (Open);
// its Close closes the pool. The DSN is never put in an error.
func OpenMySQL(ctx context.Context, dsn string, opts Options) (*Index, error) {
	if dsn == "" {
		return nil, errors.New("sqlindex: open mysql: no DSN")
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, errors.New("sqlindex: open mysql: the DSN does not parse") // its error may quote the password
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, errors.New("sqlindex: open mysql: the DSN is not usable")
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(DefaultMaxConns)
	db.SetMaxIdleConns(DefaultMaxConns)
	db.SetConnMaxIdleTime(time.Minute)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlindex: open mysql: %w", err)
	}
	x, err := Open(ctx, db, opts)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	x.own = true
	return x, nil
}

// MaxBatchBytes bounds one Write (key and value bytes).
func (x *Index) MaxBatchBytes() int { return x.max }

// Get returns a copy of key's value (store.ErrNotFound when absent).
func (x *Index) Get(ctx context.Context, key []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sqlindex: get: %w", err)
	}
	var v []byte
	err := x.db.QueryRowContext(ctx, "SELECT v FROM "+x.table+" WHERE k = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlindex: get: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlindex: get: %w", err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// Close closes the pool OpenMySQL opened; on Open's it does nothing (the
// caller closes its pool).
func (x *Index) Close() error {
	if x.own {
		if err := x.db.Close(); err != nil {
			return fmt.Errorf("sqlindex: close: %w", err)
		}
	}
	return nil
}
