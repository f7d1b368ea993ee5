package state

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"strconv"
)

// Statements is the queue of signed operator statements waiting for an
// archive to log them, shared by every process on the store: an operator
// command queues a statement at any replica's host, and whichever
// archive looks first takes it.
//
// # Contract
//
//   - Queue stores rec durably (at most MaxStatement bytes); the same
//     bytes queued again are one statement (the first stays).
//   - Pending returns at most max statements neither done nor refused,
//     oldest first, each with its ID.
//   - Done removes statement id (taken: logged); Refuse keeps it aside
//     with the reason, never returned by Pending again. An unknown id is
//     no error for either (another archive took it first).
type Statements interface {
	Queue(ctx context.Context, rec []byte) (id string, err error)
	Pending(ctx context.Context, max int) ([]Statement, error)
	Done(ctx context.Context, id string) error
	Refuse(ctx context.Context, id, reason string) error
}

// Statement is a queued statement.
type Statement struct {
	ID  string
	Rec []byte
}

// MaxStatement bounds a queued statement.
const MaxStatement = 1 << 20

// maxRefusal bounds the reason kept with a refused statement.
const maxRefusal = 1024

// Statements returns the queue of operator statements kept in the
// store's database (rows of edgeseal_statement, keyed by an increasing
// id, unique by the statement's SHA-256).
func (s *SQL) Statements() Statements { return &sqlStatements{db: s.db} }

type sqlStatements struct{ db *sql.DB }

func (q *sqlStatements) Queue(ctx context.Context, rec []byte) (string, error) {
	if len(rec) == 0 || len(rec) > MaxStatement {
		return "", fmt.Errorf("state: statement of %d bytes (1 to %d)", len(rec), MaxStatement)
	}
	sum := sha256.Sum256(rec)
	if _, err := q.db.ExecContext(ctx, `INSERT IGNORE INTO edgeseal_statement (digest, rec) VALUES (?, ?)`, sum[:], rec); err != nil {
		return "", fmt.Errorf("state: queue statement: %w", err)
	}
	var id uint64
	if err := q.db.QueryRowContext(ctx, `SELECT id FROM edgeseal_statement WHERE digest = ?`, sum[:]).Scan(&id); err != nil {
		return "", fmt.Errorf("state: queue statement: %w", err)
	}
	return strconv.FormatUint(id, 10), nil
}

func (q *sqlStatements) Pending(ctx context.Context, max int) (_ []Statement, err error) {
	rows, err := q.db.QueryContext(ctx, `SELECT id, rec FROM edgeseal_statement WHERE refused IS NULL ORDER BY id LIMIT ?`, max)
	if err != nil {
		return nil, fmt.Errorf("state: statements: %w", err)
	}
	defer rows.Close()
	var out []Statement
	for rows.Next() {
		var id uint64
		var st Statement
		if err := rows.Scan(&id, &st.Rec); err != nil {
			return nil, fmt.Errorf("state: statements: %w", err)
		}
		st.ID = strconv.FormatUint(id, 10)
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: statements: %w", err)
	}
	return out, nil
}

func (q *sqlStatements) Done(ctx context.Context, id string) error {
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return fmt.Errorf("state: statement id %.20q", id)
	}
	if _, err := q.db.ExecContext(ctx, `DELETE FROM edgeseal_statement WHERE id = ?`, n); err != nil {
		return fmt.Errorf("state: statement %d: %w", n, err)
	}
	return nil
}

func (q *sqlStatements) Refuse(ctx context.Context, id, reason string) error {
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return fmt.Errorf("state: statement id %.20q", id)
	}
	if len(reason) > maxRefusal {
		reason = reason[:maxRefusal]
	}
	if reason == "" {
		reason = "refused"
	}
	if _, err := q.db.ExecContext(ctx, `UPDATE edgeseal_statement SET refused = ? WHERE id = ?`, []byte(reason), n); err != nil {
		return fmt.Errorf("state: statement %d: %w", n, err)
	}
	return nil
}
