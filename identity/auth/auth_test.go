package auth_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/auth"
	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/password"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/identity/token"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/seal"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

type fixture struct {
	svc     *auth.Service
	dir     *directory.Service
	tenants *tenant.Service
	tokens  *token.Service
	t       *tenant.Tenant
}

const pw = "Correct-horse-battery-9"

func setup(t *testing.T, db *store.DB) *fixture {
	t.Helper()
	tenants := &tenant.Service{DB: db, Audit: audit.Discard}
	tn, err := tenants.Create(context.Background(), tenant.CreateInput{Slug: "a-" + uuid.NewString()[:8], Name: "A"})
	if err != nil {
		t.Fatal(err)
	}
	hasher := password.NewHasher(password.Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 2)
	sealer, _ := seal.New(make([]byte, 32))
	tokens, err := token.New(token.Config{DB: db, Sealer: sealer, Tenants: tenants, IssuerBase: "http://127.0.0.1:8080"})
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := auth.NewSessions(tokens)
	if err != nil {
		t.Fatal(err)
	}
	dir := &directory.Service{DB: db, Audit: audit.Discard, Policies: tenants, Hasher: hasher, Sessions: sessions}
	ctx := principal.With(store.WithTenant(context.Background(), tn.ID), &principal.Principal{TenantID: tn.ID, Kind: principal.KindUser,
		SubjectID: "admin", AdminRoles: []string{principal.RoleTenantAdmin}})
	p := pw
	if _, err := dir.CreateUser(ctx, directory.CreateUserInput{Email: "ada@a.test", Password: &p}); err != nil {
		t.Fatal(err)
	}
	svc := &auth.Service{DB: db, Tenants: tenants, Directory: dir, Tokens: tokens, Hasher: hasher, SessionStore: sessions, Audit: audit.Discard}
	return &fixture{svc: svc, dir: dir, tenants: tenants, tokens: tokens, t: tn}
}

// TestSignInRefreshAndSuspension: a user signs in and refreshes; a wrong
// password, an unknown user and an unknown tenant get the one same
// refusal; a suspended tenant refuses sign-in, refresh and its tokens with
// tenant.ErrSuspended, and serves them again once active.
func TestSignInRefreshAndSuspension(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		bg := context.Background()
		cl := auth.Client{IP: "127.0.0.1", UserAgent: "test"}
		out, err := f.svc.Login(bg, auth.LoginInput{Tenant: f.t.Slug, Login: "ada@a.test", Password: pw}, cl)
		if err != nil {
			t.Fatal(err)
		}
		claims, err := f.tokens.Verify(bg, out.AccessToken, token.Expect{Audience: f.tokens.AdminAudience(), Tenant: f.t.ID})
		if err != nil || claims.SessionID != out.SessionID.String() {
			t.Fatalf("the admin token: %v %+v", err, claims)
		}
		next, err := f.svc.Refresh(bg, out.RefreshToken)
		if err != nil || next.RefreshToken == out.RefreshToken {
			t.Fatalf("refresh: %v", err)
		}
		for name, in := range map[string]auth.LoginInput{
			"wrong password": {Tenant: f.t.Slug, Login: "ada@a.test", Password: pw + "x"},
			"unknown user":   {Tenant: f.t.Slug, Login: "bob@a.test", Password: pw},
			"unknown tenant": {Tenant: "no-such-tenant", Login: "ada@a.test", Password: pw},
		} {
			if _, err := f.svc.Login(bg, in, cl); err == nil || err.Error() != auth.ErrInvalidCredentials.Error() {
				t.Errorf("%s: %v", name, err)
			}
		}

		suspended := tenant.StatusSuspended
		if _, err := f.tenants.Update(bg, f.t.ID, tenant.UpdateInput{Status: &suspended}, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Login(bg, auth.LoginInput{Tenant: f.t.Slug, Login: "ada@a.test", Password: pw}, cl); err == nil || err.Error() != tenant.ErrSuspended.Error() {
			t.Fatalf("sign-in in a suspended tenant: %v", err)
		}
		if _, err := f.svc.Refresh(bg, next.RefreshToken); err == nil || err.Error() != tenant.ErrSuspended.Error() {
			t.Fatalf("refresh in a suspended tenant: %v", err)
		}
		if err := f.tenants.ActiveTenant(bg, f.t.ID); apperr.KindOf(err) != apperr.KindPermissionDenied {
			t.Fatalf("the suspended tenant's status: %v", err)
		}
		if _, err := f.tenants.Resolve(bg, f.t.Slug); err == nil || err.Error() != tenant.ErrSuspended.Error() {
			t.Fatalf("resolving the suspended tenant: %v", err)
		}

		active := tenant.StatusActive
		if _, err := f.tenants.Update(bg, f.t.ID, tenant.UpdateInput{Status: &active}, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Refresh(bg, next.RefreshToken); err != nil {
			t.Fatalf("refresh once active again: %v", err)
		}
	})
}

// TestDisablingAUserEndsTheirSessions: the directory ends a user's
// sessions through the session store in the transaction that disables
// them: the refresh token stops working, the session reads as revoked.
func TestDisablingAUserEndsTheirSessions(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		bg := context.Background()
		out, err := f.svc.Login(bg, auth.LoginInput{Tenant: f.t.Slug, Login: "ada@a.test", Password: pw}, auth.Client{IP: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		admin := principal.With(store.WithTenant(bg, f.t.ID), &principal.Principal{TenantID: f.t.ID, Kind: principal.KindUser,
			SubjectID: "admin", AdminRoles: []string{principal.RoleTenantAdmin}})
		users, _, err := f.dir.ListUsers(admin, directory.ListUsersOptions{Limit: 10})
		if err != nil || len(users) != 1 {
			t.Fatalf("users: %v %d", err, len(users))
		}
		disabled := directory.StatusDisabled
		if _, err := f.dir.UpdateUser(admin, users[0].ID, directory.UpdateUserInput{Status: &disabled}, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Refresh(bg, out.RefreshToken); err == nil {
			t.Fatal("a disabled user's refresh token still works")
		}
		sessions, err := f.svc.Sessions(admin, users[0].ID, true)
		if err != nil || len(sessions) != 1 || sessions[0].RevokedAt == nil || *sessions[0].RevokedReason != "user disabled" {
			t.Fatalf("the session after disabling: %v %+v", err, sessions)
		}
	})
}

// TestLockout: failed logins in a row lock the account; the right
// password is then refused too.
func TestLockout(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		bg := context.Background()
		pol := tenant.PoliciesOf(f.t)
		for range pol.Lockout.MaxAttempts {
			if _, err := f.svc.Login(bg, auth.LoginInput{Tenant: f.t.Slug, Login: "ada@a.test", Password: "wrong-" + pw}, auth.Client{}); err == nil {
				t.Fatal("a wrong password signed in")
			}
		}
		if _, err := f.svc.Login(bg, auth.LoginInput{Tenant: f.t.Slug, Login: "ada@a.test", Password: pw}, auth.Client{}); err == nil {
			t.Fatal("a locked account signed in")
		}
	})
}

// TestBrowserSessions: an SSO session names its person until it is idle
// beyond the tenant's policy, older than its lifetime, ended, or its
// person disabled; values that name no session name none, without error.
func TestBrowserSessions(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		bg := context.Background()
		now := time.Now().UTC()
		f.svc.Now = func() time.Time { return now }
		_, u, _, err := f.svc.CheckPassword(bg, f.t.Slug, "ada@a.test", pw)
		if err != nil {
			t.Fatal(err)
		}
		cl := auth.Client{IP: "127.0.0.1", UserAgent: "test"}
		open := func() (*auth.BrowserSession, string) {
			bs, value, err := f.svc.OpenBrowserSession(bg, f.t, u, []string{"pwd"}, cl)
			if err != nil {
				t.Fatal(err)
			}
			return bs, value
		}
		of := func(value string) *auth.BrowserSession {
			t.Helper()
			bs, err := f.svc.BrowserSessionOf(bg, f.t, value)
			if err != nil {
				t.Fatal(err)
			}
			return bs
		}
		bs, value := open()
		start := bs.AuthTime
		for _, bad := range []string{"", "x", bs.ID.String() + ".", bs.ID.String() + "." + strings.Repeat("*", 43), "nope." + value[37:]} {
			if of(bad) != nil {
				t.Fatalf("%q names a session", bad)
			}
		}
		// Used every 23 hours it lives (idle limit 24 h) until its 30 days.
		for now.Sub(start) < 720*time.Hour-23*time.Hour {
			now = now.Add(23 * time.Hour)
			got := of(value)
			if got == nil || got.UserID != u.ID || !got.AuthTime.Equal(start) || len(got.AMR) != 1 || got.AMR[0] != "pwd" {
				t.Fatalf("at %s: %+v", now.Sub(start), got)
			}
		}
		now = start.Add(720*time.Hour + time.Minute)
		if of(value) != nil {
			t.Fatal("a session past its lifetime still signs in")
		}

		_, idle := open()
		now = now.Add(24*time.Hour + time.Minute)
		if of(idle) != nil {
			t.Fatal("a session idle beyond the policy still signs in")
		}

		_, live := open()
		disabled := directory.StatusDisabled
		ctx := principal.With(store.WithTenant(bg, f.t.ID), &principal.Principal{TenantID: f.t.ID, Kind: principal.KindUser,
			SubjectID: "admin", AdminRoles: []string{principal.RoleTenantAdmin}})
		if _, err := f.dir.UpdateUser(ctx, u.ID, directory.UpdateUserInput{Status: &disabled}, 0); err != nil {
			t.Fatal(err)
		}
		if of(live) != nil {
			t.Fatal("a disabled person's session still signs in")
		}
	})
}

// TestTransactions: a sign-in in progress is found by its id only at its
// tenant, until it expires or ends; it records the session the person
// signed in with; an oversized request is refused.
func TestTransactions(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		bg := context.Background()
		now := time.Now().UTC()
		f.svc.Now = func() time.Time { return now }
		other, err := f.tenants.Create(bg, tenant.CreateInput{Slug: "b-" + uuid.NewString()[:8], Name: "B"})
		if err != nil {
			t.Fatal(err)
		}
		x, err := f.svc.StartTransaction(bg, f.t, "authorize", "client_id=app-1&state=s", uuid.Nil)
		if err != nil || len(x.ID) != 43 {
			t.Fatalf("start: %+v %v", x, err)
		}
		got, err := f.svc.Transaction(bg, f.t, x.ID)
		if err != nil || got.Purpose != "authorize" || got.Request != "client_id=app-1&state=s" || got.SessionID != uuid.Nil {
			t.Fatalf("read: %+v %v", got, err)
		}
		for name, id := range map[string]string{"unknown": strings.Repeat("A", 43), "empty": "", "too long": strings.Repeat("A", 200)} {
			if _, err := f.svc.Transaction(bg, f.t, id); !errors.Is(err, auth.ErrNoTransaction) {
				t.Fatalf("%s id: %v", name, err)
			}
		}
		if _, err := f.svc.Transaction(bg, other, x.ID); !errors.Is(err, auth.ErrNoTransaction) {
			t.Fatalf("another tenant's transaction: %v", err)
		}
		sid := uuid.Must(uuid.NewV7())
		if err := f.svc.TransactionSignedIn(bg, other, got, sid); !errors.Is(err, auth.ErrNoTransaction) {
			t.Fatalf("signed in at another tenant: %v", err)
		}
		if err := f.svc.TransactionSignedIn(bg, f.t, got, sid); err != nil {
			t.Fatal(err)
		}
		if got, _ = f.svc.Transaction(bg, f.t, x.ID); got.SessionID != sid {
			t.Fatalf("session %v, want %v", got.SessionID, sid)
		}
		if err := f.svc.EndTransaction(bg, f.t, got); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Transaction(bg, f.t, x.ID); !errors.Is(err, auth.ErrNoTransaction) {
			t.Fatalf("an ended transaction: %v", err)
		}
		// Expiry.
		y, _ := f.svc.StartTransaction(bg, f.t, "device", "", uuid.Nil)
		now = now.Add(auth.TransactionLifetime + time.Second)
		if _, err := f.svc.Transaction(bg, f.t, y.ID); !errors.Is(err, auth.ErrNoTransaction) {
			t.Fatalf("an expired transaction: %v", err)
		}
		if err := f.svc.TransactionSignedIn(bg, f.t, y, sid); !errors.Is(err, auth.ErrNoTransaction) {
			t.Fatalf("signing in to an expired transaction: %v", err)
		}
		if _, err := f.svc.StartTransaction(bg, f.t, "authorize", strings.Repeat("x", 16<<10+1), uuid.Nil); apperr.KindOf(err) != apperr.KindInvalidArgument {
			t.Fatalf("an oversized request: %v", err)
		}
	})
}
