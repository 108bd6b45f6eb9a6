package auth

import (
	"context"
	"crypto/rand"
	"math/big"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
)

// AdminInput names a new tenant's first administrator.
type AdminInput struct {
	Email string `json:"email"`
	// Password, when absent, is generated and returned once.
	Password *string `json:"password,omitempty"`
}

// InitialAdmin is the first administrator of a new tenant; they must
// change the password at first login.
type InitialAdmin struct {
	UserID uuid.UUID `json:"user_id"`
	Email  string    `json:"email"`
	// Password is set only when it was generated: shown once, never stored.
	Password string `json:"password,omitempty"`
}

// TenantWithAdmin is a created tenant and its first administrator.
type TenantWithAdmin struct {
	tenant.Tenant
	InitialAdmin *InitialAdmin `json:"initial_admin,omitempty"`
}

// GeneratePassword returns a random 24-character password that meets
// any policy this product allows.
func GeneratePassword() string {
	const (
		upper = "ABCDEFGHJKLMNPQRSTUVWXYZ"
		lower = "abcdefghijkmnopqrstuvwxyz"
		digit = "23456789"
		sym   = "-_.!@#%+="
		all   = upper + lower + digit + sym
	)
	pick := func(set string) byte {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
		if err != nil {
			panic("auth: no randomness: " + err.Error())
		}
		return set[n.Int64()]
	}
	b := []byte{pick(upper), pick(lower), pick(digit), pick(sym)}
	for len(b) < 24 {
		b = append(b, pick(all))
	}
	for i := len(b) - 1; i > 0; i-- {
		j, _ := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		b[i], b[j.Int64()] = b[j.Int64()], b[i]
	}
	return string(b)
}

// adminDisplayName is the display name of a tenant's first administrator.
const adminDisplayName = "Administrator"

// CreateTenant creates a tenant and, when admin is given, its first
// tenant_admin (who must change the password at first login). Input is
// checked before anything is written.
func (s *Service) CreateTenant(ctx context.Context, in tenant.CreateInput, admin *AdminInput) (*TenantWithAdmin, error) {
	var pw string
	if admin != nil {
		if _, err := directory.NormalizeEmail(admin.Email); err != nil {
			return nil, apperr.Invalid("admin.email", "must be a plain email address")
		}
		pw = GeneratePassword()
		if admin.Password != nil {
			// Checked as the directory will check it — the new tenant's
			// own password policy, and nothing of the administrator's
			// address or name in it — before anything is written: a tenant
			// is never left without its administrator.
			pw = *admin.Password
			pol := tenant.PoliciesOf(&tenant.Tenant{Settings: in.Settings})
			if err := pol.Password.Check(pw, directory.PersonalOf(&directory.User{Email: admin.Email, DisplayName: adminDisplayName})...); err != nil {
				return nil, apperr.Invalid("admin.password", apperr.PublicMessage(err))
			}
		}
	}
	if err := tenant.ValidSlug(in.Slug); err != nil {
		return nil, err
	}
	t, err := s.Tenants.Create(ctx, in)
	if err != nil {
		return nil, err
	}
	out := &TenantWithAdmin{Tenant: *t}
	if admin == nil {
		return out, nil
	}
	tctx := store.WithTenant(ctx, t.ID)
	if principal.From(tctx) == nil {
		tctx = principal.With(tctx, &principal.Principal{Kind: principal.KindBootstrap, SubjectID: "system",
			AuthMethod: principal.MethodBootstrap, AdminRoles: []string{principal.RoleSuperAdmin}})
	}
	u, err := s.Directory.CreateUser(tctx, directory.CreateUserInput{Email: admin.Email, Password: &pw, MustChangePassword: true,
		AdminRoles: []string{principal.RoleTenantAdmin}, DisplayName: adminDisplayName})
	if err != nil {
		return nil, apperr.Wrap(err, apperr.KindOf(err), "tenant %q was created but its administrator was not: %s", t.Slug, apperr.PublicMessage(err))
	}
	out.InitialAdmin = &InitialAdmin{UserID: u.ID, Email: u.Email}
	if admin.Password == nil {
		out.InitialAdmin.Password = pw
	}
	return out, nil
}

// EnsureDefaultTenant creates the default tenant and its first admin when
// the platform has no tenant at all (first start). It returns nil when
// there was nothing to do. Concurrent replicas: one wins, the others see
// the slug taken and do nothing.
func (s *Service) EnsureDefaultTenant(ctx context.Context, slug, email, password string) (*TenantWithAdmin, error) {
	if any, err := s.Tenants.Any(ctx); err != nil || any {
		return nil, err
	}
	admin := &AdminInput{Email: email}
	if password != "" {
		admin.Password = &password
	}
	out, err := s.CreateTenant(ctx, tenant.CreateInput{Slug: slug, Name: "Default"}, admin)
	if apperr.KindOf(err) == apperr.KindAlreadyExists {
		return nil, nil
	}
	return out, err
}
