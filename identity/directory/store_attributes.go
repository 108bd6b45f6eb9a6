package directory

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// The attribute definitions store (attribute_definitions), and what it
// asks of users' attributes.

func attributeDefinitions(ctx context.Context, tx *store.Tx) ([]*AttributeDefinition, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (*AttributeDefinition, error) { return scanAttr(r) },
		`SELECT `+attrCols+` FROM attribute_definitions WHERE tenant_id = $1 ORDER BY name`, tx.TenantID())
}

// lockAttr reads a definition for update.
func lockAttr(ctx context.Context, tx *store.Tx, id uuid.UUID) (*AttributeDefinition, error) {
	d, err := scanAttr(tx.QueryRow(ctx, `SELECT `+attrCols+` FROM attribute_definitions WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tx.TenantID(), id))
	if store.NoRows(err) {
		return nil, apperr.NotFound("attribute definition")
	}
	return d, err
}

func insertAttr(ctx context.Context, tx *store.Tx, d *AttributeDefinition) error {
	enum, _ := json.Marshal(d.EnumValues)
	_, err := tx.Exec(ctx, `INSERT INTO attribute_definitions (tenant_id, id, name, type, required, enum_values, description, created_at, updated_at, version)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 1)`, tx.TenantID(), d.ID, d.Name, d.Type, d.Required, string(enum), d.Description, d.CreatedAt)
	if apperr.KindOf(err) == apperr.KindAlreadyExists {
		return apperr.New(apperr.KindAlreadyExists, "attribute %q is already defined", d.Name)
	}
	return err
}

func updateAttr(ctx context.Context, tx *store.Tx, d *AttributeDefinition) error {
	enum, _ := json.Marshal(d.EnumValues)
	_, err := tx.Exec(ctx, `UPDATE attribute_definitions SET required = $1, enum_values = $2, description = $3, updated_at = $4, version = $5
		WHERE tenant_id = $6 AND id = $7`, d.Required, string(enum), d.Description, d.UpdatedAt, d.Version, tx.TenantID(), d.ID)
	return err
}

func deleteAttr(ctx context.Context, tx *store.Tx, id uuid.UUID) error {
	_, err := tx.Exec(ctx, `DELETE FROM attribute_definitions WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id)
	return err
}

// countUsers counts the tenant's users.
func countUsers(ctx context.Context, tx *store.Tx) (int, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM users WHERE tenant_id = $1`, tx.TenantID()).Scan(&n)
	return n, err
}

// usersWithAttr counts the users that carry attribute name (or, when
// carry is false, that lack it).
func usersWithAttr(ctx context.Context, tx *store.Tx, name string, carry bool) (int, error) {
	q := `SELECT COUNT(*) FROM users WHERE tenant_id = $1 AND (attributes ->> $2) IS NULL`
	if carry {
		q = `SELECT COUNT(*) FROM users WHERE tenant_id = $1 AND (attributes ->> $2) IS NOT NULL`
	}
	var n int
	err := tx.QueryRow(ctx, q, tx.TenantID(), name).Scan(&n)
	return n, err
}
