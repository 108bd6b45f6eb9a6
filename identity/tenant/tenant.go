// Package tenant manages tenants: the unit of isolation everywhere in
// xavyo. A tenant's UUID is its identity inside (database, tokens, SPIFFE
// IDs, events); its slug appears only in URLs and never changes. Deleting
// a tenant is a soft delete: every endpoint refuses it from then on, and
// its data is kept for the retention period.
package tenant

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/reqid"
	"github.com/xavyo/xavyo/internal/store"
)

// Statuses.
const (
	StatusActive    = "active"
	StatusSuspended = "suspended"
	StatusDeleted   = "deleted"
)

// EventKind is the change-event kind of tenants.
const EventKind = "tenant"

// Tenant is one tenant.
type Tenant struct {
	ID        uuid.UUID       `json:"id"`
	Slug      string          `json:"slug" doc:"immutable, [a-z0-9-]{2,63}; used in URLs"`
	Name      string          `json:"name"`
	Status    string          `json:"status" doc:"active, suspended or deleted"`
	Settings  json.RawMessage `json:"settings" doc:"free-form JSON object of tenant settings"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	DeletedAt *time.Time      `json:"deleted_at,omitempty"`
	Version   int64           `json:"version"`
}

// CreateInput creates a tenant.
type CreateInput struct {
	Slug     string          `json:"slug"`
	Name     string          `json:"name"`
	Settings json.RawMessage `json:"settings,omitempty"`
}

// UpdateInput changes a tenant; absent fields stay as they are.
type UpdateInput struct {
	Name     *string          `json:"name,omitempty"`
	Status   *string          `json:"status,omitempty" doc:"active or suspended (delete to delete)"`
	Settings *json.RawMessage `json:"settings,omitempty"`
}

// ListOptions filters and pages a listing.
type ListOptions struct {
	Status         string
	IncludeDeleted bool
	SlugPrefix     string
	Limit          int
	// After is the ID of the last tenant of the previous page.
	After uuid.UUID
}

var slugRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$`)

// reserved slugs would collide with routes or confuse readers.
var reserved = map[string]bool{
	"api": true, "admin": true, "platform": true, "system": true, "oauth": true,
	"mcp": true, "a2a": true, "pki": true, "healthz": true, "readyz": true, "metrics": true,
	"well-known": true, "static": true, "assets": true, "login": true,
}

// ValidSlug reports whether s is a well-formed, unreserved slug.
func ValidSlug(s string) error {
	if !slugRE.MatchString(s) {
		return apperr.Invalid("slug", "must be 2 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'")
	}
	if reserved[s] {
		return apperr.Invalid("slug", "is reserved")
	}
	return nil
}

const maxSettings = 64 << 10

func validSettings(raw json.RawMessage) error {
	if len(raw) > maxSettings {
		return apperr.Invalid("settings", "must be at most 64 KiB")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return apperr.Invalid("settings", "must be a JSON object")
	}
	return nil
}

func validName(n string) error {
	if n == "" || len(n) > 200 {
		return apperr.Invalid("name", "must be 1 to 200 characters")
	}
	return nil
}

// Auditor is what the service needs of the audit log.
type Auditor = audit.Recorder

// Service manages tenants. Tenants are platform records: it works on the
// store's system path. Reads by ID are cached (every authenticated
// request resolves its tenant); changes here and, through Watch, on other
// replicas invalidate the cache.
type Service struct {
	DB    *store.DB
	Audit Auditor
	// OperatorSlug names the platform operators' tenant (empty: none):
	// only its users may hold super_admin.
	OperatorSlug string

	mu     sync.RWMutex
	cache  map[uuid.UUID]Tenant
	bySlug map[string]uuid.UUID // slugs never change
}

// Watch drops cached tenants when they change anywhere.
func (s *Service) Watch(bus *events.Bus) (stop func()) {
	return bus.Subscribe(func(m events.Message) {
		if m.Resync {
			s.forget(uuid.Nil)
		} else if m.Change.Kind == EventKind {
			s.forget(m.Change.TenantID)
		}
	})
}

// forget drops one tenant (or all, for uuid.Nil) from the cache.
func (s *Service) forget(id uuid.UUID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id == uuid.Nil {
		s.cache = nil
		return
	}
	delete(s.cache, id)
}

// IsOperator reports whether id is the platform operators' tenant.
func (s *Service) IsOperator(ctx context.Context, id uuid.UUID) bool {
	if s.OperatorSlug == "" {
		return false
	}
	slug, err := s.SlugOf(ctx, id)
	return err == nil && slug == s.OperatorSlug
}

// EnsureOperator creates the operators' tenant when it is missing (at
// every start, so upgraded platforms get one too); concurrent replicas:
// one creates it, the others find it.
func (s *Service) EnsureOperator(ctx context.Context) (*Tenant, error) {
	if s.OperatorSlug == "" {
		return nil, nil
	}
	t, err := s.GetBySlug(ctx, s.OperatorSlug)
	if apperr.KindOf(err) != apperr.KindNotFound {
		return t, err
	}
	t, err = s.Create(ctx, CreateInput{Slug: s.OperatorSlug, Name: "Platform operators"})
	if apperr.KindOf(err) == apperr.KindAlreadyExists {
		return s.GetBySlug(ctx, s.OperatorSlug)
	}
	return t, err
}

// SlugOf returns the slug of a live tenant (for issuer URLs).
func (s *Service) SlugOf(ctx context.Context, id uuid.UUID) (string, error) {
	t, err := s.Get(ctx, id)
	if err != nil {
		return "", err
	}
	return t.Slug, nil
}

// Create makes a tenant.
func (s *Service) Create(ctx context.Context, in CreateInput) (*Tenant, error) {
	if err := ValidSlug(in.Slug); err != nil {
		return nil, err
	}
	if err := validName(in.Name); err != nil {
		return nil, err
	}
	if len(in.Settings) == 0 {
		in.Settings = json.RawMessage("{}")
	}
	if err := validSettings(in.Settings); err != nil {
		return nil, err
	}
	now := store.Now()
	t := &Tenant{ID: uuid.Must(uuid.NewV7()), Slug: in.Slug, Name: in.Name, Status: StatusActive,
		Settings: compact(in.Settings), CreatedAt: now, UpdatedAt: now, Version: 1}
	err := s.DB.SystemTx(ctx, func(tx *store.Tx) error {
		err := insertTenant(ctx, tx, t)
		if apperr.KindOf(err) == apperr.KindAlreadyExists {
			return apperr.New(apperr.KindAlreadyExists, "a tenant with slug %q already exists", t.Slug)
		}
		if err != nil {
			return err
		}
		if err := events.Publish(ctx, tx, events.Change{TenantID: t.ID, Kind: EventKind, ID: t.ID.String(), Version: t.Version}, t); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "tenant.create", t, nil)
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Get returns a tenant that is not deleted.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (*Tenant, error) {
	s.mu.RLock()
	c, ok := s.cache[id]
	s.mu.RUnlock()
	if ok {
		return &c, nil
	}
	var t *Tenant
	err := s.DB.SystemRead(ctx, func(tx *store.Tx) error {
		var err error
		t, err = get(ctx, tx, `id = $1`, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.cache == nil {
		s.cache = map[uuid.UUID]Tenant{}
	}
	if len(s.cache) < 100_000 {
		s.cache[id] = *t
	}
	s.mu.Unlock()
	return t, nil
}

// GetBySlug returns a tenant that is not deleted by its slug.
func (s *Service) GetBySlug(ctx context.Context, slug string) (*Tenant, error) {
	s.mu.RLock()
	id, ok := s.bySlug[slug]
	s.mu.RUnlock()
	if ok {
		return s.Get(ctx, id)
	}
	var t *Tenant
	err := s.DB.SystemRead(ctx, func(tx *store.Tx) error {
		var err error
		t, err = get(ctx, tx, `slug = $1`, slug)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.bySlug == nil || len(s.bySlug) > 100_000 {
		s.bySlug = map[string]uuid.UUID{}
	}
	s.bySlug[slug] = t.ID
	s.mu.Unlock()
	return t, nil
}

// ErrSuspended refuses every request made in a suspended tenant, on both
// planes and at its issuer: one status policy, one answer (403).
var ErrSuspended = apperr.New(apperr.KindPermissionDenied, "the tenant is suspended")

// admit is the status policy: only active tenants are served.
func admit(t *Tenant) (*Tenant, error) {
	if t.Status != StatusActive {
		return nil, ErrSuspended
	}
	return t, nil
}

// Resolve finds the tenant a request names by its slug and admits it:
// unknown and deleted tenants are not found, suspended ones are refused
// with ErrSuspended, an unreachable store is unavailable. Every route
// under /t/{slug} on either plane resolves its tenant here.
func (s *Service) Resolve(ctx context.Context, slug string) (*Tenant, error) {
	t, err := s.GetBySlug(ctx, slug)
	if err != nil {
		return nil, err
	}
	return admit(t)
}

// ActiveTenant implements httpx.TenantResolver with Resolve's policy for
// requests that name their tenant by id.
func (s *Service) ActiveTenant(ctx context.Context, id uuid.UUID) error {
	t, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	_, err = admit(t)
	return err
}

// List returns a page of tenants in creation order, and whether more follow.
func (s *Service) List(ctx context.Context, o ListOptions) ([]*Tenant, bool, error) {
	if o.Limit <= 0 {
		o.Limit = 50
	}
	switch o.Status {
	case "", StatusActive, StatusSuspended:
	case StatusDeleted:
		o.IncludeDeleted = true
	default:
		return nil, false, apperr.Invalid("status", "must be active, suspended or deleted")
	}
	out, err := listTenants(ctx, s.DB, o)
	if err != nil {
		return nil, false, err
	}
	more := len(out) > o.Limit
	if more {
		out = out[:o.Limit]
	}
	return out, more, nil
}

// Update changes a tenant. ifVersion, when not 0, must be its current
// version (optimistic concurrency).
func (s *Service) Update(ctx context.Context, id uuid.UUID, in UpdateInput, ifVersion int64) (*Tenant, error) {
	if in.Name != nil {
		if err := validName(*in.Name); err != nil {
			return nil, err
		}
	}
	if in.Status != nil && *in.Status != StatusActive && *in.Status != StatusSuspended {
		return nil, apperr.Invalid("status", "must be active or suspended (DELETE deletes)")
	}
	if in.Settings != nil {
		if err := validSettings(*in.Settings); err != nil {
			return nil, err
		}
	}
	var before, after *Tenant
	err := s.DB.SystemTx(ctx, func(tx *store.Tx) error {
		var err error
		before, err = lockCurrent(ctx, tx, id, ifVersion)
		if err != nil {
			return err
		}
		t := *before
		if in.Name != nil {
			t.Name = *in.Name
		}
		if in.Status != nil {
			t.Status = *in.Status
		}
		if in.Settings != nil {
			t.Settings = compact(*in.Settings)
		}
		t.UpdatedAt = store.Now()
		t.Version++
		if err := updateTenant(ctx, tx, &t, before.Version); err != nil {
			return err
		}
		after = &t
		tx.AfterCommit(func() { s.forget(id) })
		if err := events.Publish(ctx, tx, events.Change{TenantID: t.ID, Kind: EventKind, ID: t.ID.String(), Version: t.Version}, t); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "tenant.update", after, map[string]any{"before": before})
	})
	if err != nil {
		return nil, err
	}
	return after, nil
}

// Delete soft-deletes a tenant: from now on every endpoint refuses it.
func (s *Service) Delete(ctx context.Context, id uuid.UUID, ifVersion int64) error {
	if s.IsOperator(ctx, id) {
		return apperr.New(apperr.KindConflict, "the platform operators' tenant cannot be deleted")
	}
	var t *Tenant
	err := s.DB.SystemTx(ctx, func(tx *store.Tx) error {
		var err error
		t, err = lockCurrent(ctx, tx, id, ifVersion)
		if err != nil {
			return err
		}
		now := store.Now()
		t.Status, t.DeletedAt, t.UpdatedAt = StatusDeleted, &now, now
		t.Version++
		if err := markDeleted(ctx, tx, t); err != nil {
			return err
		}
		tx.AfterCommit(func() { s.forget(id) })
		if err := events.Publish(ctx, tx, events.Change{TenantID: t.ID, Kind: EventKind, ID: t.ID.String(), Version: t.Version}, t); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "tenant.delete", t, nil)
	})
	if err != nil {
		return err
	}
	return nil
}

// auditTx records a tenant lifecycle action, in the transaction that
// makes it, in the platform chain and in the tenant's own chain.
func (s *Service) auditTx(ctx context.Context, tx *store.Tx, action string, t *Tenant, details map[string]any) error {
	if s.Audit == nil {
		return audit.ErrNoRecorder
	}
	if details == nil {
		details = map[string]any{}
	}
	details["slug"] = t.Slug
	details["version"] = t.Version
	e := audit.Entry{Action: action, TargetKind: "tenant", TargetID: t.ID.String(),
		RequestID: reqid.From(ctx), Details: details}.ActorFrom(principal.From(ctx))
	e.TenantID = audit.Platform
	if err := s.Audit.InTx(ctx, tx, e); err != nil {
		return err
	}
	e.TenantID = t.ID
	return s.Audit.InTx(ctx, tx, e)
}

// compact removes insignificant whitespace (PostgreSQL jsonb and SQLite
// text would otherwise return different spellings of the same object).
func compact(raw []byte) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return json.RawMessage(raw)
	}
	return buf.Bytes()
}
