package bootstrap

import (
	"context"
	"time"

	"github.com/xavyo/xavyo/internal/store"
)

// The bootstrap token's store: its record is one row of system_settings.

// insertRecord writes the record unless one exists; it reports whether
// it did.
func insertRecord(ctx context.Context, tx *store.Tx, raw []byte, now time.Time) (bool, error) {
	r, err := tx.Exec(ctx, `INSERT INTO system_settings (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING`,
		settingKey, string(raw), now)
	if err != nil {
		return false, err
	}
	n, _ := r.RowsAffected()
	return n == 1, nil
}

// saveRecord writes the record over the one there is.
func saveRecord(ctx context.Context, tx *store.Tx, raw []byte, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO system_settings (key, value, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, settingKey, string(raw), now)
	return err
}

// readRecord reads the record (store.NoRows when there is none).
func readRecord(ctx context.Context, tx *store.Tx) ([]byte, error) {
	var raw []byte
	err := tx.QueryRow(ctx, `SELECT value FROM system_settings WHERE key = $1`, settingKey).Scan(&raw)
	return raw, err
}
