package directory

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
)

// Group is a named set of users, optionally under a parent group.
type Group struct {
	ID          uuid.UUID  `json:"id"`
	Name        string     `json:"name"`
	Description string     `json:"description"`
	ParentID    *uuid.UUID `json:"parent_id,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	Version     int64      `json:"version"`
}

// GroupInput creates or changes a group.
type GroupInput struct {
	Name        *string `json:"name,omitempty"`
	Description *string `json:"description,omitempty"`
	// ParentID moves the group; the nil UUID makes it a root.
	ParentID *uuid.UUID `json:"parent_id,omitempty" doc:"parent group; 00000000-0000-0000-0000-000000000000 makes it a root"`
}

// maxDepth bounds the hierarchy (and every walk of it).
const maxDepth = 32

const groupCols = `id, name, description, parent_id, created_at, updated_at, version`

func scanGroup(row interface{ Scan(...any) error }) (*Group, error) {
	var g Group
	if err := row.Scan(&g.ID, &g.Name, &g.Description, &g.ParentID, &g.CreatedAt, &g.UpdatedAt, &g.Version); err != nil {
		return nil, err
	}
	return &g, nil
}

func validGroupName(n string) error {
	if strings.TrimSpace(n) == "" || len(n) > 200 {
		return apperr.Invalid("name", "must be 1 to 200 characters")
	}
	return nil
}

// checkParent refuses a parent that does not exist, would make a cycle,
// or would make the hierarchy deeper than maxDepth.
func checkParent(ctx context.Context, tx *store.Tx, self, parent uuid.UUID) error {
	cur := parent
	for depth := 0; ; depth++ {
		if cur == self {
			return apperr.Invalid("parent_id", "would make a cycle in the group hierarchy")
		}
		if depth >= maxDepth {
			return apperr.Invalid("parent_id", "the hierarchy may be at most 32 levels deep")
		}
		next, err := parentOf(ctx, tx, cur)
		if store.NoRows(err) {
			if cur == parent {
				return apperr.Invalid("parent_id", "no such group")
			}
			return nil
		}
		if err != nil {
			return err
		}
		if next == nil {
			return nil
		}
		cur = *next
	}
}

// CreateGroup makes a group.
func (s *Service) CreateGroup(ctx context.Context, in GroupInput) (*Group, error) {
	if in.Name == nil {
		return nil, apperr.Invalid("name", "is required")
	}
	if err := validGroupName(*in.Name); err != nil {
		return nil, err
	}
	now := store.Now()
	g := &Group{ID: uuid.Must(uuid.NewV7()), Name: *in.Name, CreatedAt: now, UpdatedAt: now, Version: 1}
	if in.Description != nil {
		g.Description = *in.Description
	}
	if len(g.Description) > 1000 {
		return nil, apperr.Invalid("description", "must be at most 1000 characters")
	}
	if in.ParentID != nil && *in.ParentID != uuid.Nil {
		g.ParentID = in.ParentID
	}
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if g.ParentID != nil {
			if err := checkParent(ctx, tx, g.ID, *g.ParentID); err != nil {
				return err
			}
		}
		if err := insertGroup(ctx, tx, g); err != nil {
			return err
		}
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: GroupEvent, ID: g.ID.String(), Version: 1}, g); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "group.create", "group", g.ID.String(), g)
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// GetGroup returns a group.
func (s *Service) GetGroup(ctx context.Context, id uuid.UUID) (*Group, error) {
	var g *Group
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		g, err = getGroup(ctx, tx, id, false)
		return err
	})
	return g, err
}

// ListGroupsOptions filters and pages groups (by name).
type ListGroupsOptions struct {
	NamePrefix string
	ParentID   *uuid.UUID // the nil UUID: roots only
	Limit      int
	AfterName  string
	AfterID    uuid.UUID
}

// ListGroups lists groups by name; more reports a further page.
func (s *Service) ListGroups(ctx context.Context, o ListGroupsOptions) (out []*Group, more bool, err error) {
	if o.Limit <= 0 {
		o.Limit = 50
	}
	parentFilter, parent := 0, uuid.Nil
	if o.ParentID != nil {
		parentFilter, parent = 1, *o.ParentID
		if parent == uuid.Nil {
			parentFilter = 2
		}
	}
	err = s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		out, err = listGroups(ctx, tx, strings.ToLower(o.NamePrefix), parentFilter, parent, o.AfterName, o.AfterID, o.Limit+1)
		return err
	})
	if len(out) > o.Limit {
		return out[:o.Limit], true, err
	}
	return out, false, err
}

// UpdateGroup renames, redescribes or moves a group.
func (s *Service) UpdateGroup(ctx context.Context, id uuid.UUID, in GroupInput, ifVersion int64) (*Group, error) {
	var out *Group
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		g, err := getGroup(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if ifVersion != 0 && g.Version != ifVersion {
			return apperr.New(apperr.KindPreconditionFailed, "group changed since version %d (now %d)", ifVersion, g.Version)
		}
		if in.Name != nil {
			if err := validGroupName(*in.Name); err != nil {
				return err
			}
			g.Name = *in.Name
		}
		if in.Description != nil {
			if len(*in.Description) > 1000 {
				return apperr.Invalid("description", "must be at most 1000 characters")
			}
			g.Description = *in.Description
		}
		if in.ParentID != nil {
			if *in.ParentID == uuid.Nil {
				g.ParentID = nil
			} else {
				if err := checkParent(ctx, tx, id, *in.ParentID); err != nil {
					return err
				}
				g.ParentID = in.ParentID
			}
		}
		g.UpdatedAt = store.Now()
		g.Version++
		if err := updateGroup(ctx, tx, g); err != nil {
			return err
		}
		out = g
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: GroupEvent, ID: id.String(), Version: g.Version}, g); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "group.update", "group", id.String(), out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteGroup removes a group without child groups (and its memberships).
func (s *Service) DeleteGroup(ctx context.Context, id uuid.UUID, ifVersion int64) error {
	var name string
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		g, err := getGroup(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if ifVersion != 0 && g.Version != ifVersion {
			return apperr.New(apperr.KindPreconditionFailed, "group changed since version %d (now %d)", ifVersion, g.Version)
		}
		children, err := childGroups(ctx, tx, id)
		if err != nil {
			return err
		}
		if children > 0 {
			return apperr.New(apperr.KindConflict, "the group has %d child groups; move or delete them first", children)
		}
		name = g.Name
		if err := deleteGroup(ctx, tx, id); err != nil {
			return err
		}
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: GroupEvent, ID: id.String(), Version: g.Version + 1, Op: events.OpDelete}, map[string]bool{"deleted": true}); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "group.delete", "group", id.String(), map[string]string{"name": name})
	})
	if err != nil {
		return err
	}
	return nil
}

// Membership is one user in one group.
type Membership struct {
	GroupID   uuid.UUID `json:"group_id"`
	UserID    uuid.UUID `json:"user_id"`
	CreatedAt time.Time `json:"created_at"`
}

// AddMember puts a user in a group (idempotent).
func (s *Service) AddMember(ctx context.Context, group, user uuid.UUID) (*Membership, bool, error) {
	m := &Membership{GroupID: group, UserID: user, CreatedAt: store.Now()}
	created := false
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if _, err := getGroup(ctx, tx, group, false); err != nil {
			return err
		}
		if _, err := getUser(ctx, tx, user, false); err != nil {
			return err
		}
		added, err := addMembership(ctx, tx, m)
		if err != nil || !added {
			return err
		}
		created = true
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: MembershipEvent, ID: group.String() + ":" + user.String(), Version: 1}, m); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "group.member.add", "group", group.String(), map[string]string{"user_id": user.String()})
	})
	return m, created && err == nil, err
}

// RemoveMember takes a user out of a group.
func (s *Service) RemoveMember(ctx context.Context, group, user uuid.UUID) error {
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		removed, err := removeMembership(ctx, tx, group, user)
		if err != nil {
			return err
		}
		if !removed {
			return apperr.NotFound("membership")
		}
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: MembershipEvent, ID: group.String() + ":" + user.String(), Version: 2, Op: events.OpDelete}, map[string]bool{"deleted": true}); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "group.member.remove", "group", group.String(), map[string]string{"user_id": user.String()})
	})
	if err != nil {
		return err
	}
	return nil
}

// GroupsOfUser lists the groups a user is directly in.
func (s *Service) GroupsOfUser(ctx context.Context, user uuid.UUID) ([]*Group, error) {
	var out []*Group
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		if _, err := getUser(ctx, tx, user, false); err != nil {
			return err
		}
		var err error
		out, err = groupsOf(ctx, tx, user)
		return err
	})
	return out, err
}
