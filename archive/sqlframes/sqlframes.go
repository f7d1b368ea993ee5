// Package sqlframes is the sync.FrameStore of replicated archives: the
// partial bundles live in the archive's MariaDB or MySQL database, so
// that whichever replica receives the frame that completes a bundle
// joins it, although the broker deals the frames of one bundle to
// different replicas of the shared subscription group.
//
// Tables (InnoDB, created when missing): edgeseal_frame_source, one row
// per source (site/device) holding partials: its count of partials and
// their chunk bytes; edgeseal_frame_partial, one row per partial bundle
// (source, digest) with its header (id, count, size), its chunk length,
// the chunks it has and when it last got one; edgeseal_frame, one row per
// chunk received (source, digest, index). An Add is one transaction
// (READ COMMITTED) that first locks its source's row (INSERT ... ON
// DUPLICATE KEY UPDATE takes the row's exclusive lock): the frames of one
// source are added one at a time across all replicas, so the source's
// bounds hold and the frame that brings a partial's last chunk is seen by
// exactly one transaction, which reads the chunks, deletes the partial
// and its chunks and commits before it returns the bundle. A repeated
// chunk inserts nothing (INSERT IGNORE on its key). The Subscriber
// acknowledges a frame after Add returns, so after its commit.
//
// Bounds: sync.AssemblerLimits' MaxBundle, MaxSourcePartials (the
// source's least recently touched partial is dropped to make room, as
// the Assembler does), MaxSourceBytes (chunk bytes held for one source;
// the source's other partials are dropped, oldest first, then the frame
// is refused with *sync.LimitError) and TTL. The shared bounds of the
// Assembler (MaxPartials, MaxBytes) do not apply: the database holds at
// most MaxSourcePartials partials and MaxSourceBytes bytes per source,
// and only enrolled devices may publish. Partials idle for the TTL are
// dropped by the Add of their source and by a sweep (at most once per
// TTL/4, of at most sweepSources sources) that Add runs.
package sqlframes

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/edgeseal/edgeseal/internal/sqlretry"
	"github.com/edgeseal/edgeseal/sync"
)

var schema = []string{
	`CREATE TABLE IF NOT EXISTS edgeseal_frame_source (
		source VARBINARY(255) NOT NULL PRIMARY KEY,
		partials INT UNSIGNED NOT NULL,
		bytes BIGINT UNSIGNED NOT NULL
	) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS edgeseal_frame_partial (
		source VARBINARY(255) NOT NULL,
		digest BINARY(32) NOT NULL,
		id VARBINARY(256) NOT NULL,
		count INT UNSIGNED NOT NULL,
		size BIGINT UNSIGNED NOT NULL,
		room BIGINT UNSIGNED NOT NULL,
		have INT UNSIGNED NOT NULL,
		bytes BIGINT UNSIGNED NOT NULL,
		touched BIGINT NOT NULL,
		PRIMARY KEY (source, digest),
		KEY touched (touched)
	) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS edgeseal_frame (
		source VARBINARY(255) NOT NULL,
		digest BINARY(32) NOT NULL,
		idx INT UNSIGNED NOT NULL,
		chunk LONGBLOB NOT NULL,
		PRIMARY KEY (source, digest, idx)
	) ENGINE=InnoDB`,
}

// sweepSources bounds the sources one sweep expires partials of.
const sweepSources = 64

// Stats counts what a Store did (in this process).
type Stats struct {
	Completed uint64
	Evicted   uint64 // partials dropped for room (the source's own)
	Expired   uint64 // partials dropped by TTL
	Refused   uint64 // frames refused with an error
	Retried   uint64 // transactions retried after a deadlock or lock wait timeout
	// Failed counts Adds that failed otherwise than by refusing the
	// frame, after their retries (the database down, a conflict past the
	// retries), their context not ended. The subscriber tries such a
	// frame again a few times, then acknowledges it all the same
	// (sync.SubscriberStats.FramesLost): its bundle comes again when the
	// agent sends it again.
	Failed uint64
	// SweepErrors counts sweeps that failed (the next Add after TTL/4
	// tries again; the frame being added is not affected).
	SweepErrors uint64
}

// Store is the FrameStore on a database. It is safe for concurrent use,
// and any number of Stores (replicas) may share one database.
type Store struct {
	db     *sql.DB
	limits sync.AssemblerLimits
	now    func() time.Time
	own    bool

	sweepMu   gosync.Mutex
	lastSweep time.Time

	completed, evicted, expired, refused, retried, failed, sweepErrors atomic.Uint64
}

var _ sync.FrameStore = (*Store)(nil)

// Open creates the tables when missing and returns the Store on db
// (opened with the go-sql-driver/mysql driver). Close does not close db.
func Open(ctx context.Context, db *sql.DB, limits sync.AssemblerLimits) (*Store, error) {
	for _, stmt := range schema {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return nil, fmt.Errorf("sqlframes: schema: %w", err)
		}
	}
	return &Store{db: db, limits: limits.WithDefaults(), now: time.Now}, nil
}

// DefaultMaxConns bounds the connections of OpenMySQL's pool.
const DefaultMaxConns = 4

// OpenMySQL opens a pool on the database dsn names (go-sql-driver/mysql
// form; the database must exist) and returns the Store on it; its Close
// closes the pool. The DSN is never put in an error.
func OpenMySQL(ctx context.Context, dsn string, limits sync.AssemblerLimits) (*Store, error) {
	if dsn == "" {
		return nil, errors.New("sqlframes: open mysql: no DSN")
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, errors.New("sqlframes: open mysql: the DSN does not parse") // its error may quote the password
	}
	db.SetMaxOpenConns(DefaultMaxConns)
	db.SetMaxIdleConns(DefaultMaxConns)
	db.SetConnMaxIdleTime(time.Minute)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlframes: open mysql: %w", err)
	}
	s, err := Open(ctx, db, limits)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	s.own = true
	return s, nil
}

// Close closes the pool when OpenMySQL opened it.
func (s *Store) Close() error {
	if s.own {
		return s.db.Close()
	}
	return nil
}

// Stats returns the counters.
func (s *Store) Stats() Stats {
	return Stats{Completed: s.completed.Load(), Evicted: s.evicted.Load(), Expired: s.expired.Load(),
		Refused: s.refused.Load(), Retried: s.retried.Load(), Failed: s.failed.Load(), SweepErrors: s.sweepErrors.Load()}
}

// Add takes one frame from source (see sync.FrameStore). A bundle of one
// frame is completed at once, without the database.
func (s *Store) Add(ctx context.Context, source string, frame []byte) (*sync.Complete, error) {
	c, err := s.add(ctx, source, frame)
	switch {
	case err != nil && sync.IsFrameRefusal(err):
		s.refused.Add(1)
	case err != nil && ctx.Err() == nil:
		s.failed.Add(1)
	case c != nil:
		s.completed.Add(1)
	}
	return c, err
}

func (s *Store) add(ctx context.Context, source string, frame []byte) (*sync.Complete, error) {
	f, err := sync.DecodeFrame(frame)
	if err != nil {
		return nil, err
	}
	if f.Size > s.limits.MaxBundle {
		return nil, &sync.LimitError{What: "bundle size", Value: f.Size, Limit: s.limits.MaxBundle}
	}
	if len(source) > 255 {
		return nil, &sync.LimitError{What: "source length", Value: int64(len(source)), Limit: 255}
	}
	if f.Count == 1 {
		return sync.FinishBundle(source, f, append([]byte(nil), f.Chunk...))
	}
	s.maybeSweep(ctx)
	for attempt := 1; ; attempt++ {
		whole, err := s.place(ctx, source, f)
		if err != nil && attempt < sqlretry.Attempts && sqlretry.Retryable(err) && sqlretry.Wait(ctx, attempt) == nil {
			s.retried.Add(1)
			continue
		}
		if err != nil || whole == nil {
			return nil, err
		}
		return sync.FinishBundle(source, f, whole)
	}
}
