// Package sqlretry decides whether a MySQL or MariaDB transaction that
// the server rolled back for a lock conflict may run again, and spaces
// the runs so that writers that deadlocked on each other do not meet
// again at once.
//
// InnoDB answers a deadlock (1213) or a lock wait timeout (1205) by
// rolling back the whole transaction: nothing of it was kept, so running
// it again from the start is safe. Writers that lock absent keys (gap
// locks) and then insert them deadlock often under contention; an
// immediate retry tends to meet the same writers in the same order, so
// Wait sleeps a random time that grows with the attempt.
package sqlretry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Attempts is how many times a caller runs a transaction that keeps
// failing with a Retryable error before it returns the error.
const Attempts = 12

// MySQL error numbers of a transaction the server rolled back whole.
const (
	ErLockWaitTimeout = 1205
	ErLockDeadlock    = 1213
)

// Backoff bounds: the first wait is at most First, each next one at most
// twice the last, never more than Max.
const (
	First = time.Millisecond
	Max   = 100 * time.Millisecond
)

// Retryable reports whether err (or an error it wraps) is a transaction
// the server rolled back for a lock conflict with another one.
func Retryable(err error) bool {
	me, ok := errors.AsType[*mysql.MySQLError](err)
	return ok && (me.Number == ErLockDeadlock || me.Number == ErLockWaitTimeout)
}

// Wait sleeps before running a transaction again after its attempt-th
// failure (1 for the first): a uniformly random time up to
// min(First<<(attempt-1), Max). It returns ctx's error if ctx ends first.
func Wait(ctx context.Context, attempt int) error {
	d := Ceiling(attempt)
	t := time.NewTimer(rand.N(d) + 1)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Ceiling is the longest Wait after the attempt-th failure.
func Ceiling(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := First
	for i := 1; i < attempt && d < Max; i++ {
		d *= 2
	}
	return min(d, Max)
}
