package nhi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xavyo/xavyo/internal/audit"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/identity/password"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

type fixture struct {
	svc   *nhi.Service
	dir   *directory.Service
	ctx   context.Context
	owner uuid.UUID
	clock *time.Time
}

func setup(t *testing.T, db *store.DB) *fixture {
	t.Helper()
	tenants := &tenant.Service{DB: db, Audit: audit.Discard}
	tn, err := tenants.Create(context.Background(), tenant.CreateInput{Slug: "n-" + uuid.NewString()[:8], Name: "N"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := store.WithTenant(context.Background(), tn.ID)
	ctx = principal.With(ctx, &principal.Principal{TenantID: tn.ID, Kind: principal.KindUser, SubjectID: "admin", AdminRoles: []string{principal.RoleTenantAdmin}})
	dir := &directory.Service{DB: db, Audit: audit.Discard, Hasher: password.NewHasher(password.Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 1), Policies: tenants}
	u, err := dir.CreateUser(ctx, directory.CreateUserInput{Email: "owner@x.test"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	f := &fixture{dir: dir, ctx: ctx, owner: u.ID, clock: &now}
	f.svc = &nhi.Service{DB: db, Audit: audit.Discard, Policies: tenants, Users: dir, StdioAllowlist: []string{"/usr/bin/mcp-fs"}, Now: func() time.Time { return *f.clock }}
	return f
}

func TestCreateValidatesKindsAndOwners(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		good := []nhi.CreateInput{
			{Kind: nhi.KindAgent, Slug: "billing-bot", Name: "Billing bot", OwnerID: f.owner,
				Profile: nhi.Profile{Agent: &nhi.AgentProfile{ModelProvider: "acme", ModelName: "m1", RiskLevel: "high", Skills: []string{"invoices"}}}},
			{Kind: nhi.KindToolServer, Slug: "github", Name: "GitHub MCP", OwnerID: f.owner,
				Profile: nhi.Profile{ToolServer: &nhi.ToolServerProfile{Transport: "streamable_http", URL: "https://mcp.example.test/mcp"}}},
			{Kind: nhi.KindToolServer, Slug: "fs", Name: "Files", OwnerID: f.owner,
				Profile: nhi.Profile{ToolServer: &nhi.ToolServerProfile{Transport: "stdio", Command: "/usr/bin/mcp-fs"}}},
			{Kind: nhi.KindServiceAccount, Slug: "ci", Name: "CI", OwnerID: f.owner,
				Profile: nhi.Profile{ServiceAccount: &nhi.ServiceAccountProfile{Purpose: "deploys"}}},
		}
		for _, in := range good {
			c, err := f.svc.Create(f.ctx, in)
			if err != nil {
				t.Fatalf("%s: %v", in.Slug, err)
			}
			if !strings.HasPrefix(c.ClientSecret, "xvs_") || len(c.ClientSecret) < 40 || c.ClientID == "" || c.Status != nhi.StatusActive {
				t.Fatalf("%s: %+v", in.Slug, c)
			}
		}
		ghost := uuid.New()
		bad := map[string]nhi.CreateInput{
			"no owner":          {Kind: nhi.KindAgent, Slug: "a1", Name: "A"},
			"unknown owner":     {Kind: nhi.KindAgent, Slug: "a2", Name: "A", OwnerID: ghost},
			"bad kind":          {Kind: "robot", Slug: "a3", Name: "A", OwnerID: f.owner},
			"bad slug":          {Kind: nhi.KindAgent, Slug: "Bad_Slug", Name: "A", OwnerID: f.owner},
			"duplicate slug":    {Kind: nhi.KindAgent, Slug: "billing-bot", Name: "A", OwnerID: f.owner},
			"stdio not allowed": {Kind: nhi.KindToolServer, Slug: "sh", Name: "S", OwnerID: f.owner, Profile: nhi.Profile{ToolServer: &nhi.ToolServerProfile{Transport: "stdio", Command: "/bin/sh"}}},
			"url with creds":    {Kind: nhi.KindToolServer, Slug: "u", Name: "U", OwnerID: f.owner, Profile: nhi.Profile{ToolServer: &nhi.ToolServerProfile{Transport: "sse", URL: "https://u:p@x.test/"}}},
			"no purpose":        {Kind: nhi.KindServiceAccount, Slug: "sa", Name: "S", OwnerID: f.owner, Profile: nhi.Profile{ServiceAccount: &nhi.ServiceAccountProfile{}}},
			"two profiles":      {Kind: nhi.KindAgent, Slug: "tp", Name: "T", OwnerID: f.owner, Profile: nhi.Profile{Agent: &nhi.AgentProfile{}, ServiceAccount: &nhi.ServiceAccountProfile{Purpose: "x"}}},
			"bad risk level":    {Kind: nhi.KindAgent, Slug: "rl", Name: "R", OwnerID: f.owner, Profile: nhi.Profile{Agent: &nhi.AgentProfile{RiskLevel: "extreme"}}},
		}
		for name, in := range bad {
			if _, err := f.svc.Create(f.ctx, in); err == nil {
				t.Errorf("%s: accepted", name)
			} else if k := apperr.KindOf(err); k != apperr.KindInvalidArgument && k != apperr.KindAlreadyExists {
				t.Errorf("%s: %v", name, err)
			}
		}
	})
}

func TestLifecycleTransitions(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		c, err := f.svc.Create(f.ctx, nhi.CreateInput{Kind: nhi.KindAgent, Slug: "bot", Name: "Bot", OwnerID: f.owner})
		if err != nil {
			t.Fatal(err)
		}
		step := func(to string, ok bool) {
			t.Helper()
			_, err := f.svc.Transition(f.ctx, c.ID, nhi.TransitionInput{Status: to, Reason: "test " + to}, 0)
			if (err == nil) != ok {
				t.Fatalf("→ %s: err=%v, want ok=%v", to, err, ok)
			}
			if err != nil && apperr.KindOf(err) != apperr.KindConflict {
				t.Fatalf("→ %s: %v", to, err)
			}
		}
		step(nhi.StatusArchived, false) // active → archived is not allowed
		step(nhi.StatusSuspended, true)
		step(nhi.StatusActive, true)
		step(nhi.StatusDeprecated, true)
		step(nhi.StatusSuspended, false)
		step(nhi.StatusArchived, true)
		step(nhi.StatusActive, false) // archived is final
		if _, err := f.svc.Transition(f.ctx, c.ID, nhi.TransitionInput{Status: nhi.StatusActive}, 0); apperr.KindOf(err) != apperr.KindInvalidArgument {
			t.Fatalf("missing reason: %v", err)
		}
		// An NHI whose owner left cannot be reactivated.
		d, _ := f.svc.Create(f.ctx, nhi.CreateInput{Kind: nhi.KindAgent, Slug: "orphan", Name: "O", OwnerID: f.owner})
		if _, err := f.svc.Transition(f.ctx, d.ID, nhi.TransitionInput{Status: nhi.StatusInactive, Reason: "pause"}, 0); err != nil {
			t.Fatal(err)
		}
		if err := f.dir.DeleteUser(f.ctx, f.owner, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Transition(f.ctx, d.ID, nhi.TransitionInput{Status: nhi.StatusActive, Reason: "resume"}, 0); apperr.KindOf(err) != apperr.KindConflict {
			t.Fatalf("owner-less activation: %v", err)
		}
		rep, err := f.svc.Orphaned(f.ctx)
		if err != nil || len(rep.Items) != 1 || rep.Items[0].ID != d.ID {
			t.Fatalf("orphaned report: %+v %v", rep, err)
		}
		var ownerPoints int
		for _, x := range rep.Items[0].RiskFactors {
			if x.Factor == "owner" {
				ownerPoints = x.Points
			}
		}
		if ownerPoints != 30 {
			t.Fatalf("missing owner not scored: %+v", rep.Items[0].RiskFactors)
		}
	})
}

func TestSecretRotationGracePeriod(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		c, err := f.svc.Create(f.ctx, nhi.CreateInput{Kind: nhi.KindServiceAccount, Slug: "svc", Name: "Svc", OwnerID: f.owner,
			Profile: nhi.Profile{ServiceAccount: &nhi.ServiceAccountProfile{Purpose: "sync"}}})
		if err != nil {
			t.Fatal(err)
		}
		verify := func(secret string) bool {
			n, err := f.svc.VerifySecret(f.ctx, c.ClientID, secret)
			return err == nil && n.ID == c.ID
		}
		if !verify(c.ClientSecret) || verify(c.ClientSecret+"x") || verify(nhi.NewSecret()) {
			t.Fatal("initial secret check")
		}
		r, err := f.svc.RotateSecret(f.ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !verify(c.ClientSecret) || !verify(r.ClientSecret) {
			t.Fatal("both secrets must work during the grace period")
		}
		*f.clock = f.clock.Add(25 * time.Hour) // past the 24 h default grace
		if verify(c.ClientSecret) {
			t.Fatal("the old secret outlived its grace period")
		}
		if !verify(r.ClientSecret) {
			t.Fatal("the new secret stopped working")
		}
		// The new secret (90-day lifetime) is announced once when a week is
		// left. (Other tests' tenants share the PostgreSQL database: count
		// this tenant's notices.)
		notices := func() int {
			var n int
			_ = db.InTenantRead(f.ctx, func(tx *store.Tx) error {
				return tx.QueryRow(f.ctx, `SELECT COUNT(*) FROM outbox WHERE tenant_id = $1 AND kind = $2`, tx.TenantID(), nhi.ExpiringEvent).Scan(&n)
			})
			return n
		}
		if _, err := f.svc.NotifyExpiring(f.ctx, 7*24*time.Hour); err != nil || notices() != 0 {
			t.Fatalf("early notice: %d %v", notices(), err)
		}
		*f.clock = f.clock.Add(84 * 24 * time.Hour)
		if _, err := f.svc.NotifyExpiring(f.ctx, 7*24*time.Hour); err != nil || notices() != 1 {
			t.Fatalf("notice: %d %v", notices(), err)
		}
		if _, _ = f.svc.NotifyExpiring(f.ctx, 7*24*time.Hour); notices() != 1 {
			t.Fatal("announced twice")
		}
		*f.clock = f.clock.Add(-84 * 24 * time.Hour)
		secrets, _ := f.svc.Secrets(f.ctx, c.ID)
		if len(secrets) != 2 || !secrets[0].Active || secrets[1].Active {
			t.Fatalf("secret list: %+v", secrets)
		}
		if _, err := f.svc.Transition(f.ctx, c.ID, nhi.TransitionInput{Status: nhi.StatusSuspended, Reason: "leak"}, 0); err != nil {
			t.Fatal(err)
		}
		if verify(r.ClientSecret) {
			t.Fatal("a suspended NHI's secret still authenticates")
		}
	})
}

func TestObjectPermissions(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		c, _ := f.svc.Create(f.ctx, nhi.CreateInput{Kind: nhi.KindAgent, Slug: "p", Name: "P", OwnerID: f.owner})
		other, _ := f.dir.CreateUser(f.ctx, directory.CreateUserInput{Email: "other@x.test"})
		tid, _ := store.TenantFrom(f.ctx)
		as := principal.With(f.ctx, &principal.Principal{TenantID: tid, Kind: principal.KindUser, SubjectID: other.ID.String()})
		if _, err := f.svc.Get(as, c.ID); apperr.KindOf(err) != apperr.KindNotFound {
			t.Fatalf("a stranger saw the NHI: %v", err)
		}
		if items, _, _ := f.svc.List(as, nhi.ListOptions{}); len(items) != 0 {
			t.Fatal("a stranger listed the NHI")
		}
		if _, err := f.svc.Grant(f.ctx, c.ID, nhi.GrantInput{UserID: other.ID, Permission: nhi.PermUse}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Get(as, c.ID); err != nil {
			t.Fatalf("use permission cannot read: %v", err)
		}
		if _, err := f.svc.RotateSecret(as, c.ID); apperr.KindOf(err) != apperr.KindPermissionDenied {
			t.Fatalf("use permission rotated a secret: %v", err)
		}
		if _, err := f.svc.Grant(f.ctx, c.ID, nhi.GrantInput{UserID: other.ID, Permission: nhi.PermManage}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.RotateSecret(as, c.ID); err != nil {
			t.Fatalf("manage permission: %v", err)
		}
		if _, err := f.svc.Transition(as, c.ID, nhi.TransitionInput{Status: nhi.StatusSuspended, Reason: "x"}, 0); apperr.KindOf(err) != apperr.KindPermissionDenied {
			t.Fatalf("manage permission changed the lifecycle: %v", err)
		}
	})
}

func TestClientKeys(t *testing.T) {
	f := setup(t, testdb.SQLite(t))
	c, _ := f.svc.Create(f.ctx, nhi.CreateInput{Kind: nhi.KindAgent, Slug: "k", Name: "K", OwnerID: f.owner})
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := jose.JSONWebKey{Key: ec.Public(), KeyID: "k1", Use: "sig"}.MarshalJSON()
	priv, _ := jose.JSONWebKey{Key: ec, KeyID: "k2"}.MarshalJSON()
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	weakJSON, _ := jose.JSONWebKey{Key: weak.Public(), KeyID: "k3"}.MarshalJSON()
	out, err := f.svc.SetClientKeys(f.ctx, c.ID, nhi.ClientKeysInput{Keys: json.RawMessage("[" + string(pub) + "]")})
	if err != nil || !strings.Contains(string(out.Keys), `"kid":"k1"`) {
		t.Fatalf("%v %v", out, err)
	}
	for name, keys := range map[string]string{
		"private key": "[" + string(priv) + "]", "weak RSA": "[" + string(weakJSON) + "]", "duplicate kid": "[" + string(pub) + "," + string(pub) + "]",
		"not an array": `{"kty":"EC"}`, "garbage": `[{"kty":"nope"}]`,
	} {
		if _, err := f.svc.SetClientKeys(f.ctx, c.ID, nhi.ClientKeysInput{Keys: json.RawMessage(keys)}); apperr.KindOf(err) != apperr.KindInvalidArgument {
			t.Errorf("%s: %v", name, err)
		}
	}
}
