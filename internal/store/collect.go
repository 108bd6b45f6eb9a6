package store

import (
	"context"

	"github.com/google/uuid"
)

// Scanner is a row to scan (*sql.Row, *sql.Rows).
type Scanner interface{ Scan(...any) error }

// Collect runs a query in tx and scans every row (an empty, non-nil slice
// when there is none). Like Tx.Query, it belongs in store files only.
func Collect[T any](ctx context.Context, tx *Tx, scan func(Scanner) (T, error), q string, args ...any) ([]T, error) {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// ScanUUID scans a row of one UUID.
func ScanUUID(row Scanner) (uuid.UUID, error) {
	var id uuid.UUID
	err := row.Scan(&id)
	return id, err
}

// ScanString scans a row of one string.
func ScanString(row Scanner) (string, error) {
	var s string
	err := row.Scan(&s)
	return s, err
}

// Each runs a query in tx and hands every row to scan. Like Tx.Query, it
// belongs in store files only.
func Each(ctx context.Context, tx *Tx, scan func(Scanner) error, q string, args ...any) error {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// ReadPage reads a page in the tenant of ctx with read, which asks for
// limit+1 rows, and returns at most limit of them and whether more follow.
func ReadPage[T any](ctx context.Context, db *DB, limit int, read func(*Tx) ([]T, error)) ([]T, bool, error) {
	var out []T
	err := db.InTenantRead(ctx, func(tx *Tx) (err error) {
		out, err = read(tx)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}
