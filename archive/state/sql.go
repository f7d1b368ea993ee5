package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// The SQL store keeps one row per device in edgeseal_chain and one per
// accepted checkpoint in edgeseal_checkpoint (InnoDB). An Advance is one
// transaction: a conditional UPDATE of the device's row (WHERE version =
// from; a first one an INSERT that does nothing when the row exists),
// whose affected row count decides it, then the checkpoints. InnoDB locks
// the row for the rest of the transaction, so a concurrent Advance of the
// same device waits and then matches no row: exactly one wins. A commit
// is as durable as the server makes it (InnoDB's default
// innodb_flush_log_at_trx_commit=1).
//
// Accepted bundles are rows of edgeseal_bundle, keyed by digest, written
// in the Advance's transaction; one recorded without its receipt keeps
// its Pending in edgeseal_bundle_pending until AdvanceReceipt, a
// transaction that raises the chain row's receipt columns (locking the
// row first, as an Advance does) and then fills the bundle's receipt.
// An Advance never lowers the receipt columns: each is assigned only
// when the given size is larger, receipt_size last (MariaDB and MySQL
// assign left to right; under SIMULTANEOUS_ASSIGNMENT all read the old
// values, which is the same). A device's lease (Lock) is a named lock
// of the server (GET_LOCK, its name a hash of the database and the
// device) held by a connection taken from the pool for the lease: the
// server releases it when that connection dies with its process, so a
// replica killed while it holds a lease blocks the device no longer than
// the server takes to see the connection closed. Each lease held takes a
// connection: the pool must allow as many connections as devices in
// flight (OpenMySQL's lease pool is unbounded until SetMaxLeases; a Lock
// past that bound waits for a lease to be released).

var sqlSchema = []string{
	`CREATE TABLE IF NOT EXISTS edgeseal_chain (
		device VARBINARY(255) NOT NULL PRIMARY KEY,
		version BIGINT UNSIGNED NOT NULL,
		epoch BIGINT UNSIGNED NOT NULL,
		bundles BIGINT UNSIGNED NOT NULL,
		head BINARY(32) NOT NULL,
		log_index BIGINT UNSIGNED NOT NULL,
		size BIGINT UNSIGNED NOT NULL,
		root BINARY(32) NOT NULL,
		verify MEDIUMBLOB NOT NULL,
		receipt_log_index BIGINT UNSIGNED NOT NULL,
		receipt_size BIGINT UNSIGNED NOT NULL,
		receipt_root BINARY(32) NOT NULL
	) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS edgeseal_checkpoint (
		device VARBINARY(255) NOT NULL,
		epoch BIGINT UNSIGNED NOT NULL,
		size BIGINT UNSIGNED NOT NULL,
		root BINARY(32) NOT NULL,
		bundle BINARY(32) NOT NULL,
		PRIMARY KEY (device, epoch, size)
	) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS edgeseal_bundle (
		digest BINARY(32) NOT NULL PRIMARY KEY,
		device VARBINARY(255) NOT NULL,
		log_index BIGINT UNSIGNED NOT NULL,
		receipt MEDIUMBLOB NOT NULL
	) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS edgeseal_bundle_pending (
		digest BINARY(32) NOT NULL PRIMARY KEY,
		pending MEDIUMBLOB NOT NULL
	) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS edgeseal_registry (
		id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
		generation BIGINT UNSIGNED NOT NULL,
		doc LONGBLOB NULL
	) ENGINE=InnoDB`,
	`INSERT IGNORE INTO edgeseal_registry (id, generation, doc) VALUES (1, 0, NULL)`,
	`CREATE TABLE IF NOT EXISTS edgeseal_statement (
		id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
		digest BINARY(32) NOT NULL UNIQUE,
		rec MEDIUMBLOB NOT NULL,
		refused VARBINARY(1024) NULL
	) ENGINE=InnoDB`,
}

// SQL is the Store on MariaDB or MySQL.
type SQL struct {
	db     *sql.DB
	leases *sql.DB // the pool of lease connections (db unless OpenMySQL)
	dbName string  // DATABASE(), part of lease names
	own    bool    // Close closes db and leases (OpenMySQL)
}

var _ Store = (*SQL)(nil)

// OpenSQL creates the tables when missing and returns the Store on db
// (opened by the caller with the go-sql-driver/mysql driver, whose
// owner registers it). Close does not close db.
func OpenSQL(ctx context.Context, db *sql.DB) (*SQL, error) {
	for _, stmt := range sqlSchema {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return nil, fmt.Errorf("state: schema: %w", err)
		}
	}
	var name sql.NullString
	if err := db.QueryRowContext(ctx, `SELECT DATABASE()`).Scan(&name); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return &SQL{db: db, leases: db, dbName: name.String}, nil
}

// raiseColumns assigns the receipt columns from (size, logIndex, size,
// root, size) when size is larger than the stored receipt_size.
const raiseColumns = `receipt_log_index = IF(? > receipt_size, ?, receipt_log_index),
	receipt_root = IF(? > receipt_size, ?, receipt_root), receipt_size = GREATEST(receipt_size, ?)`

const chainColumns = `version, epoch, bundles, head, log_index, size, root, verify, receipt_log_index, receipt_size, receipt_root`

func scanChain(row interface{ Scan(...any) error }) (Chain, error) {
	var c Chain
	var head, root, rroot []byte
	err := row.Scan(&c.Version, &c.Epoch, &c.Bundles, &head, &c.LogIndex, &c.Size, &root, &c.Verify, &c.ReceiptLogIndex, &c.ReceiptSize, &rroot)
	if err != nil {
		return Chain{}, err
	}
	if len(head) != 32 || len(root) != 32 || len(rroot) != 32 {
		return Chain{}, errors.New("a digest column is not 32 bytes")
	}
	copy(c.Head[:], head)
	copy(c.Root[:], root)
	copy(c.ReceiptRoot[:], rroot)
	if len(c.Verify) == 0 {
		c.Verify = nil
	}
	return c, nil
}

// Get returns the device's chain.
func (s *SQL) Get(ctx context.Context, device string) (Chain, error) {
	return s.get(ctx, s.db, device)
}

func (s *SQL) get(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, device string) (Chain, error) {
	c, err := scanChain(q.QueryRowContext(ctx, `SELECT `+chainColumns+` FROM edgeseal_chain WHERE device = ?`, []byte(device)))
	if errors.Is(err, sql.ErrNoRows) {
		return Chain{}, fmt.Errorf("state: %s: %w", device, ErrNotFound)
	}
	if err != nil {
		return Chain{}, fmt.Errorf("state: %s: %w", device, err)
	}
	return c, nil
}

// Advance stores to if the device's chain is still at version from.
func (s *SQL) Advance(ctx context.Context, device string, from uint64, to Chain, cps ...Checkpoint) (_ Chain, err error) {
	if err := check(device, to); err != nil {
		return Chain{}, err
	}
	to.Version = from + 1
	verify := to.Verify
	if verify == nil {
		verify = []byte{}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Chain{}, fmt.Errorf("state: %s: %w", device, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var res sql.Result
	if from == 0 {
		res, err = tx.ExecContext(ctx, `INSERT INTO edgeseal_chain (device, `+chainColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)
			ON DUPLICATE KEY UPDATE device = device`,
			[]byte(device), to.Version, to.Epoch, to.Bundles, to.Head[:], to.LogIndex, to.Size, to.Root[:], verify, to.ReceiptLogIndex, to.ReceiptSize, to.ReceiptRoot[:])
	} else {
		res, err = tx.ExecContext(ctx, `UPDATE edgeseal_chain SET version = ?, epoch = ?, bundles = ?, head = ?, log_index = ?, size = ?, root = ?, verify = ?,
			`+raiseColumns+` WHERE device = ? AND version = ?`,
			to.Version, to.Epoch, to.Bundles, to.Head[:], to.LogIndex, to.Size, to.Root[:], verify,
			to.ReceiptSize, to.ReceiptLogIndex, to.ReceiptSize, to.ReceiptRoot[:], to.ReceiptSize, []byte(device), from)
	}
	if err != nil {
		return Chain{}, fmt.Errorf("state: %s: %w", device, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return Chain{}, fmt.Errorf("state: %s: %w", device, err)
	}
	if n != 1 {
		err = &ConflictError{Device: device, Expected: from}
		cur, gerr := s.get(ctx, tx, device)
		switch {
		case gerr == nil:
			err.(*ConflictError).Stored = &cur
		case !errors.Is(gerr, ErrNotFound):
			err = gerr
		}
		return Chain{}, err
	}
	if from != 0 {
		// The receipt columns as stored (kept when larger).
		var rroot []byte
		if err = tx.QueryRowContext(ctx, `SELECT receipt_log_index, receipt_size, receipt_root FROM edgeseal_chain WHERE device = ?`, []byte(device)).
			Scan(&to.ReceiptLogIndex, &to.ReceiptSize, &rroot); err != nil {
			return Chain{}, fmt.Errorf("state: %s: %w", device, err)
		}
		if len(rroot) != 32 {
			err = fmt.Errorf("state: %s: receipt root of %d bytes", device, len(rroot))
			return Chain{}, err
		}
		copy(to.ReceiptRoot[:], rroot)
	}
	for _, acc := range to.Accepted {
		receipt := acc.Receipt
		if receipt == nil {
			receipt = []byte{}
		}
		res, err = tx.ExecContext(ctx, `INSERT INTO edgeseal_bundle (digest, device, log_index, receipt) VALUES (?,?,?,?)
			ON DUPLICATE KEY UPDATE digest = digest`, acc.Bundle[:], []byte(device), acc.LogIndex, receipt)
		if err != nil {
			return Chain{}, fmt.Errorf("state: %s: %w", device, err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return Chain{}, fmt.Errorf("state: %s: %w", device, err)
		}
		if n == 1 && len(acc.Receipt) == 0 && len(acc.Pending) > 0 { // a new row (an existing one: 0)
			if _, err = tx.ExecContext(ctx, `INSERT INTO edgeseal_bundle_pending (digest, pending) VALUES (?,?)
				ON DUPLICATE KEY UPDATE digest = digest`, acc.Bundle[:], acc.Pending); err != nil {
				return Chain{}, fmt.Errorf("state: %s: %w", device, err)
			}
		}
	}
	to.Accepted = nil
	for _, cp := range cps {
		if _, err = tx.ExecContext(ctx, `INSERT INTO edgeseal_checkpoint (device, epoch, size, root, bundle) VALUES (?,?,?,?,?)
			ON DUPLICATE KEY UPDATE root = VALUES(root), bundle = VALUES(bundle)`,
			[]byte(device), cp.Epoch, cp.Size, cp.Root[:], cp.Bundle[:]); err != nil {
			return Chain{}, fmt.Errorf("state: %s: %w", device, err)
		}
	}
	if err = tx.Commit(); err != nil {
		return Chain{}, fmt.Errorf("state: %s: %w", device, err)
	}
	return to, nil
}

// Checkpoint looks up an accepted checkpoint.
func (s *SQL) Checkpoint(ctx context.Context, device string, epoch, size uint64) (Checkpoint, error) {
	var root, bundle []byte
	err := s.db.QueryRowContext(ctx, `SELECT root, bundle FROM edgeseal_checkpoint WHERE device = ? AND epoch = ? AND size = ?`,
		[]byte(device), epoch, size).Scan(&root, &bundle)
	if errors.Is(err, sql.ErrNoRows) {
		return Checkpoint{}, fmt.Errorf("state: %s checkpoint %d of epoch %d: %w", device, size, epoch, ErrNotFound)
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("state: %w", err)
	}
	if len(root) != 32 || len(bundle) != 32 {
		return Checkpoint{}, fmt.Errorf("state: %s checkpoint %d of epoch %d: a digest is not 32 bytes", device, size, epoch)
	}
	cp := Checkpoint{Epoch: epoch, Size: size}
	copy(cp.Root[:], root)
	copy(cp.Bundle[:], bundle)
	return cp, nil
}

// Bundle looks up an accepted bundle.
func (s *SQL) Bundle(ctx context.Context, digest [32]byte) (Accepted, error) {
	var dev []byte
	acc := Accepted{Bundle: digest}
	err := s.db.QueryRowContext(ctx, `SELECT device, log_index, receipt FROM edgeseal_bundle WHERE digest = ?`, digest[:]).Scan(&dev, &acc.LogIndex, &acc.Receipt)
	if errors.Is(err, sql.ErrNoRows) {
		return Accepted{}, fmt.Errorf("state: bundle sha256:%x: %w", digest, ErrNotFound)
	}
	if err != nil {
		return Accepted{}, fmt.Errorf("state: %w", err)
	}
	acc.Device = string(dev)
	if len(acc.Receipt) == 0 {
		acc.Receipt = nil
		err := s.db.QueryRowContext(ctx, `SELECT pending FROM edgeseal_bundle_pending WHERE digest = ?`, digest[:]).Scan(&acc.Pending)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return Accepted{}, fmt.Errorf("state: %w", err)
		}
	}
	return acc, nil
}

// AdvanceReceipt records a bundle's receipt and raises its chain's
// receipt columns.
func (s *SQL) AdvanceReceipt(ctx context.Context, r Receipt) (_ Accepted, err error) {
	if err := checkReceipt(r); err != nil {
		return Accepted{}, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Accepted{}, fmt.Errorf("state: %s: %w", r.Device, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	// The chain row first, as an Advance locks it (no deadlock between
	// the two).
	if _, err = tx.ExecContext(ctx, `UPDATE edgeseal_chain SET `+raiseColumns+` WHERE device = ?`,
		r.Size, r.LogIndex, r.Size, r.Root[:], r.Size, []byte(r.Device)); err != nil {
		return Accepted{}, fmt.Errorf("state: %s: %w", r.Device, err)
	}
	var dev, stored []byte
	acc := Accepted{Bundle: r.Bundle}
	err = tx.QueryRowContext(ctx, `SELECT device, log_index, receipt FROM edgeseal_bundle WHERE digest = ? FOR UPDATE`, r.Bundle[:]).
		Scan(&dev, &acc.LogIndex, &stored)
	if errors.Is(err, sql.ErrNoRows) || err == nil && (string(dev) != r.Device || acc.LogIndex != r.LogIndex) {
		err = fmt.Errorf("state: bundle sha256:%x of %s at log index %d: %w", r.Bundle, r.Device, r.LogIndex, ErrNotFound)
		return Accepted{}, err
	}
	if err != nil {
		return Accepted{}, fmt.Errorf("state: %w", err)
	}
	acc.Device, acc.Receipt = r.Device, stored
	if len(stored) == 0 {
		if _, err = tx.ExecContext(ctx, `UPDATE edgeseal_bundle SET receipt = ? WHERE digest = ?`, r.Receipt, r.Bundle[:]); err != nil {
			return Accepted{}, fmt.Errorf("state: %s: %w", r.Device, err)
		}
		if _, err = tx.ExecContext(ctx, `DELETE FROM edgeseal_bundle_pending WHERE digest = ?`, r.Bundle[:]); err != nil {
			return Accepted{}, fmt.Errorf("state: %s: %w", r.Device, err)
		}
		acc.Receipt = r.Receipt
	}
	if err = tx.Commit(); err != nil {
		return Accepted{}, fmt.Errorf("state: %s: %w", r.Device, err)
	}
	return acc, nil
}

// Shared is true: any process on the database may advance a chain.
func (s *SQL) Shared() bool { return true }

// Close closes the pools OpenMySQL opened; on OpenSQL's it does nothing
// (the caller closes its pool).
func (s *SQL) Close() error {
	if s.own {
		err := s.db.Close()
		if s.leases != s.db {
			err = errors.Join(err, s.leases.Close())
		}
		return err
	}
	return nil
}
