package governance

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
)

// NHIs reads NHIs for the registration hooks.
type NHIs interface {
	Lookup(ctx context.Context, id uuid.UUID) (*nhi.NHI, error)
}

// OnNHIEvent is the outbox handler that keeps applications in step with
// NHIs: a tool server gets its application (type mcp_server, key = slug);
// an agent with an A2A endpoint gets an application (type a2a_agent) with
// one a2a_call entitlement. Idempotent: delivery is at least once.
func (s *Service) OnNHIEvent(nhis NHIs) func(ctx context.Context, e events.Event) error {
	return func(ctx context.Context, ev events.Event) error {
		if ev.Kind != nhi.EventKind {
			return nil
		}
		var p struct {
			Kind string `json:"kind"`
		}
		_ = json.Unmarshal(ev.Payload, &p)
		if p.Kind != nhi.KindToolServer && p.Kind != nhi.KindAgent {
			return nil
		}
		id, err := uuid.Parse(ev.SubjectID)
		if err != nil {
			return nil
		}
		ctx = principal.With(store.WithTenant(ctx, ev.TenantID), &principal.Principal{TenantID: ev.TenantID, Kind: principal.KindBootstrap,
			SubjectID: "system", AdminRoles: []string{principal.RoleSuperAdmin}})
		n, err := nhis.Lookup(ctx, id)
		if apperr.KindOf(err) == apperr.KindNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		return s.EnsureApplicationFor(ctx, n)
	}
}

// EnsureApplicationFor creates the application an NHI needs, if missing.
func (s *Service) EnsureApplicationFor(ctx context.Context, n *nhi.NHI) error {
	var typ string
	switch {
	case n.Kind == nhi.KindToolServer:
		typ = "mcp_server"
	case n.Kind == nhi.KindAgent && n.Profile.Agent != nil && n.Profile.Agent.A2AEndpoint != "":
		typ = "a2a_agent"
	default:
		return nil
	}
	var have bool
	if err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		_, err := applicationOf(ctx, tx, n.ID)
		have = err == nil
		if store.NoRows(err) {
			return nil
		}
		return err
	}); err != nil || have {
		return err
	}
	key := n.Slug
	if typ == "a2a_agent" {
		key = "a2a-" + n.Slug
	}
	app, err := s.createApplication(ctx, ApplicationInput{Key: key, Name: &n.Name, Type: typ, OwnerID: n.OwnerID}, &n.ID)
	if apperr.KindOf(err) == apperr.KindAlreadyExists {
		return nil // a concurrent delivery won
	}
	if err != nil {
		return err
	}
	if typ == "a2a_agent" {
		approved := Approved
		name := "Call " + n.Name
		_, err = s.CreateEntitlement(ctx, app.ID, EntitlementInput{Kind: KindA2ACall, Key: "call", Name: &name, ApprovalState: &approved})
	}
	return err
}

// ApplicationFor returns the application standing for an NHI, creating it
// first if the NHI's creation event has not been handled yet.
func (s *Service) ApplicationFor(ctx context.Context, n *nhi.NHI) (uuid.UUID, error) {
	find := func() (uuid.UUID, error) {
		var id uuid.UUID
		err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
			var err error
			id, err = applicationOf(ctx, tx, n.ID)
			return err
		})
		return id, err
	}
	id, err := find()
	if !store.NoRows(err) {
		return id, err
	}
	if err := s.EnsureApplicationFor(ctx, n); err != nil {
		return uuid.Nil, err
	}
	id, err = find()
	if store.NoRows(err) {
		return uuid.Nil, apperr.NotFound("application")
	}
	return id, err
}
