package nhi

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
)

// PermissionEvent is the change-event kind of NHI permissions.
const PermissionEvent = "nhi.permission"

// Permission is a user's right on an NHI.
type Permission struct {
	UserID     uuid.UUID `json:"user_id"`
	Permission string    `json:"permission" doc:"use, manage or admin"`
	CreatedAt  time.Time `json:"created_at"`
}

// GrantInput grants a user a permission on an NHI.
type GrantInput struct {
	UserID     uuid.UUID `json:"user_id"`
	Permission string    `json:"permission"`
}

// Grant gives (or changes) a user's permission on an NHI (admin permission).
func (s *Service) Grant(ctx context.Context, id uuid.UUID, in GrantInput) (*Permission, error) {
	if _, ok := permRank[in.Permission]; !ok {
		return nil, apperr.Invalid("permission", "must be use, manage or admin")
	}
	if in.UserID == uuid.Nil {
		return nil, apperr.Invalid("user_id", "is required")
	}
	p := &Permission{UserID: in.UserID, Permission: in.Permission, CreatedAt: s.now()}
	var n *NHI
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var err error
		if n, err = get(ctx, tx, id, true); err != nil {
			return err
		}
		if err := s.authorize(ctx, tx, n, PermAdmin); err != nil {
			return err
		}
		if err := s.checkOwner(ctx, tx, "user_id", in.UserID); err != nil {
			return err
		}
		if err := upsertPermission(ctx, tx, id, in.UserID, in.Permission, p.CreatedAt); err != nil {
			return err
		}
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: PermissionEvent, ID: id.String() + ":" + in.UserID.String(), Version: 1}, p); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "nhi.permission.grant", n, in)
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Revoke removes a user's permission on an NHI (admin permission).
func (s *Service) Revoke(ctx context.Context, id, user uuid.UUID) error {
	var n *NHI
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var err error
		if n, err = get(ctx, tx, id, true); err != nil {
			return err
		}
		if err := s.authorize(ctx, tx, n, PermAdmin); err != nil {
			return err
		}
		removed, err := deletePermission(ctx, tx, id, user)
		if err != nil {
			return err
		}
		if !removed {
			return apperr.NotFound("permission")
		}
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: PermissionEvent, ID: id.String() + ":" + user.String(), Version: 2, Op: events.OpDelete}, nil); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "nhi.permission.revoke", n, map[string]string{"user_id": user.String()})
	})
	if err != nil {
		return err
	}
	return nil
}

// Permissions lists the grants on an NHI.
func (s *Service) Permissions(ctx context.Context, id uuid.UUID) ([]Permission, error) {
	var out []Permission
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		n, err := get(ctx, tx, id, false)
		if err != nil {
			return err
		}
		if !seesAll(ctx) {
			if err := s.authorize(ctx, tx, n, PermUse); err != nil {
				return err
			}
		}
		out, err = permissionsOf(ctx, tx, id)
		return err
	})
	return out, err
}

type usedNHI struct{ tenant, id uuid.UUID }

func (s *Service) usedQueue() chan usedNHI {
	s.touchOnce.Do(func() { s.touches = make(chan usedNHI, 4096) })
	return s.touches
}

// Used stamps an NHI of the tenant in ctx as used, off the caller's path:
// the stamp waits in a queue for RunTouches, and is dropped when the queue
// is full (one stamp a minute per NHI is all that is kept anyway).
func (s *Service) Used(ctx context.Context, id uuid.UUID) {
	tid, ok := store.TenantFrom(ctx)
	if !ok {
		return
	}
	select {
	case s.usedQueue() <- usedNHI{tenant: tid, id: id}:
	default:
	}
}

// RunTouches writes the stamps Used queues until ctx ends.
func (s *Service) RunTouches(ctx context.Context) error {
	q := s.usedQueue()
	for {
		select {
		case <-ctx.Done():
			return nil
		case u := <-q:
			_ = s.Touch(store.WithTenant(ctx, u.tenant), u.id) // best effort: the next use stamps again
		}
	}
}

// Touch records that an NHI authenticated (for inactivity reports); it
// writes at most once a minute per NHI (and per replica it does not even
// ask the store more often).
func (s *Service) Touch(ctx context.Context, id uuid.UUID) error {
	now := s.now()
	s.touchMu.Lock()
	if last, ok := s.touched[id]; ok && now.Sub(last) < time.Minute {
		s.touchMu.Unlock()
		return nil
	}
	if s.touched == nil || len(s.touched) > 100_000 {
		s.touched = map[uuid.UUID]time.Time{}
	}
	s.touched[id] = now
	s.touchMu.Unlock()
	return s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		return touchNHI(ctx, tx, id, now, now.Add(-time.Minute))
	})
}
