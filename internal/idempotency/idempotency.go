// Package idempotency keeps the first answer to each Idempotency-Key an
// admin API caller sends, so that a retry of a POST (after a timeout, a
// dropped connection) gets that answer again instead of a second change.
// Keys are per tenant and per caller, kept 24 hours.
package idempotency

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// Key names one idempotency key: the tenant the request works in
// (uuid.Nil for platform routes), the caller, and the caller's key.
type Key struct {
	Tenant    uuid.UUID
	Principal string
	Key       string
}

// Request is what a key was first used for: a retry must be the same.
type Request struct {
	Method, Path string
	// Hash is a digest of the query and body.
	Hash string
}

// Answer is a stored answer.
type Answer struct {
	Status      int
	ContentType string
	Location    string
	Body        []byte
}

// Errors of Claim.
var (
	// ErrInFlight: the first request with this key has not finished.
	ErrInFlight = apperr.New(apperr.KindConflict, "a request with this Idempotency-Key is still being processed; retry later")
	// ErrMismatch: the key was first used for another request.
	ErrMismatch = apperr.New(apperr.KindUnprocessable, "this Idempotency-Key was used for a different request")
)

// Config configures the store.
type Config struct {
	DB *store.DB
	// TTL is how long answers are kept (default 24h).
	TTL time.Duration
	// Abandon is how long a first request may run before its claim is
	// taken over by a retry (default 2 minutes: longer than any admin
	// request runs).
	Abandon time.Duration
	Logger  *slog.Logger
	Now     func() time.Time
}

// Store keeps idempotency keys in the database.
type Store struct {
	cfg Config
}

// New checks the configuration and returns the store.
func New(cfg Config) (*Store, error) {
	if cfg.DB == nil {
		return nil, errors.New("idempotency: DB is required")
	}
	if cfg.TTL == 0 {
		cfg.TTL = 24 * time.Hour
	}
	if cfg.Abandon == 0 {
		cfg.Abandon = 2 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{cfg: cfg}, nil
}

// tx runs fn in the key's tenant (or, for platform routes, as the system).
func (s *Store) tx(ctx context.Context, k Key, fn func(*store.Tx) error) error {
	if k.Tenant == uuid.Nil {
		return s.cfg.DB.SystemTx(ctx, fn)
	}
	return s.cfg.DB.InTenantTx(store.WithTenant(ctx, k.Tenant), fn)
}

// Claim starts the first request with a key, or finds what became of it:
// (nil, nil) when this request is the first (it must Settle or Release
// the key); the stored answer when the key has one; ErrInFlight while the
// first request runs; ErrMismatch when the key was used for another
// request. An expired key, or a claim older than Config.Abandon without
// an answer (its request died with its replica), is taken over.
func (s *Store) Claim(ctx context.Context, k Key, r Request) (*Answer, error) {
	now := s.cfg.Now().UTC()
	var out *Answer
	err := s.tx(ctx, k, func(tx *store.Tx) error {
		var method, path, hash, ctype, location string
		var status int
		var body []byte
		var created, expires time.Time
		err := tx.QueryRow(ctx, `SELECT method, path, request_hash, status, content_type, location, body, created_at, expires_at
			FROM idempotency_keys WHERE tenant_id = $1 AND principal = $2 AND key = $3`, k.Tenant, k.Principal, k.Key).
			Scan(&method, &path, &hash, &status, &ctype, &location, &body, &created, &expires)
		switch {
		case store.NoRows(err):
		case err != nil:
			return err
		case now.After(expires), status == 0 && now.Sub(created) > s.cfg.Abandon:
			if _, err := tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE tenant_id = $1 AND principal = $2 AND key = $3`,
				k.Tenant, k.Principal, k.Key); err != nil {
				return err
			}
		case method != r.Method || path != r.Path || hash != r.Hash:
			return ErrMismatch
		case status == 0:
			return ErrInFlight
		default:
			out = &Answer{Status: status, ContentType: ctype, Location: location, Body: body}
			return nil
		}
		_, err = tx.Exec(ctx, `INSERT INTO idempotency_keys (tenant_id, principal, key, method, path, request_hash, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, k.Tenant, k.Principal, k.Key, r.Method, r.Path, r.Hash, now, now.Add(s.cfg.TTL))
		if apperr.KindOf(err) == apperr.KindAlreadyExists {
			return ErrInFlight // another replica claimed it a moment ago
		}
		return err
	})
	return out, err
}

// Settle stores the answer of the request that claimed k. A failure is
// logged, not returned: the change is made and its answer goes out; a
// retry finds the claim abandoned after Config.Abandon and runs again
// (changes that must not be made twice are refused as duplicates).
func (s *Store) Settle(ctx context.Context, k Key, a Answer) {
	err := s.tx(context.WithoutCancel(ctx), k, func(tx *store.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE idempotency_keys SET status = $4, content_type = $5, location = $6, body = $7
			WHERE tenant_id = $1 AND principal = $2 AND key = $3`, k.Tenant, k.Principal, k.Key, a.Status, a.ContentType, a.Location, a.Body)
		return err
	})
	if err != nil {
		s.cfg.Logger.Error("idempotency answer not kept", "error", err)
	}
}

// Release forgets a claim whose request failed without changing anything
// (an error answer): a retry runs again. A failure is logged: the claim
// is then taken over after Config.Abandon.
func (s *Store) Release(ctx context.Context, k Key) {
	err := s.tx(context.WithoutCancel(ctx), k, func(tx *store.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE tenant_id = $1 AND principal = $2 AND key = $3 AND status = 0`,
			k.Tenant, k.Principal, k.Key)
		return err
	})
	if err != nil {
		s.cfg.Logger.Error("idempotency claim not released", "error", err)
	}
}

// Sweep deletes expired keys of every tenant; it returns how many.
func (s *Store) Sweep(ctx context.Context) (int64, error) {
	var n int64
	err := s.cfg.DB.SystemTx(ctx, func(tx *store.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE expires_at < $1`, s.cfg.Now().UTC())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// RunSweep sweeps every interval until ctx ends.
func (s *Store) RunSweep(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if n, err := s.Sweep(ctx); err != nil {
				s.cfg.Logger.Warn("idempotency keys not swept", "error", err)
			} else if n > 0 {
				s.cfg.Logger.Info("idempotency keys expired", "deleted", n)
			}
		}
	}
}
