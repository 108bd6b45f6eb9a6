package bench

import (
	"context"
	"testing"

	"github.com/xavyo/xavyo/internal/audit"

	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/identity/password"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

// agentFixture is an embedded store with a tenant, its admin's context and
// one registered agent.
type agentFixture struct {
	db      *store.DB
	ctx     context.Context
	tenants *tenant.Service
	nhis    *nhi.Service
	agent   *nhi.Created
}

func newAgentFixture(b *testing.B, slug string) *agentFixture {
	b.Helper()
	f := &agentFixture{db: testdb.SQLite(b)}
	f.tenants = &tenant.Service{DB: f.db, Audit: audit.Discard}
	tn, err := f.tenants.Create(context.Background(), tenant.CreateInput{Slug: slug, Name: "Bench"})
	if err != nil {
		b.Fatal(err)
	}
	f.ctx = principal.With(store.WithTenant(context.Background(), tn.ID), &principal.Principal{TenantID: tn.ID, Kind: principal.KindUser,
		SubjectID: "admin", AdminRoles: []string{principal.RoleTenantAdmin}})
	dir := &directory.Service{DB: f.db, Audit: audit.Discard, Hasher: password.NewHasher(password.Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 1),
		Policies: f.tenants}
	u, err := dir.CreateUser(f.ctx, directory.CreateUserInput{Email: "owner@bench.test"})
	if err != nil {
		b.Fatal(err)
	}
	f.nhis = &nhi.Service{DB: f.db, Policies: f.tenants, Audit: audit.Discard, Users: dir}
	if f.agent, err = f.nhis.Create(f.ctx, nhi.CreateInput{Kind: nhi.KindAgent, Slug: "agent", Name: "Agent", OwnerID: u.ID}); err != nil {
		b.Fatal(err)
	}
	return f
}
