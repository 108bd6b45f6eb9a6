package bench

import (
	"context"
	"testing"

	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/identity/oauth"
	"github.com/xavyo/xavyo/identity/password"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/identity/token"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/seal"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

// BenchmarkClientCredentialsInProcess is the token endpoint's work
// without HTTP: authenticate the client (secret hash lookup) and mint.
func BenchmarkClientCredentialsInProcess(b *testing.B) {
	db := testdb.SQLite(b)
	ctx := context.Background()
	tenants := &tenant.Service{DB: db}
	tn, err := tenants.Create(ctx, tenant.CreateInput{Slug: "oauth-bench", Name: "B"})
	if err != nil {
		b.Fatal(err)
	}
	ctx = principal.With(store.WithTenant(ctx, tn.ID), &principal.Principal{TenantID: tn.ID, Kind: principal.KindUser,
		SubjectID: "admin", AdminRoles: []string{principal.RoleTenantAdmin}})
	dir := &directory.Service{DB: db, Hasher: password.NewHasher(password.Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 1), Policies: tenants}
	u, _ := dir.CreateUser(ctx, directory.CreateUserInput{Email: "o@x.test"})
	nhis := &nhi.Service{DB: db, Policies: tenants}
	a, err := nhis.Create(ctx, nhi.CreateInput{Kind: nhi.KindAgent, Slug: "a", Name: "A", OwnerID: u.ID})
	if err != nil {
		b.Fatal(err)
	}
	sealer, _ := seal.New(make([]byte, 32))
	tokens, _ := token.New(token.Config{DB: db, Sealer: sealer, Tenants: tenants, IssuerBase: "http://127.0.0.1:8080"})
	srv := oauth.New(oauth.Config{Tokens: tokens, NHIs: nhis, Tenants: tenants, DB: db, AdminURL: "http://127.0.0.1:8080", AgentURL: "https://127.0.0.1:8443"})
	b.Run("authenticate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := srv.Authenticate(ctx, a.ClientID, a.ClientSecret, "127.0.0.1"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("authenticate+mint", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, err := srv.Authenticate(ctx, a.ClientID, a.ClientSecret, "127.0.0.1")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := srv.ClientCredentials(ctx, "oauth-bench", c, nil, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
