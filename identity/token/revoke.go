package token

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
)

// RevocationEventKind is the change-event kind of revocations; the ID is
// "jti:<jti>", "sid:<session>", "fam:<refresh family>" or
// "client:<client_id>".
const RevocationEventKind = "token_revocation"

// maxAccessLifetime bounds access tokens; revocations need be kept no
// longer than the tokens they kill.
const maxAccessLifetime = time.Hour

// RevokeInTx records, in the caller's transaction, that the access
// tokens with this jti (kind "jti"), of this session ("sid"), issued from
// this refresh family ("fam") or to this client ("client") are revoked.
// Every replica learns it at commit.
func (s *Service) RevokeInTx(ctx context.Context, tx *store.Tx, tenant uuid.UUID, kind, value string) error {
	now := store.Now()
	exp := now.Add(maxAccessLifetime + s.cfg.Leeway)
	if err := upsertRevocation(ctx, tx, tenant, kind, value, exp, now); err != nil {
		return err
	}
	tx.AfterCommit(func() { s.markRevoked(tenant, kind, value, exp) })
	return events.Publish(ctx, tx, events.Change{TenantID: tenant, Kind: RevocationEventKind, ID: kind + ":" + value, Version: 1}, nil)
}

// Revoke revokes access tokens by jti or session in its own transaction.
func (s *Service) Revoke(ctx context.Context, tenant uuid.UUID, kind, value string) error {
	ctx = store.WithTenant(ctx, tenant)
	return s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error { return s.RevokeInTx(ctx, tx, tenant, kind, value) })
}

func (s *Service) markRevoked(tenant uuid.UUID, kind, value string, exp time.Time) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.revoked[revocationKey{tenant, kind, value}] = exp
	if len(s.revoked)%1024 == 0 {
		now := time.Now()
		for k, e := range s.revoked {
			if e.Before(now) {
				delete(s.revoked, k)
			}
		}
	}
}

func (s *Service) isRevoked(tenant uuid.UUID, kind, value string) bool {
	s.rmu.RLock()
	_, ok := s.revoked[revocationKey{tenant, kind, value}]
	s.rmu.RUnlock()
	return ok
}

// LoadRevocations loads every unexpired revocation (at start and after a
// resync) and prunes expired rows.
func (s *Service) LoadRevocations(ctx context.Context) error {
	now := store.Now()
	var fresh map[revocationKey]time.Time
	err := s.cfg.DB.SystemTx(ctx, func(tx *store.Tx) error {
		var err error
		fresh, err = loadRevocations(ctx, tx, now)
		return err
	})
	if err != nil {
		return err
	}
	s.rmu.Lock()
	for k, e := range fresh {
		s.revoked[k] = e
	}
	s.rmu.Unlock()
	return nil
}
