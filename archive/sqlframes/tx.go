package sqlframes

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/edgeseal/edgeseal/bundle/wire"
	"github.com/edgeseal/edgeseal/sync"
)

// holding is what one source's partials hold (its edgeseal_frame_source
// row, locked by the transaction).
type holding struct {
	source   string
	partials int64
	bytes    int64
}

// partialRow is a row of edgeseal_frame_partial.
type partialRow struct {
	id    string
	count int
	size  int64
	room  int64
	have  int
	bytes int64
}

func begin(ctx context.Context, db *sql.DB) (*sql.Tx, error) {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return nil, fmt.Errorf("sqlframes: begin: %w", err)
	}
	return tx, nil
}

// lockSource locks source's row (made when missing) and reads it.
func lockSource(ctx context.Context, tx *sql.Tx, source string) (*holding, error) {
	if _, err := tx.ExecContext(ctx, `INSERT INTO edgeseal_frame_source (source, partials, bytes) VALUES (?, 0, 0)
		ON DUPLICATE KEY UPDATE partials = partials`, source); err != nil {
		return nil, fmt.Errorf("sqlframes: lock source: %w", err)
	}
	h := &holding{source: source}
	if err := tx.QueryRowContext(ctx, `SELECT partials, bytes FROM edgeseal_frame_source WHERE source = ? FOR UPDATE`, source).
		Scan(&h.partials, &h.bytes); err != nil {
		return nil, fmt.Errorf("sqlframes: lock source: %w", err)
	}
	return h, nil
}

// save writes h back (its row deleted when it holds nothing).
func (h *holding) save(ctx context.Context, tx *sql.Tx) error {
	var err error
	if h.partials <= 0 {
		_, err = tx.ExecContext(ctx, `DELETE FROM edgeseal_frame_source WHERE source = ?`, h.source)
	} else {
		_, err = tx.ExecContext(ctx, `UPDATE edgeseal_frame_source SET partials = ?, bytes = ? WHERE source = ?`, h.partials, h.bytes, h.source)
	}
	if err != nil {
		return fmt.Errorf("sqlframes: save source: %w", err)
	}
	return nil
}

// drop deletes a partial of h's source and its chunks.
func (h *holding) drop(ctx context.Context, tx *sql.Tx, digest []byte, bytes int64) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM edgeseal_frame WHERE source = ? AND digest = ?`, h.source, digest); err != nil {
		return fmt.Errorf("sqlframes: drop chunks: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM edgeseal_frame_partial WHERE source = ? AND digest = ?`, h.source, digest); err != nil {
		return fmt.Errorf("sqlframes: drop partial: %w", err)
	}
	h.partials--
	h.bytes -= bytes
	return nil
}

// expire drops h's partials idle since before `before`; it returns how
// many.
func (h *holding) expire(ctx context.Context, tx *sql.Tx, before int64) (int, error) {
	type old struct {
		digest []byte
		bytes  int64
	}
	var olds []old
	rows, err := tx.QueryContext(ctx, `SELECT digest, bytes FROM edgeseal_frame_partial WHERE source = ? AND touched < ?`, h.source, before)
	if err != nil {
		return 0, fmt.Errorf("sqlframes: expire: %w", err)
	}
	for rows.Next() {
		var o old
		if err := rows.Scan(&o.digest, &o.bytes); err != nil {
			_ = rows.Close()
			return 0, fmt.Errorf("sqlframes: expire: %w", err)
		}
		olds = append(olds, o)
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("sqlframes: expire: %w", err)
	}
	for _, o := range olds {
		if err := h.drop(ctx, tx, o.digest, o.bytes); err != nil {
			return 0, err
		}
	}
	return len(olds), nil
}

// evict drops h's least recently touched partial other than keep; it
// reports whether there was one.
func (h *holding) evict(ctx context.Context, tx *sql.Tx, keep []byte) (bool, error) {
	var digest []byte
	var bytes int64
	err := tx.QueryRowContext(ctx, `SELECT digest, bytes FROM edgeseal_frame_partial WHERE source = ? AND digest <> ?
		ORDER BY touched LIMIT 1`, h.source, keep).Scan(&digest, &bytes)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sqlframes: evict: %w", err)
	}
	return true, h.drop(ctx, tx, digest, bytes)
}

// place keeps f's chunk in one transaction and returns the whole bundle
// when f brought its last chunk (the partial then deleted).
func (s *Store) place(ctx context.Context, source string, f *sync.Frame) (whole []byte, err error) {
	tx, err := begin(ctx, s.db)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	now := s.now().UnixNano()
	h, err := lockSource(ctx, tx, source)
	if err != nil {
		return nil, err
	}
	n, err := h.expire(ctx, tx, now-int64(s.limits.TTL))
	if err != nil {
		return nil, err
	}
	s.expired.Add(uint64(n))
	digest := f.Digest[:]
	var p partialRow
	err = tx.QueryRowContext(ctx, `SELECT id, count, size, room, have, bytes FROM edgeseal_frame_partial WHERE source = ? AND digest = ?`,
		source, digest).Scan(&p.id, &p.count, &p.size, &p.room, &p.have, &p.bytes)
	fresh := errors.Is(err, sql.ErrNoRows)
	switch {
	case fresh:
		p = partialRow{id: f.ID, count: f.Count, size: f.Size}
	case err != nil:
		return nil, fmt.Errorf("sqlframes: read partial: %w", err)
	default:
		if err := sync.CheckFrame(f, p.id, p.count, p.size); err != nil {
			return nil, err
		}
	}
	room, err := sync.ChunkRoom(f, p.room)
	if err != nil {
		return nil, err
	}
	if fresh {
		for h.partials+1 > int64(s.limits.MaxSourcePartials) {
			ok, err := h.evict(ctx, tx, digest)
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
			s.evicted.Add(1)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO edgeseal_frame_partial (source, digest, id, count, size, room, have, bytes, touched)
			VALUES (?, ?, ?, ?, ?, ?, 0, 0, ?)`, source, digest, f.ID, f.Count, f.Size, room, now); err != nil {
			return nil, fmt.Errorf("sqlframes: new partial: %w", err)
		}
		h.partials++
	}
	res, err := tx.ExecContext(ctx, `INSERT IGNORE INTO edgeseal_frame (source, digest, idx, chunk) VALUES (?, ?, ?, ?)`,
		source, digest, f.Index, f.Chunk)
	if err != nil {
		return nil, fmt.Errorf("sqlframes: keep chunk: %w", err)
	}
	if added, err := res.RowsAffected(); err != nil {
		return nil, fmt.Errorf("sqlframes: keep chunk: %w", err)
	} else if added == 0 { // a repeat
		if _, err := tx.ExecContext(ctx, `UPDATE edgeseal_frame_partial SET touched = ? WHERE source = ? AND digest = ?`, now, source, digest); err != nil {
			return nil, fmt.Errorf("sqlframes: touch partial: %w", err)
		}
		if err := h.save(ctx, tx); err != nil {
			return nil, err
		}
		return nil, commit(tx)
	}
	c := int64(len(f.Chunk))
	for h.bytes+c > s.limits.MaxSourceBytes {
		ok, err := h.evict(ctx, tx, digest)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, &sync.LimitError{What: "source partial bytes", Value: h.bytes + c, Limit: s.limits.MaxSourceBytes}
		}
		s.evicted.Add(1)
	}
	p.have++
	p.bytes += c
	h.bytes += c
	if p.have < p.count {
		if _, err := tx.ExecContext(ctx, `UPDATE edgeseal_frame_partial SET room = ?, have = ?, bytes = ?, touched = ? WHERE source = ? AND digest = ?`,
			room, p.have, p.bytes, now, source, digest); err != nil {
			return nil, fmt.Errorf("sqlframes: update partial: %w", err)
		}
		if err := h.save(ctx, tx); err != nil {
			return nil, err
		}
		return nil, commit(tx)
	}
	whole, err = join(ctx, tx, source, f, room)
	if err != nil {
		return nil, err
	}
	if err := h.drop(ctx, tx, digest, p.bytes); err != nil {
		return nil, err
	}
	if err := h.save(ctx, tx); err != nil {
		return nil, err
	}
	if err := commit(tx); err != nil {
		return nil, err
	}
	return whole, nil
}

// join reads a complete partial's chunks into the bundle.
func join(ctx context.Context, tx *sql.Tx, source string, f *sync.Frame, room int64) ([]byte, error) {
	whole := make([]byte, f.Size)
	rows, err := tx.QueryContext(ctx, `SELECT idx, chunk FROM edgeseal_frame WHERE source = ? AND digest = ? ORDER BY idx`, source, f.Digest[:])
	if err != nil {
		return nil, fmt.Errorf("sqlframes: read chunks: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var total int64
	var got int
	for rows.Next() {
		var idx int64
		var chunk []byte
		if err := rows.Scan(&idx, &chunk); err != nil {
			return nil, fmt.Errorf("sqlframes: read chunks: %w", err)
		}
		off := idx * room
		if idx >= int64(f.Count) || off+int64(len(chunk)) > f.Size { // cannot happen: ChunkRoom checked each
			return nil, &sync.MismatchError{Bundle: wire.FormatHash(f.Digest), Field: "chunk", Want: strconv.FormatInt(room, 10) + " bytes per chunk", Got: strconv.Itoa(len(chunk)) + " bytes at index " + strconv.FormatInt(idx, 10)}
		}
		copy(whole[off:], chunk)
		total += int64(len(chunk))
		got++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlframes: read chunks: %w", err)
	}
	if got != f.Count || total != f.Size {
		return nil, &sync.MismatchError{Bundle: wire.FormatHash(f.Digest), Field: "size", Want: strconv.FormatInt(f.Size, 10), Got: strconv.FormatInt(total, 10)}
	}
	return whole, nil
}

func commit(tx *sql.Tx) error {
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlframes: commit: %w", err)
	}
	return nil
}

// maybeSweep runs Sweep when none ran for TTL/4 (one caller at a time;
// the others go on); a failure is counted (Stats.SweepErrors).
func (s *Store) maybeSweep(ctx context.Context) {
	if !s.sweepMu.TryLock() {
		return
	}
	defer s.sweepMu.Unlock()
	now := s.now()
	if now.Sub(s.lastSweep) < s.limits.TTL/4 {
		return
	}
	s.lastSweep = now
	if _, err := s.sweep(ctx, now); err != nil {
		s.sweepErrors.Add(1)
	}
}

// Sweep drops the partials idle for the TTL of at most sweepSources
// sources and returns how many it dropped.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	return s.sweep(ctx, s.now())
}

func (s *Store) sweep(ctx context.Context, now time.Time) (int, error) {
	before := now.UnixNano() - int64(s.limits.TTL)
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT source FROM edgeseal_frame_partial WHERE touched < ? LIMIT `+strconv.Itoa(sweepSources), before)
	if err != nil {
		return 0, fmt.Errorf("sqlframes: sweep: %w", err)
	}
	var sources []string
	for rows.Next() {
		var src string
		if err := rows.Scan(&src); err != nil {
			_ = rows.Close()
			return 0, fmt.Errorf("sqlframes: sweep: %w", err)
		}
		sources = append(sources, src)
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("sqlframes: sweep: %w", err)
	}
	total := 0
	for _, src := range sources {
		n, err := s.expireSource(ctx, src, before)
		if err != nil {
			return total, err
		}
		total += n
	}
	s.expired.Add(uint64(total))
	return total, nil
}

func (s *Store) expireSource(ctx context.Context, source string, before int64) (n int, err error) {
	tx, err := begin(ctx, s.db)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	h, err := lockSource(ctx, tx, source)
	if err != nil {
		return 0, err
	}
	if n, err = h.expire(ctx, tx, before); err != nil {
		return 0, err
	}
	if err := h.save(ctx, tx); err != nil {
		return 0, err
	}
	return n, commit(tx)
}
