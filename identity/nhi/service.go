package nhi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
)

// Permissions a user may hold on an NHI, weakest first.
const (
	PermUse    = "use"
	PermManage = "manage"
	PermAdmin  = "admin"
)

var permRank = map[string]int{PermUse: 1, PermManage: 2, PermAdmin: 3}

// authorize checks the caller may act on n with need: tenant admins may
// do anything, the owner and backup owner hold admin, others need a grant.
func (s *Service) authorize(ctx context.Context, tx *store.Tx, n *NHI, need string) error {
	p := principal.From(ctx)
	if p.HasRole(principal.RoleTenantAdmin) {
		return nil
	}
	if p == nil || p.Kind != principal.KindUser {
		return apperr.New(apperr.KindPermissionDenied, "not allowed on this NHI")
	}
	uid, err := uuid.Parse(p.SubjectID)
	if err != nil {
		return apperr.New(apperr.KindPermissionDenied, "not allowed on this NHI")
	}
	if (n.OwnerID != nil && *n.OwnerID == uid) || (n.BackupOwnerID != nil && *n.BackupOwnerID == uid) {
		return nil
	}
	have, err := permissionOf(ctx, tx, n.ID, uid)
	if store.NoRows(err) {
		return apperr.NotFound("NHI") // do not reveal NHIs a user has no right on
	}
	if err != nil {
		return err
	}
	if permRank[have] < permRank[need] {
		return apperr.New(apperr.KindPermissionDenied, "needs the %s permission on this NHI", need)
	}
	return nil
}

// seesAll reports whether the caller may read every NHI of the tenant.
func seesAll(ctx context.Context) bool {
	p := principal.From(ctx)
	for _, r := range []string{principal.RoleTenantAdmin, principal.RoleGovernanceAdmin, principal.RoleAuditor, principal.RoleViewer} {
		if p.HasRole(r) {
			return true
		}
	}
	return false
}

// Created is a new NHI with its client secret, shown once.
type Created struct {
	NHI
	ClientSecret string `json:"client_secret" doc:"shown once; only its SHA-256 is stored"`
}

// NewSecret returns a 256-bit random client secret.
func NewSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("nhi: no randomness: " + err.Error())
	}
	return "xvs_" + base64.RawURLEncoding.EncodeToString(b)
}

// HashSecret is how client secrets are stored.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Create registers an NHI with its OAuth client and first secret.
func (s *Service) Create(ctx context.Context, in CreateInput) (*Created, error) {
	if !slugRE.MatchString(in.Slug) {
		return nil, apperr.Invalid("slug", "must be 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'")
	}
	if strings.TrimSpace(in.Name) == "" || len(in.Name) > 200 {
		return nil, apperr.Invalid("name", "must be 1 to 200 characters")
	}
	if len(in.Description) > 2000 {
		return nil, apperr.Invalid("description", "must be at most 2000 characters")
	}
	if in.OwnerID == uuid.Nil {
		return nil, apperr.Invalid("owner_id", "every NHI needs a human owner")
	}
	if err := s.validateProfile(in.Kind, &in.Profile); err != nil {
		return nil, err
	}
	if p := principal.From(ctx); !p.HasRole(principal.RoleTenantAdmin) {
		// Users may register NHIs they own themselves.
		if p == nil || p.Kind != principal.KindUser || p.SubjectID != in.OwnerID.String() {
			return nil, apperr.New(apperr.KindPermissionDenied, "you may register NHIs that you own; tenant admins may name any owner")
		}
	}
	now := s.now()
	n := &NHI{ID: uuid.Must(uuid.NewV7()), Kind: in.Kind, Slug: in.Slug, Name: in.Name, Description: in.Description, Status: StatusActive,
		StatusReason: "created", StatusChangedAt: now, OwnerID: &in.OwnerID, Profile: in.Profile, CreatedAt: now, UpdatedAt: now, Version: 1}
	if in.BackupOwnerID != nil && *in.BackupOwnerID != uuid.Nil {
		n.BackupOwnerID = in.BackupOwnerID
	}
	secret := NewSecret()
	pol, err := s.credentialPolicy(ctx)
	if err != nil {
		return nil, err
	}
	err = s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if err := s.checkOwner(ctx, tx, "owner_id", in.OwnerID); err != nil {
			return err
		}
		if n.BackupOwnerID != nil {
			if err := s.checkOwner(ctx, tx, "backup_owner_id", *n.BackupOwnerID); err != nil {
				return err
			}
		}
		n.ClientID = n.ID.String()
		n.RiskScore, n.RiskFactors = s.risk(n, now, now, true, pol)
		n.SPIFFEPath = fmt.Sprintf("/t/%s/%s/%s", tx.TenantID(), n.Kind, n.ID)
		if err := insertNHI(ctx, tx, n); err != nil {
			return err
		}
		clientRow := uuid.Must(uuid.NewV7())
		if err := insertNHIClient(ctx, tx, clientRow, n, defaultScope(n.Kind)); err != nil {
			return err
		}
		if err := insertSecret(ctx, tx, clientRow, secret, now.Add(pol.maxAge)); err != nil {
			return err
		}
		if err := s.publish(ctx, tx, n, 1); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "nhi.create", n, map[string]any{"kind": n.Kind, "slug": n.Slug, "owner_id": n.OwnerID})
	})
	if err != nil {
		return nil, err
	}
	return &Created{NHI: *n, ClientSecret: secret}, nil
}

func defaultScope(kind string) string {
	if kind == KindAgent {
		return "mcp a2a"
	}
	return "mcp"
}

// Get returns an NHI the caller may see.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (*NHI, error) {
	var n *NHI
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		if n, err = get(ctx, tx, id, false); err != nil {
			return err
		}
		if seesAll(ctx) {
			return nil
		}
		return s.authorize(ctx, tx, n, PermUse)
	})
	return n, err
}

// State returns an NHI's lifecycle status in the tenant of ctx, whoever
// asks (authentication checks a token's subject with it).
func (s *Service) State(ctx context.Context, id uuid.UUID) (string, error) {
	var status string
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		n, err := get(ctx, tx, id, false)
		if err == nil {
			status = n.Status
		}
		return err
	})
	return status, err
}

// ListOptions filters a listing.
type ListOptions struct {
	Kind    string
	Status  string
	OwnerID uuid.UUID
	Limit   int
	After   uuid.UUID
}

// List returns NHIs the caller may see, by ID (creation order).
func (s *Service) List(ctx context.Context, o ListOptions) ([]*NHI, bool, error) {
	if o.Kind != "" && !slices.Contains([]string{KindAgent, KindToolServer, KindServiceAccount}, o.Kind) {
		return nil, false, apperr.Invalid("kind", "must be agent, tool_server or service_account")
	}
	if _, ok := transitions[o.Status]; o.Status != "" && !ok {
		return nil, false, apperr.Invalid("status", "must be active, inactive, suspended, deprecated or archived")
	}
	if o.Limit <= 0 {
		o.Limit = 50
	}
	viewer := uuid.Nil
	if !seesAll(ctx) {
		p := principal.From(ctx)
		if p == nil || p.Kind != principal.KindUser {
			return []*NHI{}, false, nil
		}
		viewer, _ = uuid.Parse(p.SubjectID)
	}
	var out []*NHI
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		out, err = listNHIs(ctx, tx, o, viewer)
		return err
	})
	if len(out) > o.Limit {
		return out[:o.Limit], true, err
	}
	return out, false, err
}

// Update changes an NHI (manage permission).
func (s *Service) Update(ctx context.Context, id uuid.UUID, in UpdateInput, ifVersion int64) (*NHI, error) {
	pol, err := s.credentialPolicy(ctx)
	if err != nil {
		return nil, err
	}
	var out *NHI
	err = s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		n, err := get(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if err := s.authorize(ctx, tx, n, PermManage); err != nil {
			return err
		}
		if ifVersion != 0 && n.Version != ifVersion {
			return apperr.New(apperr.KindPreconditionFailed, "NHI changed since version %d (now %d)", ifVersion, n.Version)
		}
		if n.Status == StatusArchived {
			return apperr.New(apperr.KindConflict, "an archived NHI cannot change")
		}
		if in.Name != nil {
			if strings.TrimSpace(*in.Name) == "" || len(*in.Name) > 200 {
				return apperr.Invalid("name", "must be 1 to 200 characters")
			}
			n.Name = *in.Name
		}
		if in.Description != nil {
			if len(*in.Description) > 2000 {
				return apperr.Invalid("description", "must be at most 2000 characters")
			}
			n.Description = *in.Description
		}
		if in.OwnerID != nil {
			if *in.OwnerID == uuid.Nil {
				return apperr.Invalid("owner_id", "every NHI needs a human owner")
			}
			if err := s.checkOwner(ctx, tx, "owner_id", *in.OwnerID); err != nil {
				return err
			}
			n.OwnerID = in.OwnerID
		}
		if in.BackupOwnerID != nil {
			if *in.BackupOwnerID == uuid.Nil {
				n.BackupOwnerID = nil
			} else {
				if err := s.checkOwner(ctx, tx, "backup_owner_id", *in.BackupOwnerID); err != nil {
					return err
				}
				n.BackupOwnerID = in.BackupOwnerID
			}
		}
		if in.Profile != nil {
			p := *in.Profile
			if err := s.validateProfile(n.Kind, &p); err != nil {
				return err
			}
			n.Profile = p
		}
		if err := s.rescore(ctx, tx, n, pol); err != nil {
			return err
		}
		n.UpdatedAt = s.now()
		n.Version++
		out = n
		if err := s.write(ctx, tx, n); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "nhi.update", out, in)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Transition moves an NHI through its lifecycle (admin permission); the
// reason is required and audited.
func (s *Service) Transition(ctx context.Context, id uuid.UUID, in TransitionInput, ifVersion int64) (*NHI, error) {
	if _, ok := transitions[in.Status]; !ok {
		return nil, apperr.Invalid("status", "must be active, inactive, suspended, deprecated or archived")
	}
	if strings.TrimSpace(in.Reason) == "" || len(in.Reason) > 1000 {
		return nil, apperr.Invalid("reason", "a transition needs a reason (at most 1000 characters)")
	}
	var out *NHI
	var from string
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		n, err := get(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if err := s.authorize(ctx, tx, n, PermAdmin); err != nil {
			return err
		}
		if ifVersion != 0 && n.Version != ifVersion {
			return apperr.New(apperr.KindPreconditionFailed, "NHI changed since version %d (now %d)", ifVersion, n.Version)
		}
		from = n.Status
		if !slices.Contains(transitions[n.Status], in.Status) {
			allowed := strings.Join(transitions[n.Status], ", ")
			if allowed == "" {
				allowed = "none: archived is final"
			}
			return apperr.New(apperr.KindConflict, "an NHI cannot go from %s to %s (allowed: %s)", n.Status, in.Status, allowed)
		}
		if in.Status == StatusActive {
			if n.OwnerID == nil {
				return apperr.New(apperr.KindConflict, "an NHI without an owner cannot be activated; assign an owner first")
			}
			if err := s.checkOwner(ctx, tx, "owner_id", *n.OwnerID); err != nil {
				return apperr.New(apperr.KindConflict, "an NHI whose owner is not an active user cannot be activated; assign an owner first")
			}
		}
		now := s.now()
		n.Status, n.StatusReason, n.StatusChangedAt, n.UpdatedAt = in.Status, in.Reason, now, now
		n.Version++
		out = n
		if err := s.write(ctx, tx, n); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "nhi.transition", out, map[string]string{"from": from, "to": in.Status, "reason": in.Reason})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Authorize returns the NHI when the caller holds need on it.
func (s *Service) Authorize(ctx context.Context, id uuid.UUID, need string) (*NHI, error) {
	var n *NHI
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		if n, err = get(ctx, tx, id, false); err != nil {
			return err
		}
		return s.authorize(ctx, tx, n, need)
	})
	return n, err
}

// Lookup reads an NHI of the tenant in ctx without checking the caller's
// rights on it: for internal callers (the agent plane, the CA) that have
// authenticated the NHI itself.
func (s *Service) Lookup(ctx context.Context, id uuid.UUID) (*NHI, error) {
	var n *NHI
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		n, err = get(ctx, tx, id, false)
		return err
	})
	return n, err
}

// Serves reports whether an active NHI of this kind has this slug in the
// tenant in ctx (a tool server or an agent a token may name as its
// resource). The store's errors are returned, never taken for "no".
func (s *Service) Serves(ctx context.Context, kind, slug string) (bool, error) {
	var n int
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		n, err = countActive(ctx, tx, kind, slug)
		return err
	})
	return n > 0, err
}

// Ref names an NHI: what other domains keep of one (the gateway's tool
// catalog, the agent directory).
type Ref struct {
	ID     uuid.UUID
	Slug   string
	Status string
}

// Refs lists the NHIs of one kind in the tenant in ctx, without checking
// the caller's rights on them: for internal callers that build their own
// views (the gateway's tool catalog).
func (s *Service) Refs(ctx context.Context, kind string) ([]Ref, error) {
	var out []Ref
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		out, err = refsOf(ctx, tx, kind)
		return err
	})
	return out, err
}

// Active lists the active NHIs of a kind in the tenant in ctx (the one
// with slug, when slug is given), by slug, without checking the caller's
// rights on them: for internal callers that build their own views (the
// A2A agent directory).
func (s *Service) Active(ctx context.Context, kind, slug string) ([]*NHI, error) {
	var out []*NHI
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		out, err = activeOf(ctx, tx, kind, slug)
		return err
	})
	return out, err
}
