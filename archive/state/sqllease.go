package state

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// leaseWait is the longest one GET_LOCK waits before Lock looks at its
// context again (a context without deadline waits in steps of it).
const leaseWait = 5 * time.Second

// leaseName is the server-wide lock name of a device of the database
// (at most 64 characters).
func (s *SQL) leaseName(device string) string {
	sum := sha256.Sum256([]byte(s.dbName + "\x00" + device))
	return "edgeseal/" + hex.EncodeToString(sum[:24])
}

// Lock takes the device's lease: a named lock of the server, held by a
// connection of its own until Release.
func (s *SQL) Lock(ctx context.Context, device string) (Lease, error) {
	if device == "" || len(device) > MaxDevice {
		return nil, fmt.Errorf("state: device name of %d bytes (1 to %d)", len(device), MaxDevice)
	}
	name := s.leaseName(device)
	conn, err := s.leases.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("state: lease of %s: %w", device, err)
	}
	for {
		wait := leaseWait
		if d, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(d))
		}
		if wait <= 0 {
			_ = conn.Close()
			return nil, fmt.Errorf("state: lease of %s: %w", device, context.DeadlineExceeded)
		}
		var got sql.NullInt64
		asked := time.Now()
		err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(?, ?)`, name, wait.Seconds()).Scan(&got)
		switch {
		case err != nil:
			discard(conn) // a wait cut short may leave the lock to come on it
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return nil, fmt.Errorf("state: lease of %s: %w", device, err)
		case got.Valid && got.Int64 == 1:
			return &sqlLease{conn: conn, name: name}, nil
		case !got.Valid:
			discard(conn)
			return nil, fmt.Errorf("state: lease of %s: GET_LOCK failed", device)
		}
		if time.Since(asked) < wait/2 {
			// A server that rounds the wait to whole seconds (MySQL;
			// MariaDB takes fractions) answered at once: no busy loop.
			select {
			case <-ctx.Done():
			case <-time.After(min(wait, 50*time.Millisecond)):
			}
		}
		if err := ctx.Err(); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("state: lease of %s: %w", device, err)
		}
	}
}

// discard closes conn for good (not back to the pool).
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}

type sqlLease struct {
	conn *sql.Conn
	name string
	once sync.Once
	err  error
}

// Release releases the lock; when the server does not confirm it, the
// connection is closed, which releases it.
func (l *sqlLease) Release() error {
	l.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var got sql.NullInt64
		err := l.conn.QueryRowContext(ctx, `SELECT RELEASE_LOCK(?)`, l.name).Scan(&got)
		if err != nil || !got.Valid || got.Int64 != 1 {
			discard(l.conn)
			if err == nil {
				err = errors.New("the lock was not held")
			}
			l.err = fmt.Errorf("state: release lease: %w", err)
			return
		}
		l.err = l.conn.Close()
	})
	return l.err
}
