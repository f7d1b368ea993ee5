package state

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
)

// Registry keeps the archive's device registry as one document (the
// bytes of devices.json, which its owner parses): operator commands and
// every archive process sharing it change it, each change seen by all.
//
// # Contract
//
//   - Read(ctx, tag) returns the stored document and its tag, a string
//     that changes with every Update that stores a document. When tag is
//     the stored one the document is not read: doc is nil and the same
//     tag is returned. A registry never written reads as doc nil with
//     tag NoRegistry. tag "" never matches.
//   - Update(ctx, fn) calls fn with the stored document (nil: none)
//     while holding the registry exclusively among every process sharing
//     it, and stores what fn returns durably before it returns its tag;
//     fn returning nil stores nothing (the stored tag is returned), fn's
//     error is returned as is and stores nothing. Of concurrent Updates
//     none loses another's change.
//   - A document is at most MaxRegistry bytes.
//
// Implementations: the file devices.json (the archive package's, the
// embedded engine) and the SQL store's (SQL.Registry: one row).
// statetest.RunRegistry is the conformance suite both pass.
type Registry interface {
	Read(ctx context.Context, tag string) (doc []byte, newTag string, err error)
	Update(ctx context.Context, fn func(doc []byte) ([]byte, error)) (tag string, err error)
}

// NoRegistry is the tag of a registry never written.
const NoRegistry = "none"

// MaxRegistry bounds a registry document.
const MaxRegistry = 256 << 20

// The SQL registry is one row of edgeseal_registry (id 1, made with the
// tables, generation 0: never written): the document and a generation
// that every Update storing one adds one to, the tag. An Update is a
// transaction that locks the row (SELECT ... FOR UPDATE), so Updates of
// every process are serialized; a
// Read asks for the document only when the generation differs from the
// tag, in one query. The document must fit the server's
// max_allowed_packet.

// Registry returns the device registry kept in the store's database.
func (s *SQL) Registry() Registry { return &sqlRegistry{db: s.db} }

type sqlRegistry struct{ db *sql.DB }

func (r *sqlRegistry) Read(ctx context.Context, tag string) ([]byte, string, error) {
	known, err := strconv.ParseUint(tag, 10, 64)
	if err != nil {
		known = 0 // generations start at 1
	}
	var gen uint64
	var doc []byte
	err = r.db.QueryRowContext(ctx, `SELECT generation, IF(generation = ?, NULL, doc) FROM edgeseal_registry WHERE id = 1`, known).Scan(&gen, &doc)
	if err != nil {
		return nil, "", fmt.Errorf("state: registry: %w", err)
	}
	if gen == 0 {
		return nil, NoRegistry, nil
	}
	if gen == known {
		return nil, tag, nil
	}
	if doc == nil {
		doc = []byte{}
	}
	return doc, strconv.FormatUint(gen, 10), nil
}

func (r *sqlRegistry) Update(ctx context.Context, fn func(doc []byte) ([]byte, error)) (_ string, err error) {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("state: registry: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var gen uint64
	var doc []byte
	err = tx.QueryRowContext(ctx, `SELECT generation, doc FROM edgeseal_registry WHERE id = 1 FOR UPDATE`).Scan(&gen, &doc)
	if err != nil {
		return "", fmt.Errorf("state: registry: %w", err)
	}
	switch {
	case gen == 0:
		doc = nil
	case doc == nil:
		doc = []byte{}
	}
	next, err := fn(doc)
	if err != nil {
		return "", err
	}
	if next == nil {
		if err = tx.Commit(); err != nil {
			return "", fmt.Errorf("state: registry: %w", err)
		}
		if gen == 0 {
			return NoRegistry, nil
		}
		return strconv.FormatUint(gen, 10), nil
	}
	if len(next) > MaxRegistry {
		return "", fmt.Errorf("state: registry of %d bytes over %d", len(next), MaxRegistry)
	}
	if _, err = tx.ExecContext(ctx, `UPDATE edgeseal_registry SET generation = ?, doc = ? WHERE id = 1`, gen+1, next); err != nil {
		return "", fmt.Errorf("state: registry: %w", err)
	}
	if err = tx.Commit(); err != nil {
		return "", fmt.Errorf("state: registry: %w", err)
	}
	return strconv.FormatUint(gen+1, 10), nil
}
