package directory

// External identities (docs/design/0000-architecture.md §12): a user's
// identity in another system — a federation subject, and later a SCIM
// externalId, an import key or a connector's account — is a link
// (source, external id), unique in the tenant. Federation finds the
// person of an upstream sign-in through it; a link made by a
// just-in-time sign-in is "managed" (that source keeps the profile up to
// date), a link to a user who existed before never is.

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// Link is one external identity of a user.
type Link struct {
	ID         uuid.UUID  `json:"id"`
	UserID     uuid.UUID  `json:"user_id"`
	Source     string     `json:"source" doc:"where the identity lives, e.g. idp:<provider key>"`
	ExternalID string     `json:"external_id" doc:"its id there (an upstream subject)"`
	Managed    bool       `json:"managed" doc:"the source created the user and keeps its profile up to date"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

func validLink(source, external string) error {
	if source == "" || len(source) > 200 || external == "" || len(external) > 512 || strings.ContainsAny(source+external, "\x00\r\n") {
		return apperr.Invalid("external_id", "a source and an external id of at most 200 and 512 characters")
	}
	return nil
}

// LinkedUser finds the link of (source, external id) in the tenant of ctx
// and records its use; nil, nil: none.
func (s *Service) LinkedUser(ctx context.Context, source, external string) (*Link, *User, error) {
	if err := validLink(source, external); err != nil {
		return nil, nil, err
	}
	var l *Link
	var u *User
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var err error
		if l, err = linkByExternalTx(ctx, tx, source, external); err != nil || l == nil {
			return err
		}
		if u, err = getUser(ctx, tx, l.UserID, false); err != nil {
			return err
		}
		now := store.Now()
		l.LastUsedAt = &now
		return touchLinkTx(ctx, tx, l.ID, now)
	})
	if err != nil || l == nil {
		return nil, nil, err
	}
	return l, u, nil
}

// LinkUser links an external identity to an existing user (never
// managed: the user's profile stays the directory's).
func (s *Service) LinkUser(ctx context.Context, user uuid.UUID, source, external string) (*Link, error) {
	if err := validLink(source, external); err != nil {
		return nil, err
	}
	now := store.Now()
	l := &Link{ID: uuid.Must(uuid.NewV7()), UserID: user, Source: source, ExternalID: external, CreatedAt: now, LastUsedAt: &now}
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if _, err := getUser(ctx, tx, user, true); err != nil {
			return err
		}
		if err := insertLinkTx(ctx, tx, l); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "user.link", "user", user.String(), map[string]string{"source": source, "external_id": external})
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// CreateLinkedUser creates a user with its external identity, in one
// transaction (a just-in-time sign-in): the link is managed.
func (s *Service) CreateLinkedUser(ctx context.Context, in CreateUserInput, source, external string) (*User, *Link, error) {
	if err := validLink(source, external); err != nil {
		return nil, nil, err
	}
	if in.Password != nil || len(in.AdminRoles) > 0 {
		return nil, nil, apperr.Invalid("body", "a linked user is created without password or admin roles")
	}
	var l *Link
	u, err := s.createUser(ctx, in, func(tx *store.Tx, u *User) error {
		l = &Link{ID: uuid.Must(uuid.NewV7()), UserID: u.ID, Source: source, ExternalID: external, Managed: true, CreatedAt: u.CreatedAt,
			LastUsedAt: &u.CreatedAt}
		if err := insertLinkTx(ctx, tx, l); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "user.link", "user", u.ID.String(), map[string]any{"source": source, "external_id": external, "managed": true})
	})
	if err != nil {
		return nil, nil, err
	}
	return u, l, nil
}

// Links lists a user's external identities.
func (s *Service) Links(ctx context.Context, user uuid.UUID) ([]*Link, error) {
	var out []*Link
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		out, err = linksOfTx(ctx, tx, user)
		return err
	})
	return out, err
}

// Unlink removes one of a user's external identities.
func (s *Service) Unlink(ctx context.Context, user, id uuid.UUID) error {
	return s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		ok, err := deleteLinkTx(ctx, tx, user, id)
		if err != nil {
			return err
		}
		if !ok {
			return apperr.NotFound("linked identity")
		}
		return s.auditTx(ctx, tx, "user.unlink", "user", user.String(), map[string]string{"link_id": id.String()})
	})
}

// UserByEmail finds the user of an email address in the tenant of ctx
// (nil, nil: none).
func (s *Service) UserByEmail(ctx context.Context, email string) (*User, error) {
	norm, err := NormalizeEmail(email)
	if err != nil {
		return nil, nil //nolint:nilerr // not an address: nobody has it
	}
	var u *User
	err = s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		u, err = s.FindLoginUser(ctx, tx, norm)
		return err
	})
	if u != nil && !strings.EqualFold(u.Email, norm) {
		return nil, err // a username that looks like the address: not its owner
	}
	return u, err
}
