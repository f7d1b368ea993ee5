package sqlindex

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/edgeseal/edgeseal/store"
)

// Scan pages: the first page is small (a scan usually stops early), each
// next one twice the last up to maxPage rows.
const (
	firstPage = 16
	maxPage   = 512
)

// Scan walks r in one read snapshot (a read-only REPEATABLE READ
// transaction), page by page.
func (x *Index) Scan(ctx context.Context, r store.IndexRange, fn func(key, value []byte) bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlindex: scan: %w", err)
	}
	tx, err := x.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("sqlindex: scan: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := x.scan(ctx, tx, r, fn); err != nil {
		return fmt.Errorf("sqlindex: scan: %w", err)
	}
	return nil
}

func (x *Index) scan(ctx context.Context, tx *sql.Tx, r store.IndexRange, fn func(key, value []byte) bool) error {
	lo := r.Lo
	if lo == nil {
		lo = []byte{}
	}
	seen, page := 0, firstPage
	var last []byte // the last key seen: the next page starts after it
	for {
		n := page
		if r.Limit > 0 && r.Limit-seen < n {
			n = r.Limit - seen
		}
		q := "SELECT k, v FROM " + x.table + " WHERE k >= ?"
		args := []any{lo}
		if r.Hi != nil {
			q += " AND k < ?"
			args = append(args, r.Hi)
		}
		if last != nil {
			if r.Reverse {
				q += " AND k < ?"
			} else {
				q += " AND k > ?"
			}
			args = append(args, last)
		}
		if r.Reverse {
			q += " ORDER BY k DESC"
		} else {
			q += " ORDER BY k"
		}
		q += fmt.Sprintf(" LIMIT %d", n)
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		got := 0
		for rows.Next() {
			if err := ctx.Err(); err != nil {
				rows.Close()
				return err
			}
			var k, v []byte
			if err := rows.Scan(&k, &v); err != nil {
				rows.Close()
				return err
			}
			got++
			seen++
			last = k
			if !fn(k, v) || (r.Limit > 0 && seen >= r.Limit) {
				rows.Close()
				return rows.Err()
			}
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if got < n {
			return nil
		}
		page = min(2*page, maxPage)
	}
}
