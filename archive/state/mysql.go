package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	_ "github.com/go-sql-driver/mysql" // registers "mysql" for OpenMySQL
)

// DefaultMySQLMaxConns bounds the connections of OpenMySQL's pool.
const DefaultMySQLMaxConns = 8

// OpenMySQL opens a pool on the MySQL or MariaDB database dsn names
// (github.com/go-sql-driver/mysql form:
// "user:password@unix(/run/mysqld/mysqld.sock)/edgeseal_state"; the
// database must exist), checks that it answers, and returns the Store on
// it (OpenSQL); its Close closes the pool. The DSN is never put in an
// error.
func OpenMySQL(ctx context.Context, dsn string) (*SQL, error) {
	if dsn == "" {
		return nil, errors.New("state: open mysql: no DSN")
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, errors.New("state: open mysql: the DSN does not parse") // its error may quote the password
	}
	db.SetMaxOpenConns(DefaultMySQLMaxConns)
	db.SetMaxIdleConns(DefaultMySQLMaxConns)
	db.SetConnMaxIdleTime(time.Minute)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("state: open mysql: %w", err)
	}
	s, err := OpenSQL(ctx, db)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	// Leases hold a connection each: a pool of their own, so that they
	// never starve the Advances that end them; unbounded until
	// SetMaxLeases.
	leases, err := sql.Open("mysql", dsn)
	if err != nil {
		_ = db.Close()
		return nil, errors.New("state: open mysql: the DSN does not parse")
	}
	leases.SetMaxIdleConns(DefaultMySQLMaxConns)
	leases.SetConnMaxIdleTime(time.Minute)
	s.leases, s.own = leases, true
	return s, nil
}

// SetMaxLeases bounds the lease connections of a Store OpenMySQL opened
// (n > 0): a Lock past the bound waits for a lease to be released, until
// its context ends. It has no effect on a Store of OpenSQL (whose leases
// share the caller's pool).
func (s *SQL) SetMaxLeases(n int) {
	if s.own && n > 0 {
		s.leases.SetMaxOpenConns(n)
	}
}
