package webhooks

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
)

// The webhook stores: webhook_subscriptions and webhook_deliveries.

func insertSub(ctx context.Context, tx *store.Tx, sub *Subscription, sealedSecret []byte) error {
	ev, _ := json.Marshal(sub.Events)
	_, err := tx.Exec(ctx, `INSERT INTO webhook_subscriptions (tenant_id, id, url, description, events, secret, status, version, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8)`, tx.TenantID(), sub.ID, sub.URL, sub.Description, string(ev),
		sealedSecret, sub.Status, sub.CreatedAt)
	return err
}

// lockSub reads a subscription for update (404 when there is none).
func lockSub(ctx context.Context, tx *store.Tx, id uuid.UUID) (*Subscription, error) {
	sub, err := scanSub(tx.QueryRow(ctx, `SELECT `+subCols+` FROM webhook_subscriptions WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tx.TenantID(), id))
	if store.NoRows(err) {
		return nil, apperr.NotFound("webhook")
	}
	return sub, err
}

const deliveryCols = `id, subscription_id, event_id, event_type, status, attempts, next_attempt_at, last_attempt_at, last_status, last_error, created_at, delivered_at`

func scanDelivery(row interface{ Scan(...any) error }) (*Delivery, error) {
	var d Delivery
	err := row.Scan(&d.ID, &d.SubscriptionID, &d.EventID, &d.EventType, &d.Status, &d.Attempts, &d.NextAttemptAt, &d.LastAttemptAt, &d.LastStatus,
		&d.LastError, &d.CreatedAt, &d.DeliveredAt)
	return &d, err
}

// subByID reads a subscription (store.NoRows: none).
func subByID(ctx context.Context, tx *store.Tx, id uuid.UUID) (*Subscription, error) {
	return scanSub(tx.QueryRow(ctx, `SELECT `+subCols+` FROM webhook_subscriptions WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id))
}

// listSubs lists up to limit subscriptions after after, oldest first.
func listSubs(ctx context.Context, tx *store.Tx, after uuid.UUID, limit int) ([]*Subscription, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (*Subscription, error) { return scanSub(r) },
		`SELECT `+subCols+` FROM webhook_subscriptions WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3`, tx.TenantID(), after, limit)
}

func updateSub(ctx context.Context, tx *store.Tx, sub *Subscription) error {
	ev, _ := json.Marshal(sub.Events)
	_, err := tx.Exec(ctx, `UPDATE webhook_subscriptions SET url = $1, description = $2, events = $3, status = $4, consecutive_failures = $5,
		paused_until = $6, version = $7, updated_at = $8 WHERE tenant_id = $9 AND id = $10`, sub.URL, sub.Description, string(ev), sub.Status,
		sub.ConsecutiveFailures, sub.PausedUntil, sub.Version, sub.UpdatedAt, tx.TenantID(), sub.ID)
	return err
}

// deleteSub removes a subscription (its deliveries go with it); false
// when there was none.
func deleteSub(ctx context.Context, tx *store.Tx, id uuid.UUID) (bool, error) {
	res, err := tx.Exec(ctx, `DELETE FROM webhook_subscriptions WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

func setSubSecret(ctx context.Context, tx *store.Tx, sub *Subscription, sealedSecret []byte) error {
	_, err := tx.Exec(ctx, `UPDATE webhook_subscriptions SET secret = $1, version = $2, updated_at = $3 WHERE tenant_id = $4 AND id = $5`,
		sealedSecret, sub.Version, sub.UpdatedAt, tx.TenantID(), sub.ID)
	return err
}

// subFilter is a subscription's event filters.
type subFilter struct {
	id     uuid.UUID
	events []string
}

// subFilters lists the event filters of the tenant's subscriptions (of
// only, when not uuid.Nil).
func subFilters(ctx context.Context, tx *store.Tx, only uuid.UUID) ([]subFilter, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (subFilter, error) {
		var f subFilter
		var evs string
		if err := r.Scan(&f.id, &evs); err != nil {
			return f, err
		}
		_ = json.Unmarshal([]byte(evs), &f.events)
		return f, nil
	}, `SELECT id, events FROM webhook_subscriptions WHERE tenant_id = $1 AND (id = $2 OR $2 = $3)`, tx.TenantID(), only, uuid.Nil)
}

// queueDelivery queues event ev (its envelope body) for a subscription,
// once; false when it was queued already or the subscription is gone.
func queueDelivery(ctx context.Context, tx *store.Tx, sub uuid.UUID, ev events.Event, body []byte, now time.Time) (bool, error) {
	res, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (tenant_id, id, subscription_id, event_id, event_type, body, status, next_attempt_at, created_at)
		SELECT $1, $2, $3, $4, $5, $6, 'pending', $7, $7 WHERE EXISTS (SELECT 1 FROM webhook_subscriptions WHERE tenant_id = $1 AND id = $3)
		ON CONFLICT (tenant_id, subscription_id, event_id) DO NOTHING`,
		tx.TenantID(), uuid.Must(uuid.NewV7()), sub, ev.ID, ev.Kind, string(body), now)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

func deliveryOfEvent(ctx context.Context, tx *store.Tx, sub, event uuid.UUID) (*Delivery, error) {
	return scanDelivery(tx.QueryRow(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries WHERE tenant_id = $1 AND subscription_id = $2 AND event_id = $3`,
		tx.TenantID(), sub, event))
}

// listDeliveries lists up to limit of a subscription's deliveries before
// before, newest first (of one status, when status is set).
func listDeliveries(ctx context.Context, tx *store.Tx, sub uuid.UUID, status string, before uuid.UUID, limit int) ([]*Delivery, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (*Delivery, error) { return scanDelivery(r) },
		`SELECT `+deliveryCols+` FROM webhook_deliveries WHERE tenant_id = $1 AND subscription_id = $2
		AND ($3 = '' OR status = $3) AND id < $4 ORDER BY id DESC LIMIT $5`, tx.TenantID(), sub, status, before, limit)
}

func lockDelivery(ctx context.Context, tx *store.Tx, sub, id uuid.UUID) (*Delivery, error) {
	return scanDelivery(tx.QueryRow(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries WHERE tenant_id = $1 AND subscription_id = $2 AND id = $3 FOR UPDATE`,
		tx.TenantID(), sub, id))
}

func requeueDelivery(ctx context.Context, tx *store.Tx, d *Delivery) error {
	_, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET status = 'pending', attempts = $1, next_attempt_at = $2 WHERE tenant_id = $3 AND id = $4`,
		d.Attempts, d.NextAttemptAt, tx.TenantID(), d.ID)
	return err
}

// claimDue leases up to limit due deliveries of active subscriptions, of
// every tenant, until leaseEnd, counting an attempt for each.
func claimDue(ctx context.Context, tx *store.Tx, now, leaseEnd time.Time, limit int) ([]claimed, error) {
	return store.Collect(ctx, tx, func(r store.Scanner) (claimed, error) {
		var c claimed
		err := r.Scan(&c.tenant, &c.id, &c.sub, &c.eventID, &c.body, &c.attempts)
		return c, err
	}, `UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $1
		WHERE status = 'pending' AND id IN (SELECT d.id FROM webhook_deliveries d
		  WHERE d.status = 'pending' AND d.next_attempt_at <= $2 AND EXISTS (SELECT 1 FROM webhook_subscriptions s
		    WHERE s.tenant_id = d.tenant_id AND s.id = d.subscription_id AND s.status = 'active' AND (s.paused_until IS NULL OR s.paused_until <= $2))
		  ORDER BY d.next_attempt_at, d.id LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING tenant_id, id, subscription_id, event_id, body, attempts`, leaseEnd, now, limit)
}

// subTarget is a subscription's URL and sealed secret.
func subTarget(ctx context.Context, tx *store.Tx, tenant, sub uuid.UUID) (string, []byte, error) {
	var url string
	var sealed []byte
	err := tx.QueryRow(ctx, `SELECT url, secret FROM webhook_subscriptions WHERE tenant_id = $1 AND id = $2`, tenant, sub).Scan(&url, &sealed)
	return url, sealed, err
}

// delivered records a successful try and closes the subscription's breaker.
func delivered(ctx context.Context, tx *store.Tx, c claimed, now time.Time, status *int) error {
	if _, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET status = 'delivered', delivered_at = $1, last_attempt_at = $1, last_status = $2,
		last_error = NULL WHERE tenant_id = $3 AND id = $4`, now, status, c.tenant, c.id); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `UPDATE webhook_subscriptions SET consecutive_failures = 0, paused_until = NULL WHERE tenant_id = $1 AND id = $2
		AND (consecutive_failures <> 0 OR paused_until IS NOT NULL)`, c.tenant, c.sub)
	return err
}

// failed records a failed try (state pending, to retry at next, or dead)
// and counts it on the subscription's breaker, which opens after
// breakAfter failures in a row.
func failed(ctx context.Context, tx *store.Tx, c claimed, state string, next, now time.Time, status *int, msg string) error {
	if _, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET status = $1, next_attempt_at = $2, last_attempt_at = $3, last_status = $4, last_error = $5
		WHERE tenant_id = $6 AND id = $7`, state, next, now, status, msg, c.tenant, c.id); err != nil {
		return err
	}
	var failures int
	if err := tx.QueryRow(ctx, `UPDATE webhook_subscriptions SET consecutive_failures = consecutive_failures + 1 WHERE tenant_id = $1 AND id = $2
		RETURNING consecutive_failures`, c.tenant, c.sub).Scan(&failures); err != nil {
		return err
	}
	if failures < breakAfter {
		return nil
	}
	_, err := tx.Exec(ctx, `UPDATE webhook_subscriptions SET paused_until = $1 WHERE tenant_id = $2 AND id = $3`,
		now.Add(pauseFor(failures)), c.tenant, c.sub)
	return err
}

// pruneDelivered deletes deliveries delivered before cutoff.
func pruneDelivered(ctx context.Context, tx *store.Tx, cutoff time.Time) error {
	_, err := tx.Exec(ctx, `DELETE FROM webhook_deliveries WHERE status = 'delivered' AND delivered_at < $1`, cutoff)
	return err
}
