package sqlindex

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/edgeseal/edgeseal/internal/sqlretry"
	"github.com/edgeseal/edgeseal/store"
)

// Statement bounds: the rows of one multi-row statement, and its bytes
// (a single larger value goes alone).
const (
	stmtRows  = 500
	stmtBytes = 1 << 20
)

// NotCounterError is an IndexAdd to a key whose value is not a counter
// (8 bytes).
type NotCounterError struct {
	Key []byte
	Len int
}

func (e *NotCounterError) Error() string {
	return fmt.Sprintf("counter %q holds %d bytes", e.Key, e.Len)
}

// Write applies ops in one transaction (see the package comment). On an
// error nothing is applied, unless the commit itself failed on a lost
// connection: then the server may have committed it or not.
func (x *Index) Write(ctx context.Context, ops []store.IndexOp) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlindex: write: %w", err)
	}
	total := 0
	for _, op := range ops {
		if len(op.Key) == 0 || len(op.Key) > store.MaxIndexKeyLen {
			return fmt.Errorf("sqlindex: write: %w", &store.IndexTooLargeError{What: "key", Size: len(op.Key), Limit: store.MaxIndexKeyLen})
		}
		if len(op.Value) > store.MaxIndexValueLen {
			return fmt.Errorf("sqlindex: write: %w", &store.IndexTooLargeError{What: "value", Size: len(op.Value), Limit: store.MaxIndexValueLen})
		}
		if op.Kind > store.IndexExpect {
			return fmt.Errorf("sqlindex: write: unknown operation %d", op.Kind)
		}
		total += len(op.Key) + len(op.Value) + 16
	}
	if total > x.max {
		return fmt.Errorf("sqlindex: write: %w", &store.IndexTooLargeError{What: "batch", Size: total, Limit: x.max})
	}
	if len(ops) == 0 {
		return nil
	}
	for attempt := 1; ; attempt++ {
		err := x.write(ctx, ops)
		if err == nil {
			return nil
		}
		if attempt < sqlretry.Attempts && sqlretry.Retryable(err) && sqlretry.Wait(ctx, attempt) == nil {
			continue
		}
		return fmt.Errorf("sqlindex: write: %w", err)
	}
}

// cell is a key's value after the batch (del: absent).
type cell struct {
	v   []byte
	del bool
}

func (x *Index) write(ctx context.Context, ops []store.IndexOp) (err error) {
	tx, err := x.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	stored, err := x.counters(ctx, tx, ops)
	if err != nil {
		return err
	}
	final := map[string]*cell{}
	for _, op := range ops {
		k := string(op.Key)
		switch op.Kind {
		case store.IndexPut:
			v := op.Value
			if v == nil {
				v = []byte{} // an empty value, not a counter's absence
			}
			final[k] = &cell{v: v}
		case store.IndexDelete:
			final[k] = &cell{del: true}
		case store.IndexAdd:
			var cur []byte
			if c, ok := final[k]; ok {
				if !c.del {
					cur = c.v
				}
			} else {
				cur = stored[k]
			}
			var n int64
			switch len(cur) {
			case 0:
				if cur != nil {
					return &NotCounterError{Key: op.Key, Len: 0}
				}
			case 8:
				n = int64(binary.BigEndian.Uint64(cur))
			default:
				return &NotCounterError{Key: op.Key, Len: len(cur)}
			}
			final[k] = &cell{v: binary.BigEndian.AppendUint64(nil, uint64(n+op.Delta))}
		case store.IndexExpect:
			var cur []byte
			if c, ok := final[k]; ok {
				if !c.del {
					cur = c.v
				}
			} else {
				cur = stored[k]
			}
			if (op.Value == nil) != (cur == nil) || !bytes.Equal(cur, op.Value) {
				return &store.IndexConflictError{Key: bytes.Clone(op.Key)}
			}
		}
	}
	// In key order: concurrent writers take their row locks in one order.
	keys := make([]string, 0, len(final))
	for k := range final {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var dels, puts []string
	for _, k := range keys {
		if final[k].del {
			dels = append(dels, k)
		} else {
			puts = append(puts, k)
		}
	}
	if err := x.deleteKeys(ctx, tx, dels); err != nil {
		return err
	}
	if err := x.putKeys(ctx, tx, puts, final); err != nil {
		return err
	}
	return tx.Commit()
}

// counters reads, locking them, the stored values of the keys ops add
// to or expect a value of: absent keys are not in the map, an empty
// value is a non-nil empty slice.
func (x *Index) counters(ctx context.Context, tx *sql.Tx, ops []store.IndexOp) (map[string][]byte, error) {
	seen := map[string]bool{}
	var keys []string
	for _, op := range ops {
		if (op.Kind == store.IndexAdd || op.Kind == store.IndexExpect) && !seen[string(op.Key)] {
			seen[string(op.Key)] = true
			keys = append(keys, string(op.Key))
		}
	}
	slices.Sort(keys)
	out := map[string][]byte{}
	for chunk := range slices.Chunk(keys, stmtRows) {
		args := make([]any, len(chunk))
		for i, k := range chunk {
			args[i] = []byte(k)
		}
		rows, err := tx.QueryContext(ctx, "SELECT k, v FROM "+x.table+" WHERE k IN ("+marks(len(chunk), "?")+") FOR UPDATE", args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var k, v []byte
			if err := rows.Scan(&k, &v); err != nil {
				rows.Close()
				return nil, err
			}
			if v == nil {
				v = []byte{}
			}
			out[string(k)] = v
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (x *Index) deleteKeys(ctx context.Context, tx *sql.Tx, keys []string) error {
	for chunk := range slices.Chunk(keys, stmtRows) {
		args := make([]any, len(chunk))
		for i, k := range chunk {
			args[i] = []byte(k)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+x.table+" WHERE k IN ("+marks(len(chunk), "?")+")", args...); err != nil {
			return err
		}
	}
	return nil
}

// putKeys writes the keys' final values in multi-row statements of at
// most stmtRows rows and about stmtBytes bytes.
func (x *Index) putKeys(ctx context.Context, tx *sql.Tx, keys []string, final map[string]*cell) error {
	for len(keys) > 0 {
		n, size := 0, 0
		for n < len(keys) && n < stmtRows {
			s := len(keys[n]) + len(final[keys[n]].v)
			if n > 0 && size+s > stmtBytes {
				break
			}
			size += s
			n++
		}
		args := make([]any, 0, 2*n)
		for _, k := range keys[:n] {
			args = append(args, []byte(k), final[k].v)
		}
		q := "INSERT INTO " + x.table + " (k, v) VALUES " + marks(n, "(?,?)") + " ON DUPLICATE KEY UPDATE v = VALUES(v)"
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

// marks is n copies of m separated by commas.
func marks(n int, m string) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(m)
	}
	return b.String()
}
