package app

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	_ "embed" // the docs page's renderer
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/xavyo/xavyo/a2a"
	a2arest "github.com/xavyo/xavyo/a2a/rest"
	"github.com/xavyo/xavyo/gateway"
	"github.com/xavyo/xavyo/governance"
	govrest "github.com/xavyo/xavyo/governance/rest"
	"github.com/xavyo/xavyo/identity/account"
	accountrest "github.com/xavyo/xavyo/identity/account/rest"
	"github.com/xavyo/xavyo/identity/apikey"
	apikeyrest "github.com/xavyo/xavyo/identity/apikey/rest"
	"github.com/xavyo/xavyo/identity/auth"
	authrest "github.com/xavyo/xavyo/identity/auth/rest"
	"github.com/xavyo/xavyo/identity/bootstrap"
	"github.com/xavyo/xavyo/identity/directory"
	directoryrest "github.com/xavyo/xavyo/identity/directory/rest"
	"github.com/xavyo/xavyo/identity/federation"
	fedrest "github.com/xavyo/xavyo/identity/federation/rest"
	"github.com/xavyo/xavyo/identity/mfa"
	mfarest "github.com/xavyo/xavyo/identity/mfa/rest"
	"github.com/xavyo/xavyo/identity/nhi"
	nhirest "github.com/xavyo/xavyo/identity/nhi/rest"
	"github.com/xavyo/xavyo/identity/oauth"
	oauthrest "github.com/xavyo/xavyo/identity/oauth/rest"
	"github.com/xavyo/xavyo/identity/password"
	"github.com/xavyo/xavyo/identity/saml"
	samlrest "github.com/xavyo/xavyo/identity/saml/rest"
	"github.com/xavyo/xavyo/identity/tenant"
	tenantrest "github.com/xavyo/xavyo/identity/tenant/rest"
	"github.com/xavyo/xavyo/identity/token"
	"github.com/xavyo/xavyo/internal/audit"
	auditrest "github.com/xavyo/xavyo/internal/audit/rest"
	"github.com/xavyo/xavyo/internal/config"
	"github.com/xavyo/xavyo/internal/devtls"
	"github.com/xavyo/xavyo/internal/dpop"
	"github.com/xavyo/xavyo/internal/egress"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/health"
	"github.com/xavyo/xavyo/internal/httpx"
	"github.com/xavyo/xavyo/internal/idempotency"
	"github.com/xavyo/xavyo/internal/mail"
	"github.com/xavyo/xavyo/internal/seal"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/mcp"
	mcprest "github.com/xavyo/xavyo/mcp/rest"
	"github.com/xavyo/xavyo/pki"
	pkirest "github.com/xavyo/xavyo/pki/rest"
	"github.com/xavyo/xavyo/webhooks"
	webhooksrest "github.com/xavyo/xavyo/webhooks/rest"
)

// Config is what New needs: every field is required except FetchRoots.
type Config struct {
	// Config is the loaded, validated configuration (config.Load). New
	// fills in the planes' public URLs when they are unset.
	Config *config.Config
	Logger *slog.Logger
	// Out receives the start-up banner (addresses, the bootstrap token
	// and the first admin's password, each shown once).
	Out     io.Writer
	Version string
	// FetchRoots, when set, replace the system roots for the documents
	// xavyo fetches on a client's behalf (client metadata documents, agent
	// cards): for a deployment whose clients publish them under a private
	// CA.
	FetchRoots *x509.CertPool
}

func (c Config) validate() error {
	switch {
	case c.Config == nil:
		return errors.New("app: Config is required")
	case c.Logger == nil:
		return errors.New("app: Logger is required")
	case c.Out == nil:
		return errors.New("app: Out is required")
	case c.Version == "":
		return errors.New("app: Version is required")
	}
	return nil
}

// App is one running xavyo process: both planes and the workers. New
// builds every service from the validated configuration; nothing is
// changed after construction. Run serves; every background loop runs
// under one supervisor.
type App struct {
	cfg     *config.Config
	log     *slog.Logger
	out     io.Writer
	version string

	db       *store.DB
	seq      *audit.Sequencer
	bus      *events.Bus
	outbox   *events.Outbox
	admin    *fiber.App
	api      *httpx.API
	agent    *gateway.Server
	adminLn  net.Listener
	agentLn  net.Listener
	tenants  *tenant.Service
	boot     *bootstrap.Service
	tokens   *token.Service
	auth     *auth.Service
	dir      *directory.Service
	nhis     *nhi.Service
	ca       *pki.CA
	gov      *governance.Service
	oauth    *oauth.Server
	engine   *governance.Engine
	handlers *events.InProcess
	certs    *pki.Verifier
	hasher   *password.Hasher
	mcp      *mcp.Gateway
	webhooks *webhooks.Service
	exports  *audit.Exporter
	saml     *saml.Service
	feds     *federation.Service
	idem     *idempotency.Store
	enforcer *gateway.Enforcer
	bootNote string
	firstAdm *auth.TenantWithAdmin

	// The audit sequencer runs from construction (start-up writes audit
	// records) until the very end of shutdown.
	stopAudit func()
	auditDone chan struct{}
}

// New opens the store, prepares keys, binds both listeners and
// builds both planes; Run serves them.
func New(ctx context.Context, c Config) (_ *App, err error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	cfg, log, version := c.Config, c.Logger, c.Version
	s := &App{cfg: cfg, log: log, out: c.Out, version: version}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	sealer, generated, err := seal.Load(cfg.Secrets.KEK, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if generated && cfg.IsPostgres() {
		log.Warn("generated a key-encryption key in the data dir; replicas sharing this database need the same secrets.kek",
			"path", filepath.Join(cfg.DataDir, "kek"))
	}
	if s.db, err = OpenStore(ctx, cfg, log); err != nil {
		return nil, err
	}
	want, err := schemaSteps(cfg)
	if err != nil {
		return nil, err
	}
	checker := &health.Checker{DB: s.db, Schema: want}

	if s.seq, err = audit.New(audit.Config{DB: s.db, Logger: log, DiskDurable: cfg.Audit.Durability == "disk"}); err != nil {
		return nil, err
	}
	auditCtx, stopAudit := context.WithCancel(context.WithoutCancel(ctx))
	s.stopAudit, s.auditDone = stopAudit, make(chan struct{})
	// The sequencer runs outside the supervisor, from construction (start-up
	// writes audit records) to the very end of Close; if it stops early,
	// changes that need the log fail, and it says so.
	go func() {
		defer close(s.auditDone)
		if err := s.seq.Run(auditCtx); err != nil && auditCtx.Err() == nil {
			log.Error("the audit sequencer stopped: changes that need the audit log will fail", "error", err)
		}
	}()
	s.bus = events.NewBus(s.db, log)
	s.handlers = &events.InProcess{}
	if s.outbox, err = events.NewOutbox(events.OutboxConfig{DB: s.db, Dispatcher: s.handlers, Bus: s.bus, Logger: log}); err != nil {
		return nil, err
	}
	s.tenants = &tenant.Service{DB: s.db, Audit: s.seq, OperatorSlug: cfg.Platform.OperatorTenant}
	s.tenants.Watch(s.bus)
	s.boot = &bootstrap.Service{DB: s.db, Audit: s.seq}
	s.hasher = password.NewHasher(password.Default, 0)

	if s.adminLn, err = net.Listen("tcp", cfg.Admin.Addr); err != nil {
		return nil, fmt.Errorf("admin plane: %w", err)
	}
	if s.agentLn, err = net.Listen("tcp", cfg.Agent.Addr); err != nil {
		return nil, fmt.Errorf("agent plane: %w", err)
	}
	if cfg.Admin.PublicURL == "" {
		cfg.Admin.PublicURL = "http://" + s.adminLn.Addr().String()
	}
	if cfg.Agent.PublicURL == "" {
		scheme := "https://"
		if cfg.Agent.TLS.Plaintext {
			scheme = "http://"
		}
		cfg.Agent.PublicURL = scheme + s.agentLn.Addr().String()
	}
	if cfg.Agent.TLS.Plaintext {
		log.Warn("the agent plane serves plain HTTP (agent.tls.plaintext): run it only behind a TLS-terminating proxy; client certificates are unavailable")
	}

	// Identity: tokens, the directory, sign-in.
	var nonces *dpop.Nonces
	if cfg.DPoP.RequireNonce {
		nonces = &dpop.Nonces{Key: sealer.Derive("xavyo dpop nonces v1")}
	}
	if s.tokens, err = token.New(token.Config{DB: s.db, Sealer: sealer, Tenants: s.tenants, IssuerBase: cfg.Admin.PublicURL, Logger: log,
		DPoPNonces: nonces}); err != nil {
		return nil, err
	}
	s.tokens.Watch(s.bus)
	if err := s.tokens.LoadRevocations(ctx); err != nil {
		return nil, err
	}
	sessions, err := auth.NewSessions(s.tokens)
	if err != nil {
		return nil, err
	}
	s.dir = &directory.Service{DB: s.db, Hasher: s.hasher, Policies: s.tenants, Audit: s.seq, Operators: s.tenants, Sessions: sessions}
	rpID, rpOrigins := cfg.WebAuthn.RelyingParty(cfg.Admin.PublicURL)
	factors := &mfa.Service{DB: s.db, Sealer: sealer, Audit: s.seq, RP: mfa.RelyingParty{ID: rpID, Origins: rpOrigins}, Groups: s.dir.GroupsAboveTx}
	samlFetch, err := egress.New(egress.Config{AllowPrivate: cfg.Egress.AllowPrivate, Timeout: 10 * time.Second, MaxResponseBytes: 256 << 10})
	if err != nil {
		return nil, err
	}
	s.saml = &saml.Service{DB: s.db, Sealer: sealer, Audit: s.seq, Fetch: samlFetch,
		Entitlements: func(ctx context.Context, id uuid.UUID) error { _, err := s.gov.GetEntitlement(ctx, id); return err }}
	// Upstream identity providers: people sign in through their
	// organization's; those it links may be barred from passwords.
	fedClient, err := egress.New(egress.Config{AllowPrivate: cfg.Egress.AllowPrivate, Timeout: 10 * time.Second, MaxResponseBytes: 256 << 10,
		RootCAs: c.FetchRoots})
	if err != nil {
		return nil, err
	}
	s.feds = &federation.Service{DB: s.db, Sealer: sealer, Audit: s.seq, Directory: s.dir, Client: fedClient,
		Groups: func(ctx context.Context, id uuid.UUID) error { _, err := s.dir.GetGroup(ctx, id); return err },
		// As a SAML service provider: the tenant's SAML key and replay
		// records; an upstream's single logout ends sessions.
		SAMLKey: func(ctx context.Context) (*rsa.PrivateKey, *x509.Certificate, error) {
			tid, _ := store.TenantFrom(ctx)
			t, err := s.tenants.Get(ctx, tid)
			if err != nil {
				return nil, nil, err
			}
			k, _, err := s.saml.Keys(ctx, t.Name)
			if err != nil {
				return nil, nil, err
			}
			return k.Private, k.Certificate, nil
		},
		Replay: func(ctx context.Context, id string, until time.Time) error { return s.saml.Consume(ctx, id, until) },
		EndSession: func(ctx context.Context, session, _ uuid.UUID) error {
			return s.db.InTenantTx(ctx, func(tx *store.Tx) error { return sessions.EndTx(ctx, tx, session, "upstream single logout") })
		}}
	s.auth = &auth.Service{DB: s.db, Tenants: s.tenants, Directory: s.dir, Tokens: s.tokens, Hasher: s.hasher, SessionStore: sessions, Audit: s.seq,
		MFA: factors, Passwords: s.feds}
	s.nhis = &nhi.Service{DB: s.db, Audit: s.seq, Policies: s.tenants, Users: s.dir, StdioAllowlist: cfg.MCP.StdioAllowlist}
	if s.ca, err = pki.New(ctx, pki.Config{DB: s.db, Sealer: sealer, TrustDomain: cfg.PKI.TrustDomain,
		CRLURL: cfg.Agent.PublicURL + "/pki/crl", Audit: s.seq, Logger: log}); err != nil {
		return nil, err
	}
	s.certs = &pki.Verifier{DB: s.db, NHIs: s.nhis}
	s.certs.Watch(s.bus)
	s.engine = &governance.Engine{DB: s.db, People: s.dir, Agents: s.nhis, Log: log}
	s.gov = &governance.Service{DB: s.db, Audit: s.seq, Engine: s.engine, People: s.dir, Agents: s.nhis, Tenants: s.tenants}
	s.engine.Watch(s.bus)

	s.handlers.Handle(nhi.EventKind, s.gov.OnNHIEvent(s.nhis))

	// Admin tokens hold their subjects' current roles.
	keys := &apikey.Service{DB: s.db, Audit: s.seq, NHI: func(ctx context.Context, id uuid.UUID) error { _, err := s.nhis.Lookup(ctx, id); return err }}
	keys.Watch(s.bus)
	adminAuth, err := auth.NewAuthenticator(auth.AuthenticatorConfig{Tokens: s.tokens, Users: s.dir, NHIs: s.nhis, Operators: s.tenants, Keys: keys})
	if err != nil {
		return nil, err
	}
	adminAuth.Watch(s.bus)

	// The admin plane.
	if s.idem, err = idempotency.New(idempotency.Config{DB: s.db, Logger: log}); err != nil {
		return nil, err
	}
	s.admin = httpx.NewApp(httpx.AppConfig{Logger: log, BodyLimit: cfg.Admin.BodyLimit})
	mountHealth(s.admin, checker.Ready)
	s.api = httpx.NewAPI(s.admin, httpx.APIConfig{
		Prefix: "/api/v1", Title: "xavyo admin API", Version: version,
		Authenticators: []httpx.Authenticator{s.boot, adminAuth},
		Tenants:        s.tenants,
		StepUp:         s.tenants,
		CrossTenant:    s.seq,
		Idempotency:    s.idem,
	})
	(&tenantrest.Handler{Tenants: s.tenants, Onboard: s.auth}).Mount(s.api)
	(&directoryrest.Handler{Directory: s.dir}).Mount(s.api)
	authHandler := &authrest.Handler{Auth: s.auth, Directory: s.dir, Tenants: s.tenants, Tokens: s.tokens}
	authHandler.Mount(s.api)
	authHandler.MountIssuer(s.admin)
	(&nhirest.Handler{NHIs: s.nhis}).Mount(s.api)
	(&pkirest.Handler{CA: s.ca, NHIs: s.nhis}).Mount(s.api)
	(&govrest.Handler{Gov: s.gov, Auth: &governance.Authorizer{Engine: s.engine, Audit: s.seq}}).Mount(s.api)
	fetch, err := egress.New(egress.Config{AllowPrivate: cfg.Egress.AllowPrivate, Timeout: 5 * time.Second, MaxResponseBytes: 64 << 10,
		RootCAs: c.FetchRoots})
	if err != nil {
		return nil, err
	}
	// holds says whether a person (and the agent acting for them, unless
	// uuid.Nil) holds an entitlement now: SAML service providers and
	// ID-JAG resource servers are guarded by one.
	holds := func(ctx context.Context, tenant, user, agent, ent uuid.UUID) (bool, error) {
		snap, err := s.engine.Snapshot(ctx, tenant)
		if err != nil {
			return false, err
		}
		var actor *governance.Subject
		if agent != uuid.Nil {
			actor = &governance.Subject{Type: governance.SubjectNHI, ID: agent}
		}
		return snap.Permits(governance.Subject{Type: governance.SubjectUser, ID: user}, actor, ent, time.Now()), nil
	}
	s.oauth = oauth.New(oauth.Config{Tokens: s.tokens, NHIs: s.nhis, Tenants: s.tenants, DB: s.db, Logger: log,
		AdminURL: cfg.Admin.PublicURL, AgentURL: cfg.Agent.PublicURL, Audit: s.seq, Auth: s.auth, Fetch: fetch,
		PairwiseKey: sealer.Derive("xavyo oidc pairwise subjects v1"),
		RedeemIDJAG: func(ctx context.Context, raw, audience, clientID string) (*oauth.IdentityGrant, error) {
			g, err := s.feds.RedeemIDJAG(ctx, raw, audience, clientID)
			if err != nil {
				return nil, err
			}
			return &oauth.IdentityGrant{User: g.User, Scope: g.Scope, Resource: g.Resource, AMR: g.AMR, AuthTime: g.AuthTime}, nil
		},
		Entitlements: func(ctx context.Context, id uuid.UUID) error { _, err := s.gov.GetEntitlement(ctx, id); return err },
		Access:       holds,
		Email: func(ctx context.Context, user uuid.UUID) (string, error) {
			u, err := s.dir.GetUser(ctx, user)
			if err != nil {
				return "", err
			}
			return u.Email, nil
		}})
	authHandler.Subjects = s.oauth
	// The sign-in pages every flow that needs a person goes through.
	pages := &authrest.Pages{Auth: s.auth, Tenants: s.tenants, Issuer: s.oauth.Issuer, MFA: factors, Upstreams: s.feds}
	(&mfarest.Handler{MFA: factors, Directory: s.dir, Tenants: s.tenants}).Mount(s.api)
	(&apikeyrest.Handler{Keys: keys}).Mount(s.api)
	pages.Mount(s.admin)
	oh := &oauthrest.Handler{Server: s.oauth, Tenants: s.tenants, AgentURL: cfg.Agent.PublicURL, Auth: s.auth,
		Admin: adminAuth, Pages: pages}
	oh.Mount(s.admin)
	oh.MountClients(s.api)
	// SAML: each tenant's identity provider; access to a service provider
	// is an entitlement, decided like any other.
	samlIdP := &samlrest.Handler{SAML: s.saml,
		Tenants: s.tenants, Pages: pages, Issuer: s.oauth.Issuer, Audit: s.seq, Users: s.dir.GetUser, End: s.auth.EndBrowserSession, Log: log,
		Groups: func(ctx context.Context, user uuid.UUID) ([]string, error) {
			gs, err := s.dir.GroupsOfUser(ctx, user)
			names := make([]string, 0, len(gs))
			for _, g := range gs {
				names = append(names, g.Name)
			}
			return names, err
		},
		Access: func(ctx context.Context, tenant, user, ent uuid.UUID) (bool, error) {
			return holds(ctx, tenant, user, uuid.Nil, ent)
		}}
	samlIdP.Mount(s.api)
	samlIdP.MountPages(s.admin)
	fh := &fedrest.Handler{Federation: s.feds, Directory: s.dir, Tenants: s.tenants, Auth: s.auth, Pages: pages, Issuer: s.oauth.Issuer}
	fh.Mount(s.api)
	fh.MountPages(s.admin)
	// Signing out at xavyo signs people out of the tenant's SAML service
	// providers, then of the upstream provider they came from.
	oh.SignOut = []oauthrest.SignOutHook{samlIdP.SignOut, fh.SignOut}
	// Email: invitations, password resets, verification, notices; each
	// message leaves through the outbox.
	var relay *mail.Sender
	if cfg.SMTP.Host != "" {
		if relay, err = mail.New(mail.Config{Host: cfg.SMTP.Host, Port: cfg.SMTP.Port, Username: cfg.SMTP.Username, Password: cfg.SMTP.Password,
			From: cfg.SMTP.From, TLS: cfg.SMTP.TLS}); err != nil {
			return nil, err
		}
	}
	accounts, err := account.New(account.Config{DB: s.db, Directory: s.dir, Sessions: sessions, Tenants: s.tenants, Audit: s.seq, Mail: relay,
		TokenKey: sealer.Derive("xavyo account tokens v1"), AdminURL: cfg.Admin.PublicURL, Logger: log})
	if err != nil {
		return nil, err
	}
	s.handlers.Handle(account.EventPrefix, accounts.OnEvent)
	s.handlers.Handle(auth.NewDeviceEvent, accounts.OnNewDevice)
	ah := &accountrest.Handler{Account: accounts, Tenants: s.tenants, Issuer: s.oauth.Issuer}
	ah.Mount(s.api)
	ah.MountPages(s.admin)
	s.handlers.Handle(oauth.SessionEvent, s.oauth.OnSessionEvent)
	// Audit streams to SIEMs: tenant-configured receivers, dialed with the
	// egress checks.
	s.exports = &audit.Exporter{DB: s.db, Audit: s.seq, Dialer: egress.Dialer(egress.Config{AllowPrivate: cfg.Egress.AllowPrivate, DialTimeout: 5 * time.Second}),
		Logger: log, Version: version}
	(&auditrest.Handler{DB: s.db, Exports: s.exports}).Mount(s.api)

	// The MCP gateway: its admin routes here, its endpoints on the agent plane.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	upstreamEgress := egress.Config{AllowPrivate: cfg.Egress.AllowPrivate, Timeout: 30 * time.Second, Streaming: true, RootCAs: upstreamRoots(s.ca)}
	upstreams, err := egress.New(upstreamEgress)
	if err != nil {
		return nil, err
	}
	// The agent plane's one enforcement point, shared by every agent protocol.
	s.enforcer, err = gateway.NewEnforcer(gateway.EnforcerConfig{Tenants: s.tenants, Tokens: s.tokens, Audit: s.seq,
		Approvals: s.gov, Bus: s.bus, NHIs: s.nhis, Logger: log})
	if err != nil {
		return nil, err
	}
	if s.mcp, err = mcp.New(mcp.Config{DB: s.db, Sealer: sealer, NHIs: s.nhis, Gov: s.gov, Access: s.engine, Enforcer: s.enforcer, Audit: s.seq, Client: upstreams, Egress: upstreamEgress, CA: s.ca, Certs: s.certs, StdioAllowlist: cfg.MCP.StdioAllowlist, AgentURL: cfg.Agent.PublicURL, Logger: log,
		Metrics: mcp.NewMetrics(reg, cfg.Metrics.TenantLabels), Version: version, PageSize: cfg.MCP.PageSize,
		MaxSessions: cfg.MCP.MaxSessions, MaxStreams: cfg.MCP.MaxStreams}); err != nil {
		return nil, err
	}
	s.mcp.Watch(s.bus)
	s.handlers.Handle(governance.EventPrefix+"entitlement", s.mcp.OnEntitlementEvent)
	(&mcprest.Handler{Gateway: s.mcp}).Mount(s.api)
	// Metrics are the operators': they name every tenant's tool servers.
	s.admin.Get("/metrics", httpx.OperatorOnly(cfg.Metrics.Token, s.boot, adminAuth), adaptor.HTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	mountDocs(s.api)

	// The agent plane.
	tlsCfg, err := s.agentTLS(ctx, sealer)
	if err != nil {
		return nil, err
	}
	extra := tlsCfg.ClientCAs
	if s.agent, err = gateway.New(gateway.Config{TLS: tlsCfg, TrustDomain: cfg.PKI.TrustDomain,
		AllowedOrigins: cfg.Agent.AllowedOrigins, Ready: checker.Ready, Logger: log,
		Certs: s.certs, ClientCAs: clientCAs(s.ca, extra), Plaintext: cfg.Agent.TLS.Plaintext, BodyTimeout: cfg.Agent.BodyTimeout}); err != nil {
		return nil, err
	}
	(&pki.AgentHandlers{CA: s.ca, Verifier: s.certs, NHIs: s.nhis, Tenants: s.tenants}).Mount(s.agent.Handle)
	mh := &oauth.MTLSHandlers{Server: s.oauth, Tenants: s.tenants}
	mh.Mount(s.agent.Handle)
	mh.MountResourceMetadata(s.agent.Handle)
	s.mcp.Mount(s.agent.Handle)
	agents := a2a.New(a2a.Config{DB: s.db, Enforcer: s.enforcer, Signer: s.tokens, Access: s.engine, Minter: s.tokens, Audit: s.seq,
		Client: upstreams, Fetch: fetch, NHIs: s.nhis, Gov: s.gov, Bus: s.bus, Sealer: sealer, Claimer: s.tokens, AgentURL: cfg.Agent.PublicURL, AdminURL: cfg.Admin.PublicURL, Version: version,
		Metrics: a2a.NewMetrics(reg, cfg.Metrics.TenantLabels), Logger: log})
	agents.Mount(s.agent.Handle)
	(&a2arest.Handler{A2A: agents}).Mount(s.api)
	s.handlers.Handle(governance.EventPrefix+"entitlement", agents.OnEntitlementEvent)
	s.handlers.Handle(a2a.EventPush, agents.OnPush)

	// Webhooks: every deliverable event becomes deliveries to the tenant's
	// subscribed endpoints, posted through the egress client.
	hooksClient, err := egress.New(egress.Config{AllowPrivate: cfg.Egress.AllowPrivate, Timeout: 15 * time.Second, MaxResponseBytes: 64 << 10})
	if err != nil {
		return nil, err
	}
	s.webhooks = webhooks.New(webhooks.Config{DB: s.db, Sealer: sealer, Client: hooksClient, Audit: s.seq, Logger: log,
		MaxAttempts: cfg.Webhooks.MaxAttempts, Metrics: webhooks.NewMetrics(reg)})
	s.handlers.Handle("", s.webhooks.OnEvent)
	(&webhooksrest.Handler{Webhooks: s.webhooks}).Mount(s.api)

	bootToken, err := s.boot.Ensure(ctx, cfg.BootstrapToken, cfg.BootstrapTokenSet)
	if err != nil {
		return nil, fmt.Errorf("bootstrap token: %w", err)
	}
	if bootToken != "" {
		s.bootNote = bootToken
	}
	// First start: a default tenant and its first admin, printed once.
	if s.firstAdm, err = s.auth.EnsureDefaultTenant(ctx, cfg.DefaultTenant.Slug, cfg.DefaultTenant.AdminEmail, cfg.DefaultTenant.AdminPassword); err != nil {
		return nil, fmt.Errorf("default tenant: %w", err)
	}
	// The operators' tenant, whose users may hold super_admin.
	if _, err := s.tenants.EnsureOperator(ctx); err != nil {
		return nil, fmt.Errorf("operators' tenant: %w", err)
	}
	return s, nil
}

// agentTLS loads the configured certificate, or the development one.
func (s *App) agentTLS(ctx context.Context, sealer *seal.Sealer) (*tls.Config, error) {
	cfg := s.cfg
	clientCAs := x509.NewCertPool()
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ClientCAs: clientCAs}
	if cfg.Agent.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.Agent.TLS.CertFile, cfg.Agent.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("agent.tls: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	} else {
		host := "127.0.0.1"
		if u, err := url.Parse(cfg.Agent.PublicURL); err == nil && u.Hostname() != "" {
			host = u.Hostname()
		}
		m, err := devtls.Ensure(ctx, s.db, sealer, []string{host})
		if err != nil {
			return nil, fmt.Errorf("agent plane development certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{m.Server}
		clientCAs.AddCert(m.CA)
		// For clients: curl --cacert data/agent-ca.pem …
		if err := os.WriteFile(filepath.Join(cfg.DataDir, "agent-ca.pem"), m.CAPEM, 0o600); err != nil {
			return nil, err
		}
	}
	if cfg.Agent.TLS.ClientCAFile != "" {
		pemBytes, err := os.ReadFile(cfg.Agent.TLS.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("agent.tls.client_ca_file: %w", err)
		}
		if !clientCAs.AppendCertsFromPEM(pemBytes) {
			return nil, errors.New("agent.tls.client_ca_file holds no PEM certificate")
		}
	}
	return tc, nil
}

// upstreamRoots trusts the system roots and xavyo's own CA for upstream
// MCP servers (a tool server may present a certificate from xavyo's CA).
func upstreamRoots(ca *pki.CA) *x509.CertPool {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, r := range ca.Roots() {
		pool.AddCert(r)
	}
	return pool
}

// clientCAs returns the agent plane's client-certificate roots at each
// handshake: the CA's current roots (they change on rotation) plus the
// configured extra ones.
func clientCAs(ca *pki.CA, extra *x509.CertPool) func() *x509.CertPool {
	var (
		mu     sync.Mutex
		pool   *x509.CertPool
		source *x509.Certificate
		n      int
	)
	return func() *x509.CertPool {
		roots := ca.Roots()
		mu.Lock()
		defer mu.Unlock()
		if pool != nil && source == roots[0] && n == len(roots) {
			return pool
		}
		pool = extra.Clone()
		for _, r := range roots {
			pool.AddCert(r)
		}
		source, n = roots[0], len(roots)
		return pool
	}
}

func mountHealth(app *fiber.App, ready func(context.Context) error) {
	app.Get("/healthz", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.SendString(`{"status":"ok"}`)
	})
	app.Get("/readyz", func(c *fiber.Ctx) error {
		code, body := health.Body(ready(c.UserContext()))
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Status(code).Send(body)
	})
}

// redoc is the API reference renderer (Redoc's standalone bundle, from
// npm; see assets/redoc.LICENSE.txt), served from the binary: the docs
// page loads nothing from the network.
//
//go:embed assets/redoc.standalone.js
var redoc []byte

var docsPage = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>xavyo admin API</title>
<style>body{margin:0}</style></head>
<body><noscript>The API reference needs JavaScript; the document itself is <a href="{{.Spec}}">{{.Spec}}</a> (OpenAPI 3.1).</noscript>
<redoc spec-url="{{.Spec}}" hide-download-button="false" native-scrollbars="true"></redoc>
<script src="{{.Script}}"></script>
</body></html>`))

// docsCSP lets the reference page run the bundle it is served with and
// nothing else: no third-party scripts, styles or fonts, no framing.
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; " +
	"connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// mountDocs serves the OpenAPI document and the API reference rendered
// from it.
func mountDocs(api *httpx.API) {
	api.Handle(httpx.Route{Method: fiber.MethodGet, Path: "/openapi.json", OperationID: "getOpenAPI",
		Summary: "This API's OpenAPI 3.1 document", Tags: []string{"meta"}, Public: true, Scope: httpx.ScopeNone,
		Handler: func(c *fiber.Ctx) error { return c.JSON(api.Doc()) }})
	script := httpx.JoinPath(api.Prefix(), "docs/redoc.standalone.js")
	api.Handle(httpx.Route{Method: fiber.MethodGet, Path: "/docs", OperationID: "getDocs",
		Summary: "The API reference: every operation with its parameters, request and response schemas", Tags: []string{"meta"}, Public: true,
		Scope: httpx.ScopeNone,
		Handler: func(c *fiber.Ctx) error {
			var b strings.Builder
			if err := docsPage.Execute(&b, map[string]any{"Spec": httpx.JoinPath(api.Prefix(), "openapi.json"), "Script": script}); err != nil {
				return err
			}
			c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
			c.Set(fiber.HeaderContentSecurityPolicy, docsCSP)
			c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
			c.Set(fiber.HeaderXFrameOptions, "DENY")
			return c.SendString(b.String())
		}})
	api.Handle(httpx.Route{Method: fiber.MethodGet, Path: "/docs/redoc.standalone.js", OperationID: "getDocsRenderer",
		Summary: "The reference page's renderer (Redoc, MIT licence)", Tags: []string{"meta"}, Public: true, Scope: httpx.ScopeNone,
		Handler: func(c *fiber.Ctx) error {
			c.Set(fiber.HeaderContentType, "text/javascript; charset=utf-8")
			c.Set(fiber.HeaderCacheControl, "public, max-age=86400")
			c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
			return c.Send(redoc)
		}})
}

// Run serves until ctx ends, then shuts down in order: stop accepting and
// drain requests (bounded), stop the workers, and last flush the audit
// log, which requests and workers write to.
func (s *App) Run(ctx context.Context) error {
	defer s.Close()
	fmt.Fprintf(s.out, "xavyo %s\n  admin plane: %s   (API %s/api/v1, docs %s/api/v1/docs)\n  agent plane: %s   (TLS; development CA in %s)\n",
		s.version, s.cfg.Admin.PublicURL, s.cfg.Admin.PublicURL, s.cfg.Admin.PublicURL, s.cfg.Agent.PublicURL,
		filepath.Join(s.cfg.DataDir, "agent-ca.pem"))
	if s.bootNote != "" {
		fmt.Fprintf(s.out, "  bootstrap token (super_admin; shown once, keep it safe): %s\n", s.bootNote)
	}
	if a := s.firstAdm; a != nil && a.InitialAdmin != nil {
		fmt.Fprintf(s.out, "  tenant %q created; its admin %s must change the password at first login", a.Slug, a.InitialAdmin.Email)
		if a.InitialAdmin.Password != "" {
			fmt.Fprintf(s.out, "; initial password (shown once): %s", a.InitialAdmin.Password)
		}
		fmt.Fprintln(s.out)
	}

	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()

	g, gctx := errgroup.WithContext(ctx)
	workers := newSupervisor(s.log)
	workers.start(workCtx, s.workers()...)
	g.Go(func() error {
		select {
		case err := <-workers.failed():
			return err
		case <-gctx.Done():
			return nil
		}
	})
	g.Go(func() error {
		if err := s.admin.Listener(s.adminLn); err != nil {
			return fmt.Errorf("admin plane: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := s.agent.Serve(s.agentLn); err != nil {
			return fmt.Errorf("agent plane: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		s.log.Info("shutting down", "drain_timeout", s.cfg.ShutdownTimeout)
		sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		defer cancel()
		var errs []error
		done := make(chan error, 1)
		go func() { done <- s.admin.ShutdownWithContext(sctx) }()
		s.mcp.Drain() // open MCP event streams would hold the agent plane
		errs = append(errs, s.agent.Shutdown(sctx), <-done)
		s.mcp.Close()
		stopWork()
		workers.wait()
		if err := errors.Join(errs...); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	})
	err := g.Wait()
	if err == nil || errors.Is(err, context.Canceled) {
		s.log.Info("stopped")
		return nil
	}
	return err
}

// workers are the process's background loops, each under the supervisor.
func (s *App) workers() []worker {
	return []worker{
		{"events", s.bus.Run},
		{"event outbox", s.outbox.Run},
		{"signing key rotation", s.tokens.RunRotation},
		{"CA reload", func(ctx context.Context) error { return s.ca.RunReload(ctx, 30*time.Second) }},
		{"NHI expiry notices", func(ctx context.Context) error { return s.nhis.RunExpiryNotices(ctx, time.Hour) }},
		{"MCP session purge", func(ctx context.Context) error { return s.mcp.RunPurge(ctx, 10*time.Minute) }},
		{"webhook deliveries", s.webhooks.Run},
		{"audit exports", func(ctx context.Context) error { return s.exports.Run(ctx, time.Second) }},
		{"tool server health checks", func(ctx context.Context) error { return s.mcp.RunHealthChecks(ctx, 30*time.Second) }},
		{"governance timers", func(ctx context.Context) error { return s.gov.RunTimers(ctx, time.Second) }},
		{"separation-of-duties scans", func(ctx context.Context) error { return s.gov.RunSoDScans(ctx, time.Hour) }},
		{"idempotency sweep", func(ctx context.Context) error { return s.idem.RunSweep(ctx, 10*time.Minute) }},
		{"enforcement point", s.enforcer.Run},
		{"NHI last-use writes", s.nhis.RunTouches},
		{"token revocation reloads", s.tokens.RunRevocationReloads},
		{"SAML metadata refresh", func(ctx context.Context) error { return s.saml.RunRefresh(ctx, time.Hour) }},
		{"identity provider metadata refresh", func(ctx context.Context) error { return s.feds.RunRefresh(ctx, time.Hour) }},
	}
}

// Close releases everything, flushing the audit log last but one.
func (s *App) Close() {
	if s.stopAudit != nil {
		s.stopAudit()
		<-s.auditDone
		s.stopAudit = nil
	}
	for _, ln := range []net.Listener{s.adminLn, s.agentLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
	if s.db != nil {
		_ = s.db.Close()
	}
}
