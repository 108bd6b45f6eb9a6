package oauth_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/identity/oauth"
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

const (
	adminURL = "http://127.0.0.1:8080"
	agentURL = "https://127.0.0.1:8443"
)

// syncBuffer is a log sink tests read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	srv     *oauth.Server
	tenants *tenant.Service
	tokens  *token.Service
	nhis    *nhi.Service
	db      *store.DB
	ctx     context.Context
	slug    string
	agent   *nhi.Created
	logs    *syncBuffer
}

// setup makes a tenant with an agent (its client secret in f.agent) and a
// tool server "github", and the issuer over them.
func setup(t *testing.T, db *store.DB) *fixture {
	t.Helper()
	tenants := &tenant.Service{DB: db, Audit: audit.Discard}
	slug := "o-" + uuid.NewString()[:8]
	tn, err := tenants.Create(context.Background(), tenant.CreateInput{Slug: slug, Name: "O"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := store.WithTenant(context.Background(), tn.ID)
	ctx = principal.With(ctx, &principal.Principal{TenantID: tn.ID, Kind: principal.KindUser, SubjectID: "admin",
		AdminRoles: []string{principal.RoleTenantAdmin}})
	dir := &directory.Service{DB: db, Audit: audit.Discard, Policies: tenants,
		Hasher: password.NewHasher(password.Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 1)}
	owner, err := dir.CreateUser(ctx, directory.CreateUserInput{Email: "owner@o.test"})
	if err != nil {
		t.Fatal(err)
	}
	nhis := &nhi.Service{DB: db, Audit: audit.Discard, Policies: tenants, Users: dir}
	agent, err := nhis.Create(ctx, nhi.CreateInput{Kind: nhi.KindAgent, Slug: "billing-bot", Name: "Billing bot", OwnerID: owner.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nhis.Create(ctx, nhi.CreateInput{Kind: nhi.KindToolServer, Slug: "github", Name: "GitHub", OwnerID: owner.ID,
		Profile: nhi.Profile{ToolServer: &nhi.ToolServerProfile{Transport: "streamable_http", URL: "https://mcp.example.test/mcp"}}}); err != nil {
		t.Fatal(err)
	}
	sealer, _ := seal.New(make([]byte, 32))
	tokens, err := token.New(token.Config{DB: db, Sealer: sealer, Tenants: tenants, IssuerBase: adminURL})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv := oauth.New(oauth.Config{Tokens: tokens, NHIs: nhis, Tenants: tenants, DB: db, AdminURL: adminURL, AgentURL: agentURL,
		Audit: audit.Discard, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	return &fixture{srv: srv, tenants: tenants, tokens: tokens, nhis: nhis, db: db, ctx: ctx, slug: slug, agent: agent, logs: logs}
}

func oauthCode(err error) string {
	var oe *oauth.Error
	if errors.As(err, &oe) {
		return oe.Code
	}
	return ""
}

// TestClientCredentials: a client authenticates with its secret and gets
// a token for exactly the resources it names, of this tenant only, with
// no scope it does not hold; wrong secrets are refused alike and, once
// too many, slowed down.
func TestClientCredentials(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		c, err := f.srv.Authenticate(f.ctx, f.agent.ClientID, f.agent.ClientSecret, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		mcp := agentURL + "/t/" + f.slug + "/mcp"
		out, err := f.srv.ClientCredentials(f.ctx, f.slug, c, []string{"mcp"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		claims, err := f.tokens.Verify(f.ctx, out.AccessToken, token.Expect{Audience: mcp})
		if err != nil {
			t.Fatalf("the token for the default resource: %v", err)
		}
		if claims.Subject != f.agent.ID.String() || claims.Scope != "mcp" || claims.ClientID != f.agent.ClientID {
			t.Fatalf("claims: %+v", claims)
		}
		if _, err := f.tokens.Verify(f.ctx, out.AccessToken, token.Expect{Audience: mcp + "/github"}); err == nil {
			t.Fatal("a token for the aggregate endpoint accepted by a server's endpoint")
		}
		out, err = f.srv.ClientCredentials(f.ctx, f.slug, c, nil, []string{mcp + "/github"})
		if err != nil {
			t.Fatalf("a tool server of the tenant as resource: %v", err)
		}
		if _, err := f.tokens.Verify(f.ctx, out.AccessToken, token.Expect{Audience: mcp + "/github"}); err != nil {
			t.Fatal(err)
		}
		for _, bad := range [][]string{{mcp + "/nope"}, {agentURL + "/t/other/mcp"}, {"https://evil.example/mcp"}, {mcp + "?x=1"}} {
			if _, err := f.srv.ClientCredentials(f.ctx, f.slug, c, nil, bad); oauthCode(err) != "invalid_target" {
				t.Errorf("resource %v: %v", bad, err)
			}
		}
		if _, err := f.srv.ClientCredentials(f.ctx, f.slug, c, []string{"mcp", "admin"}, nil); oauthCode(err) != "invalid_scope" {
			t.Errorf("a scope the client does not hold: %v", err)
		}
		// Wrong or missing secrets: one answer, then slowed down.
		for i, secret := range []string{"xvs_wrong", "", f.agent.ClientSecret + "x"} {
			if _, err := f.srv.Authenticate(f.ctx, f.agent.ClientID, secret, "10.0.0.9"); !errors.Is(err, oauth.ErrInvalidClient) {
				t.Fatalf("bad secret %d: %v", i, err)
			}
		}
		if _, err := f.srv.Authenticate(f.ctx, "no-such-client", "xvs_x", "10.0.0.9"); !errors.Is(err, oauth.ErrInvalidClient) {
			t.Fatalf("unknown client: %v", err)
		}
		var slowed bool
		for range 20 {
			if _, err := f.srv.Authenticate(f.ctx, f.agent.ClientID, "xvs_wrong", "10.0.0.9"); errors.Is(err, oauth.ErrSlowDown) {
				slowed = true
				break
			}
		}
		if !slowed {
			t.Fatal("repeated failures were not slowed down")
		}
		if _, err := f.srv.Authenticate(f.ctx, f.agent.ClientID, f.agent.ClientSecret, "10.0.0.9"); !errors.Is(err, oauth.ErrSlowDown) {
			t.Fatalf("the right secret from a throttled address: %v", err)
		}
		if _, err := f.srv.Authenticate(f.ctx, f.agent.ClientID, f.agent.ClientSecret, "10.0.0.10"); err != nil {
			t.Fatalf("another address is not throttled: %v", err)
		}
	})
}

// TestStoreFailuresAreNotAnswersAboutClients: with the store gone, client
// authentication and resource checks say "try again later" (503), never
// "invalid client" or "unknown resource"; the cause of every 5xx answer is
// logged, and 4xx answers log nothing.
func TestStoreFailuresAreNotAnswersAboutClients(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		c, err := f.srv.Authenticate(f.ctx, f.agent.ClientID, f.agent.ClientSecret, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if e := f.srv.Render(f.ctx, oauth.ErrInvalidClient); e.Status != 401 || f.logs.String() != "" {
			t.Fatalf("a 4xx: %+v, logged %q", e, f.logs.String())
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := f.srv.Authenticate(f.ctx, f.agent.ClientID, f.agent.ClientSecret, "127.0.0.2"); !errors.Is(err, oauth.ErrUnavailable) &&
			apperr.KindOf(err) != apperr.KindUnavailable {
			t.Fatalf("authentication with the store gone: %v", err)
		}
		_, err = f.srv.ClientCredentials(f.ctx, f.slug, c, nil, []string{agentURL + "/t/" + f.slug + "/mcp/github"})
		if e := f.srv.Render(f.ctx, err); e.Status != 503 || e.Code != "temporarily_unavailable" {
			t.Fatalf("a resource check with the store gone: %+v (%v)", e, err)
		}
		if !strings.Contains(f.logs.String(), "issuer request failed") {
			t.Fatalf("the cause of a 503 was not logged: %q", f.logs.String())
		}
		if e := f.srv.Render(f.ctx, errors.New("secret internal detail")); e.Status != 500 || strings.Contains(e.Description, "secret") {
			t.Fatalf("an internal error: %+v", e)
		}
		if !strings.Contains(f.logs.String(), "secret internal detail") {
			t.Fatal("an internal error's cause was not logged")
		}
	})
}
