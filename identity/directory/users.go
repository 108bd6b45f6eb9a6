package directory

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
)

// User statuses.
const (
	StatusActive              = "active"
	StatusDisabled            = "disabled"
	StatusLocked              = "locked"
	StatusPendingVerification = "pending_verification"
)

var statuses = []string{StatusActive, StatusDisabled, StatusLocked, StatusPendingVerification}

// TenantRoles are the admin roles a tenant's users may hold.
var TenantRoles = []string{principal.RoleTenantAdmin, principal.RoleGovernanceAdmin, principal.RoleAuditor, principal.RoleViewer}

// User is a person in a tenant.
type User struct {
	ID                 uuid.UUID       `json:"id"`
	Email              string          `json:"email"`
	Username           *string         `json:"username,omitempty"`
	GivenName          string          `json:"given_name"`
	FamilyName         string          `json:"family_name"`
	DisplayName        string          `json:"display_name"`
	Status             string          `json:"status" doc:"active, disabled, locked or pending_verification"`
	Attributes         json.RawMessage `json:"attributes" doc:"custom attributes, checked against the tenant's attribute definitions"`
	AdminRoles         []string        `json:"admin_roles" doc:"tenant_admin, governance_admin, auditor, viewer"`
	ManagerID          *uuid.UUID      `json:"manager_id,omitempty" doc:"the user's manager (an approver of their access requests)"`
	PasswordSet        bool            `json:"password_set"`
	MustChangePassword bool            `json:"must_change_password"`
	PasswordChangedAt  *time.Time      `json:"password_changed_at,omitempty"`
	LockedUntil        *time.Time      `json:"locked_until,omitempty"`
	LastLoginAt        *time.Time      `json:"last_login_at,omitempty"`
	CreatedAt          time.Time       `json:"created_at"`
	UpdatedAt          time.Time       `json:"updated_at"`
	Version            int64           `json:"version"`

	passwordHash string
}

// CreateUserInput creates a user.
type CreateUserInput struct {
	Email       string          `json:"email"`
	Username    *string         `json:"username,omitempty"`
	GivenName   string          `json:"given_name,omitempty"`
	FamilyName  string          `json:"family_name,omitempty"`
	DisplayName string          `json:"display_name,omitempty"`
	Status      string          `json:"status,omitempty" doc:"default active"`
	Attributes  json.RawMessage `json:"attributes,omitempty"`
	AdminRoles  []string        `json:"admin_roles,omitempty"`
	ManagerID   *uuid.UUID      `json:"manager_id,omitempty"`
	// Password, when given, must meet the tenant's policy.
	Password *string `json:"password,omitempty"`
	// MustChangePassword forces a change at next login.
	MustChangePassword bool `json:"must_change_password,omitempty"`
}

// UpdateUserInput changes a user; absent fields stay.
type UpdateUserInput struct {
	Email       *string          `json:"email,omitempty"`
	Username    *string          `json:"username,omitempty" doc:"empty string removes it"`
	GivenName   *string          `json:"given_name,omitempty"`
	FamilyName  *string          `json:"family_name,omitempty"`
	DisplayName *string          `json:"display_name,omitempty"`
	Status      *string          `json:"status,omitempty"`
	Attributes  *json.RawMessage `json:"attributes,omitempty" doc:"replaces all custom attributes"`
	AdminRoles  *[]string        `json:"admin_roles,omitempty"`
	ManagerID   *uuid.UUID       `json:"manager_id,omitempty" doc:"the nil UUID removes it"`
}

var usernameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,127}$`)

// NormalizeEmail returns the comparison form of an email address, or an error.
func NormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || len(s) > 254 || !strings.Contains(s, "@") || a.Name != "" {
		return "", apperr.Invalid("email", "must be a plain email address such as ada@example.com")
	}
	return strings.ToLower(s), nil
}

func validName(field, v string) error {
	if len(v) > 200 {
		return apperr.Invalid(field, "must be at most 200 characters")
	}
	return nil
}

// checkRoles validates roles and that the caller may grant them.
// super_admin is a platform role: only users of the operators' tenant
// hold it, and only a super admin grants it.
func (s *Service) checkRoles(ctx context.Context, roles []string) error {
	for _, r := range roles {
		if r == principal.RoleSuperAdmin {
			tid, _ := store.TenantFrom(ctx)
			if s.Operators == nil || !s.Operators.IsOperator(ctx, tid) {
				return apperr.Invalid("admin_roles", "super_admin is a platform role; only users of the operators' tenant hold it")
			}
			if !principal.From(ctx).IsSuperAdmin() {
				return apperr.New(apperr.KindPermissionDenied, "only super admins grant super_admin")
			}
			continue
		}
		if !slices.Contains(TenantRoles, r) {
			return apperr.Invalid("admin_roles", fmt.Sprintf("unknown role %q", r))
		}
	}
	if len(roles) > 0 && !principal.From(ctx).HasRole(principal.RoleTenantAdmin) {
		return apperr.New(apperr.KindPermissionDenied, "only tenant admins grant admin roles")
	}
	return nil
}

const userCols = `id, email, username, given_name, family_name, display_name, status, attributes, admin_roles, password_hash,
	must_change_password, password_changed_at, locked_until, last_login_at, created_at, updated_at, version, manager_id`

func scanUser(row interface{ Scan(...any) error }) (*User, error) {
	var u User
	var attrs, roles []byte
	var hash *string
	if err := row.Scan(&u.ID, &u.Email, &u.Username, &u.GivenName, &u.FamilyName, &u.DisplayName, &u.Status, &attrs, &roles, &hash,
		&u.MustChangePassword, &u.PasswordChangedAt, &u.LockedUntil, &u.LastLoginAt, &u.CreatedAt, &u.UpdatedAt, &u.Version, &u.ManagerID); err != nil {
		return nil, err
	}
	u.Attributes = compactJSON(attrs)
	_ = json.Unmarshal(roles, &u.AdminRoles)
	if u.AdminRoles == nil {
		u.AdminRoles = []string{}
	}
	if hash != nil {
		u.passwordHash, u.PasswordSet = *hash, true
	}
	return &u, nil
}

func compactJSON(b []byte) json.RawMessage {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return json.RawMessage("{}")
	}
	out, _ := json.Marshal(v)
	return out
}

// PasswordHash returns the stored hash (for the login path only).
func (u *User) PasswordHash() string { return u.passwordHash }

// CreateUser creates a user in the tenant of ctx.
func (s *Service) CreateUser(ctx context.Context, in CreateUserInput) (*User, error) {
	return s.createUser(ctx, in, nil)
}

// createUser creates a user; also, when not nil, runs in the same
// transaction once the user is written.
func (s *Service) createUser(ctx context.Context, in CreateUserInput, also func(tx *store.Tx, u *User) error) (*User, error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	norm, err := NormalizeEmail(in.Email)
	if err != nil {
		return nil, err
	}
	if len(in.Attributes) > 0 && !isObject(in.Attributes) {
		return nil, apperr.Invalid("attributes", "must be a JSON object")
	}
	now := store.Now()
	u := &User{ID: uuid.Must(uuid.NewV7()), Email: strings.TrimSpace(in.Email), GivenName: in.GivenName, FamilyName: in.FamilyName,
		DisplayName: in.DisplayName, Status: in.Status, AdminRoles: in.AdminRoles, MustChangePassword: in.MustChangePassword,
		CreatedAt: now, UpdatedAt: now, Version: 1}
	if u.Status == "" {
		u.Status = StatusActive
	}
	if !slices.Contains(statuses, u.Status) {
		return nil, apperr.Invalid("status", "must be one of "+strings.Join(statuses, ", "))
	}
	if u.AdminRoles == nil {
		u.AdminRoles = []string{}
	}
	slices.Sort(u.AdminRoles)
	u.AdminRoles = slices.Compact(u.AdminRoles)
	if err := s.checkRoles(ctx, u.AdminRoles); err != nil {
		return nil, err
	}
	if in.Username != nil && *in.Username != "" {
		if !usernameRE.MatchString(*in.Username) {
			return nil, apperr.Invalid("username", "must be 1-128 characters of letters, digits and . _ @ -, starting with a letter or digit")
		}
		u.Username = in.Username
	}
	for f, v := range map[string]string{"given_name": u.GivenName, "family_name": u.FamilyName, "display_name": u.DisplayName} {
		if err := validName(f, v); err != nil {
			return nil, err
		}
	}
	var hash *string
	if in.Password != nil {
		pol, _, err := s.Policies.Policies(ctx, tid)
		if err != nil {
			return nil, err
		}
		if err := pol.Password.Check(*in.Password, personal(u)...); err != nil {
			return nil, err
		}
		h, err := s.Hasher.Hash(ctx, *in.Password)
		if err != nil {
			return nil, err
		}
		hash = &h
		u.PasswordChangedAt = &now
		u.PasswordSet = true
	}
	err = s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		defs, err := attributeDefinitions(ctx, tx)
		if err != nil {
			return err
		}
		if u.Attributes, err = validateAttributes(defs, in.Attributes); err != nil {
			return err
		}
		if in.ManagerID != nil && *in.ManagerID != uuid.Nil {
			if err := checkManager(ctx, tx, u.ID, *in.ManagerID); err != nil {
				return err
			}
			u.ManagerID = in.ManagerID
		}
		if err := insertUser(ctx, tx, u, norm, hash); err != nil {
			return err
		}
		if hash != nil {
			if err := addHistory(ctx, tx, u.ID, *hash); err != nil {
				return err
			}
		}
		if also != nil {
			if err := also(tx, u); err != nil {
				return err
			}
		}
		if err := events.Publish(ctx, tx, events.Change{TenantID: tid, Kind: UserEvent, ID: u.ID.String(), Version: 1}, nil); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "user.create", "user", u.ID.String(), map[string]any{"email": u.Email, "admin_roles": u.AdminRoles})
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// checkManager validates a manager for user: a user of the tenant, and
// not the user or anyone who reports to them (no cycles).
func checkManager(ctx context.Context, tx *store.Tx, user, manager uuid.UUID) error {
	for cur, hops := manager, 0; ; hops++ {
		if cur == user {
			return apperr.Invalid("manager_id", "a user cannot manage themselves, directly or through their reports")
		}
		next, err := managerOf(ctx, tx, cur)
		if store.NoRows(err) {
			return apperr.Invalid("manager_id", "no such user in this tenant")
		}
		if err != nil {
			return err
		}
		if next == nil || hops > 64 {
			return nil
		}
		cur = *next
	}
}

func personal(u *User) []string {
	out := []string{u.GivenName, u.FamilyName, u.DisplayName}
	if local, _, ok := strings.Cut(u.Email, "@"); ok {
		out = append(out, local)
	}
	if u.Username != nil {
		out = append(out, *u.Username)
	}
	return out
}

// GetUser returns a user of the tenant of ctx.
func (s *Service) GetUser(ctx context.Context, id uuid.UUID) (*User, error) {
	var u *User
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		u, err = getUser(ctx, tx, id, false)
		return err
	})
	return u, err
}

// UserState returns a user's status and admin roles in the tenant of ctx,
// whoever asks (authentication checks a token's subject with it).
func (s *Service) UserState(ctx context.Context, id uuid.UUID) (string, []string, error) {
	u, err := s.GetUser(ctx, id)
	if err != nil {
		return "", nil, err
	}
	return u.Status, u.AdminRoles, nil
}

// FindLoginUser finds a user by email or username for the login path.
func (s *Service) FindLoginUser(ctx context.Context, tx *store.Tx, login string) (*User, error) {
	login = strings.TrimSpace(login)
	if login == "" || len(login) > 254 {
		return nil, nil
	}
	u, err := userByLogin(ctx, tx, login)
	if store.NoRows(err) {
		return nil, nil
	}
	return u, err
}

// UserSort is a sortable user field.
type UserSort string

// Sortable fields.
const (
	SortCreated     UserSort = "created_at"
	SortEmail       UserSort = "email"
	SortUsername    UserSort = "username"
	SortDisplayName UserSort = "display_name"
)

// UserCursor continues a listing after a row.
type UserCursor struct {
	Value string    `json:"v"`
	ID    uuid.UUID `json:"i"`
}

// ListUsersOptions filters, sorts and pages.
type ListUsersOptions struct {
	Status  string
	Email   string
	Query   string // prefix of email, username or display name
	GroupID uuid.UUID
	Sort    UserSort
	Desc    bool
	Limit   int
	After   *UserCursor
}

// ListUsers returns a page of users and the cursor of the next page.
func (s *Service) ListUsers(ctx context.Context, o ListUsersOptions) ([]*User, *UserCursor, error) {
	if o.Sort == "" {
		o.Sort = SortCreated
	}
	col, ok := sortColumns[o.Sort]
	if !ok {
		return nil, nil, apperr.Invalid("sort", "must be created_at, email, username or display_name (prefix - for descending)")
	}
	if o.Status != "" && !slices.Contains(statuses, o.Status) {
		return nil, nil, apperr.Invalid("status", "must be one of "+strings.Join(statuses, ", "))
	}
	if o.Limit <= 0 {
		o.Limit = 50
	}
	var out []*User
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		out, err = listUsers(ctx, tx, o, col)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if len(out) <= o.Limit {
		return out, nil, nil
	}
	out = out[:o.Limit]
	last := out[len(out)-1]
	next := &UserCursor{ID: last.ID}
	switch o.Sort {
	case SortCreated:
		next.Value = last.CreatedAt.UTC().Format(time.RFC3339Nano)
	case SortEmail:
		next.Value = strings.ToLower(last.Email)
	case SortUsername:
		if last.Username != nil {
			next.Value = *last.Username
		}
	case SortDisplayName:
		next.Value = last.DisplayName
	}
	return out, next, nil
}

// UpdateUser changes a user; ifVersion (when not 0) must be current.
func (s *Service) UpdateUser(ctx context.Context, id uuid.UUID, in UpdateUserInput, ifVersion int64) (*User, error) {
	return s.updateUser(ctx, id, in, ifVersion)
}

// updateKind is the event kind of an update: UserActivityEvent when only
// profile text changed (names, email, username), which no decision,
// role or rule reads; UserEvent otherwise.
func updateKind(before, after *User) string {
	if before.Status != after.Status || !slices.Equal(before.AdminRoles, after.AdminRoles) ||
		!equalID(before.ManagerID, after.ManagerID) || !bytes.Equal(before.Attributes, after.Attributes) {
		return UserEvent
	}
	return UserActivityEvent
}

func equalID(a, b *uuid.UUID) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func (s *Service) updateUser(ctx context.Context, id uuid.UUID, in UpdateUserInput, ifVersion int64) (*User, error) {
	if in.Attributes != nil && !isObject(*in.Attributes) {
		return nil, apperr.Invalid("attributes", "must be a JSON object")
	}
	if in.AdminRoles != nil {
		if err := s.checkRoles(ctx, *in.AdminRoles); err != nil {
			return nil, err
		}
	}
	var out *User
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		u, err := getUser(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if ifVersion != 0 && u.Version != ifVersion {
			return apperr.New(apperr.KindPreconditionFailed, "user changed since version %d (now %d)", ifVersion, u.Version)
		}
		before := *u
		norm := strings.ToLower(u.Email)
		if in.Email != nil {
			if norm, err = NormalizeEmail(*in.Email); err != nil {
				return err
			}
			u.Email = strings.TrimSpace(*in.Email)
		}
		if in.Username != nil {
			switch {
			case *in.Username == "":
				u.Username = nil
			case !usernameRE.MatchString(*in.Username):
				return apperr.Invalid("username", "must be 1-128 characters of letters, digits and . _ @ -")
			default:
				u.Username = in.Username
			}
		}
		for f, p := range map[string]*string{"given_name": in.GivenName, "family_name": in.FamilyName, "display_name": in.DisplayName} {
			if p != nil {
				if err := validName(f, *p); err != nil {
					return err
				}
			}
		}
		if in.GivenName != nil {
			u.GivenName = *in.GivenName
		}
		if in.FamilyName != nil {
			u.FamilyName = *in.FamilyName
		}
		if in.DisplayName != nil {
			u.DisplayName = *in.DisplayName
		}
		if in.Status != nil {
			if !slices.Contains(statuses, *in.Status) {
				return apperr.Invalid("status", "must be one of "+strings.Join(statuses, ", "))
			}
			if u.Status == StatusLocked && *in.Status == StatusActive {
				u.LockedUntil = nil
			}
			if u.Status == StatusActive && *in.Status != StatusActive && s.Sessions != nil {
				if err := s.Sessions.EndUserTx(ctx, tx, id, "user "+*in.Status); err != nil {
					return err
				}
			}
			u.Status = *in.Status
		}
		if in.Attributes != nil {
			defs, err := attributeDefinitions(ctx, tx)
			if err != nil {
				return err
			}
			if u.Attributes, err = validateAttributes(defs, *in.Attributes); err != nil {
				return err
			}
		}
		if in.AdminRoles != nil {
			roles := slices.Clone(*in.AdminRoles)
			slices.Sort(roles)
			u.AdminRoles = slices.Compact(roles)
		}
		if in.ManagerID != nil {
			if *in.ManagerID == uuid.Nil {
				u.ManagerID = nil
			} else {
				if err := checkManager(ctx, tx, id, *in.ManagerID); err != nil {
					return err
				}
				u.ManagerID = in.ManagerID
			}
		}
		u.UpdatedAt = store.Now()
		u.Version++
		if err := updateUser(ctx, tx, u, norm); err != nil {
			return err
		}
		out = u
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: updateKind(&before, u), ID: id.String(), Version: u.Version}, nil); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "user.update", "user", id.String(), in)
	})
	return out, err
}

// DeleteUser removes a user, their memberships, sessions and history.
func (s *Service) DeleteUser(ctx context.Context, id uuid.UUID, ifVersion int64) error {
	var email string
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		u, err := getUser(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if ifVersion != 0 && u.Version != ifVersion {
			return apperr.New(apperr.KindPreconditionFailed, "user changed since version %d (now %d)", ifVersion, u.Version)
		}
		email = u.Email
		if s.Sessions != nil {
			if err := s.Sessions.EndUserTx(ctx, tx, id, "user deleted"); err != nil {
				return err
			}
		}
		if err := deleteUser(ctx, tx, id); err != nil {
			return err
		}
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: UserEvent, ID: id.String(), Version: u.Version + 1, Op: events.OpDelete}, map[string]bool{"deleted": true}); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "user.delete", "user", id.String(), map[string]string{"email": email})
	})
	if err != nil {
		return err
	}
	return nil
}

// SetPassword sets a user's password after checking the tenant's policy
// and history. mustChange forces another change at next login (an admin
// reset); a self-service change clears it.
func (s *Service) SetPassword(ctx context.Context, id uuid.UUID, pw string, mustChange bool) (*User, error) {
	tid, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	pol, _, err := s.Policies.Policies(ctx, tid)
	if err != nil {
		return nil, err
	}
	u, err := s.GetUser(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := pol.Password.Check(pw, personal(u)...); err != nil {
		return nil, err
	}
	var history []string
	if pol.Password.History > 0 {
		err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
			var err error
			history, err = recentHashes(ctx, tx, id, pol.Password.History)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	for _, h := range history {
		if ok, _, err := s.Hasher.Verify(ctx, pw, h); err != nil {
			return nil, err
		} else if ok {
			return nil, apperr.Invalid("password", fmt.Sprintf("must differ from your last %d passwords", pol.Password.History))
		}
	}
	hash, err := s.Hasher.Hash(ctx, pw)
	if err != nil {
		return nil, err
	}
	var out *User
	err = s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		u, err := getUser(ctx, tx, id, true)
		if err != nil {
			return err
		}
		now := store.Now()
		u.Version++
		u.UpdatedAt, u.PasswordChangedAt, u.MustChangePassword, u.PasswordSet = now, &now, mustChange, true
		if err := setPasswordHash(ctx, tx, u, hash); err != nil {
			return err
		}
		if err := addHistory(ctx, tx, id, hash); err != nil {
			return err
		}
		if err := trimHistory(ctx, tx, id, max(pol.Password.History, 1)); err != nil {
			return err
		}
		out = u
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: UserActivityEvent, ID: id.String(), Version: u.Version}, nil); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "user.password.set", "user", id.String(), map[string]bool{"must_change": mustChange})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Unlock clears a lockout.
func (s *Service) Unlock(ctx context.Context, id uuid.UUID) (*User, error) {
	var out *User
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		u, err := getUser(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if u.Status == StatusLocked {
			u.Status = StatusActive
		}
		u.LockedUntil = nil
		u.Version++
		u.UpdatedAt = store.Now()
		if err := unlockUser(ctx, tx, u); err != nil {
			return err
		}
		out = u
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: UserEvent, ID: id.String(), Version: u.Version}, nil); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, "user.unlock", "user", id.String(), nil)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PersonalOf returns what a user's password must not contain.
func PersonalOf(u *User) []string { return personal(u) }

// FindUserTx reads a user inside the caller's transaction (nil if absent).
func (s *Service) FindUserTx(ctx context.Context, tx *store.Tx, id uuid.UUID) (*User, error) {
	u, err := getUser(ctx, tx, id, false)
	if apperr.KindOf(err) == apperr.KindNotFound {
		return nil, nil
	}
	return u, err
}

func isObject(raw json.RawMessage) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(raw, &m) == nil && m != nil
}

// VerifyEmailTx records that a user proved they hold their address (a
// link mailed to it): a user pending verification becomes active. Other
// statuses are left as they are (a disabled user stays disabled).
func (s *Service) VerifyEmailTx(ctx context.Context, tx *store.Tx, id uuid.UUID) error {
	u, err := getUser(ctx, tx, id, true)
	if err != nil {
		return err
	}
	if u.Status != StatusPendingVerification {
		return nil
	}
	u.Status, u.UpdatedAt = StatusActive, store.Now()
	u.Version++
	if err := updateUser(ctx, tx, u, strings.ToLower(u.Email)); err != nil {
		return err
	}
	if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: UserEvent, ID: id.String(), Version: u.Version}, nil); err != nil {
		return err
	}
	return s.auditTx(ctx, tx, "user.email.verify", "user", id.String(), map[string]string{"email": u.Email})
}
