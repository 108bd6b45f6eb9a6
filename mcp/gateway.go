package mcp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/xavyo/xavyo/gateway"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/governance"
	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/egress"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/pki"
)

// Governance is what the gateway needs of governance.
type Governance interface {
	ApplicationFor(ctx context.Context, n *nhi.NHI) (uuid.UUID, error)
	UpsertTools(ctx context.Context, app uuid.UUID, tools []governance.Tool, autoApprove bool) ([]governance.SyncResult, error)
	// ApprovedDefinitionHash is the definition hash an approved tool
	// entitlement pins ("" when it is not approved).
	ApprovedDefinitionHash(ctx context.Context, entitlement uuid.UUID) (string, error)
}

// Snapshots gives the effective-access snapshot of a tenant.
type Snapshots interface {
	Snapshot(ctx context.Context, tenant uuid.UUID) (*governance.Snapshot, error)
}

// CertAuthenticator maps a client certificate to its principal, refusing
// revoked ones.
type CertAuthenticator interface {
	Authenticate(ctx context.Context, leaf *x509.Certificate) (*principal.Principal, error)
}

// CertIssuer issues client certificates to NHIs.
type CertIssuer interface {
	Issue(ctx context.Context, n *nhi.NHI, in pki.IssueInput, defaultLifetime time.Duration, renewedFrom string) (*pki.Issued, error)
}

// Auditor is the audit log: decisions are appended and waited for,
// changes recorded in their transaction.
type Auditor interface {
	audit.Recorder
	Append(ctx context.Context, e audit.Entry) (*audit.Receipt, error)
}

// Config configures the gateway.
type Config struct {
	DB     *store.DB
	Sealer Sealer
	NHIs   NHIs
	Gov    Governance
	Access Snapshots
	Audit  Auditor
	// Enforcer is the agent plane's enforcement point: tenants, callers,
	// decision records.
	Enforcer *gateway.Enforcer
	// Client makes upstream calls: the egress client (checked dials), in
	// streaming mode; per-call timeouts come from each server's settings.
	Client *http.Client
	// Egress is the configuration Client was built from: upstreams that
	// take an mTLS credential get a client of their own from it.
	Egress egress.Config
	// CA issues the certificates of mTLS upstream credentials (nil: the
	// mtls credential type is refused).
	CA CertIssuer
	// StdioAllowlist is the operator's list of commands stdio tool servers
	// may run (mcp.stdio_allowlist), checked again at each start.
	StdioAllowlist []string
	// Certs checks client certificates again on long-lived connections
	// (WebSocket messages); the agent plane checks every HTTP request.
	Certs CertAuthenticator
	// AgentURL is agent.public_url: endpoint URLs (token audiences) and
	// resource-metadata URLs are built from it.
	AgentURL string
	// AllowedOrigins are the browser origins allowed to call (the agent
	// plane refuses others before the gateway sees them).
	Logger *slog.Logger
	// MaxMessageBytes bounds one JSON-RPC message from a client (default 4 MiB).
	MaxMessageBytes int64
	// PageSize is the number of tools per tools/list page (default 100).
	PageSize int
	// SessionTTL bounds a client session's life (default 24h).
	SessionTTL time.Duration
	// MaxSessions bounds the live sessions of one principal; opening one
	// more ends its oldest (default 1000).
	MaxSessions int
	// MaxStreams bounds the event streams and WebSocket or legacy SSE
	// connections one principal holds open on a replica (default 256).
	MaxStreams int
	// Metrics records calls; nil records nothing.
	Metrics *Metrics
	// Version is reported as the server's version.
	Version string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// CheckAndSetDefaults validates and fills defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.DB == nil || c.Sealer == nil || c.NHIs == nil || c.Gov == nil || c.Access == nil || c.Enforcer == nil || c.Audit == nil {
		return errors.New("mcp: DB, Sealer, NHIs, Gov, Access, Enforcer and Audit are required")
	}
	if c.Client == nil {
		return errors.New("mcp: an egress client is required")
	}
	if c.AgentURL == "" {
		return errors.New("mcp: the agent plane's public URL is required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 4 << 20
	}
	if c.PageSize == 0 {
		c.PageSize = 100
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = 24 * time.Hour
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 1000
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = 256
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Gateway is the MCP gateway of this replica.
type Gateway struct {
	cfg      Config
	catalogs *catalogs
	pool     pool
	sessions sessions
	streams  streams
	conns    connLimit
	owners   owners
	legacy   legacyConns
	waiters  waiters
	subs     subscriptions
	parked   parkedCalls
	// bus wakes calls held for approval (set by Watch; nil: polling).
	bus *events.Bus
}

// New returns a gateway.
func New(cfg Config) (*Gateway, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, catalogs: &catalogs{db: cfg.DB, nhis: cfg.NHIs}}
	g.sessions.db, g.sessions.max = cfg.DB, cfg.MaxSessions
	g.conns.max = cfg.MaxStreams
	return g, nil
}

// Watch follows change events from every replica: catalogs, upstream
// settings and sessions are dropped when they change.
func (g *Gateway) Watch(bus *events.Bus) (stop func()) {
	g.bus = bus
	return bus.Subscribe(func(m events.Message) {
		if m.Resync {
			g.catalogs.invalidate(uuid.Nil)
			g.pool.dropAll()
			g.sessions.dropAll()
			g.streams.changed(uuid.Nil)
			return
		}
		c := m.Change
		if accessChange(c.Kind) {
			defer g.streams.changed(c.TenantID)
		}
		switch c.Kind {
		case EventCatalog:
			g.catalogs.invalidate(c.TenantID)
		case EventServer, nhi.EventKind:
			g.catalogs.invalidate(c.TenantID)
			if id, err := uuid.Parse(c.ID); err == nil {
				g.pool.drop(id)
			}
		case EventSession:
			g.sessions.drop(c.ID)
		}
	})
}

// accessChange reports change kinds that may change someone's tool list.
func accessChange(kind string) bool {
	switch kind {
	case EventCatalog, EventServer, nhi.EventKind, "user", "group", "group_membership":
		return true
	}
	return strings.HasPrefix(kind, governance.EventPrefix)
}

// Close ends every upstream session and waits until they are ended.
func (g *Gateway) Close() { g.pool.closeAll() }

// upstreamFor returns this replica's connection to a tool server.
func (g *Gateway) upstreamFor(ctx context.Context, n *nhi.NHI) (*upstream, error) {
	if u := g.pool.get(n.ID); u != nil {
		return u, nil
	}
	cfg, err := g.loadUpstream(ctx, n)
	if err != nil {
		return nil, err
	}
	tenant := cfg.tenant
	system := func(timeout time.Duration) (context.Context, context.CancelFunc) {
		sctx := principal.With(store.WithTenant(context.Background(), tenant), &principal.Principal{TenantID: tenant,
			Kind: principal.KindBootstrap, SubjectID: "system", AdminRoles: []string{principal.RoleSuperAdmin}})
		return context.WithTimeout(sctx, timeout)
	}
	client := g.cfg.Client
	ec := g.cfg.Egress
	if cfg.serverCA != "" {
		pool := ec.RootCAs
		if pool == nil {
			pool = x509.NewCertPool()
		}
		pool = pool.Clone()
		pool.AppendCertsFromPEM([]byte(cfg.serverCA))
		ec.RootCAs = pool
	}
	if cfg.credType == CredMTLS {
		if g.cfg.CA == nil {
			return nil, apperr.New(apperr.KindUnavailable, "mTLS upstream credentials are not available on this gateway")
		}
		certs := &clientCerts{issue: func() (*tls.Certificate, error) {
			ictx, cancel := system(30 * time.Second)
			defer cancel()
			cur, err := g.cfg.NHIs.Lookup(ictx, n.ID)
			if err != nil {
				return nil, err
			}
			iss, err := g.cfg.CA.Issue(ictx, cur, pki.IssueInput{}, 24*time.Hour, "")
			if err != nil {
				return nil, err
			}
			c, err := tls.X509KeyPair([]byte(iss.ChainPEM), []byte(iss.PrivateKeyPEM))
			return &c, err
		}}
		ec.ClientCertificate = certs.get
	}
	if cfg.serverCA != "" || cfg.credType == CredMTLS {
		if client, err = egress.New(ec); err != nil {
			return nil, err
		}
	}
	onList := func() {
		// The upstream's tools changed: sync again, as the system.
		sctx, cancel := system(2 * time.Minute)
		defer cancel()
		cur, err := g.cfg.NHIs.Lookup(sctx, n.ID)
		if err != nil {
			return
		}
		if _, err := g.sync(sctx, cur); err != nil {
			g.cfg.Logger.Warn("catalog sync after list_changed failed", "tenant_id", tenant.String(), "server", n.Slug, "error", err)
		}
	}
	u := newUpstream(cfg, client, g.cfg.Logger, onList)
	u.onUpdated = func(params json.RawMessage) { g.resourceUpdated(n.ID, params) }
	return g.pool.put(n.ID, u), nil
}

// clientCerts holds the certificate an mTLS upstream credential presents,
// issued by xavyo's CA to the tool server's NHI and renewed once two
// thirds of its life have passed.
type clientCerts struct {
	issue func() (*tls.Certificate, error)
	mu    sync.Mutex
	cur   *tls.Certificate
	renew time.Time
}

func (c *clientCerts) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil && time.Now().Before(c.renew) {
		return c.cur, nil
	}
	cert, err := c.issue()
	if err != nil {
		if c.cur != nil {
			return c.cur, nil // keep the current one until it expires
		}
		return nil, err
	}
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		cert.Leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	}
	c.cur = cert
	if cert.Leaf != nil {
		c.renew = cert.Leaf.NotBefore.Add(cert.Leaf.NotAfter.Sub(cert.Leaf.NotBefore) * 2 / 3)
	}
	return c.cur, nil
}

// upstreamByID returns the connection to a tool server of the catalog.
func (g *Gateway) upstreamByID(ctx context.Context, id uuid.UUID) (*upstream, error) {
	if u := g.pool.get(id); u != nil {
		return u, nil
	}
	n, err := g.cfg.NHIs.Lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	return g.upstreamFor(ctx, n)
}

// Health is a tool server's reachability as this replica sees it.
type Health struct {
	ServerID  uuid.UUID `json:"server_id"`
	Reachable bool      `json:"reachable"`
	LatencyMS float64   `json:"latency_ms"`
	Circuit   string    `json:"circuit" doc:"closed, open or half_open"`
	Error     string    `json:"error,omitempty"`
}

// Health pings a tool server's upstream.
func (g *Gateway) Health(ctx context.Context, id uuid.UUID) (*Health, error) {
	n, err := g.toolServer(ctx, id, "use")
	if err != nil {
		return nil, err
	}
	u, err := g.upstreamFor(ctx, n)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	res, err := u.call(ctx, "ping", nil, nil)
	h := &Health{ServerID: id, LatencyMS: float64(time.Since(start).Microseconds()) / 1000, Circuit: u.state()}
	switch {
	case err != nil:
		h.Error = apperr.PublicMessage(err)
	case res.Error != nil:
		h.Error = res.Error.Message
	default:
		h.Reachable = true
	}
	return h, nil
}

// RunHealthChecks pings every tool server this replica is connected to,
// every interval, until ctx ends: the xavyo_mcp_upstream_up gauge and a
// log line on each change of state. (Calls themselves go through the
// circuit breaker; this shows an idle upstream's state too.)
func (g *Gateway) RunHealthChecks(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	last := map[*upstream]bool{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		g.pool.mu.Lock()
		ups := make([]*upstream, 0, len(g.pool.ups))
		for _, u := range g.pool.ups {
			ups = append(ups, u)
		}
		g.pool.mu.Unlock()
		seen := map[*upstream]bool{}
		for _, u := range ups {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			res, err := u.call(pctx, "ping", nil, nil)
			cancel()
			ok := err == nil && res.Error == nil
			seen[u] = true
			g.cfg.Metrics.setUp(u.cfg.tenant, u.cfg.slug, ok)
			if was, known := last[u]; !known || was != ok {
				level := slog.LevelInfo
				if !ok {
					level = slog.LevelWarn
				}
				g.cfg.Logger.Log(ctx, level, "tool server health", "tenant_id", u.cfg.tenant.String(), "server", u.cfg.slug, "up", ok)
			}
			last[u] = ok
		}
		for u := range last {
			if !seen[u] {
				delete(last, u)
			}
		}
	}
}
