// Package mcp is xavyo's MCP gateway: the tool catalog synced from
// upstream MCP servers (tool servers), the upstream connections, the
// agent-facing streamable HTTP endpoints with per-principal tool lists,
// and the inline decision, audit and forwarding of every tool call.
//
// The gateway is a lean JSON-RPC router: it parses what it decides on
// (method, id, tool name, arguments) and forwards upstream definitions and
// results as the upstream sent them.
package mcp

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
)

// Upstream credential types.
//
//nolint:gosec // G101: names of credential types, not credentials
const (
	CredNone         = "none"
	CredBearer       = "bearer"
	CredOAuth        = "oauth_client_credentials"
	CredMTLS         = "mtls"
	defaultTimeoutMS = 30_000
)

// EventServer is the change-event kind of a tool server's upstream
// settings; EventCatalog of its synced catalog.
const (
	EventServer  = "mcp.server"
	EventCatalog = "mcp.catalog"
)

// Pin policies: which definition changes of an approved tool need
// re-approval.
const (
	PinAny         = "any"
	PinDescription = "description"
)

// Settings are how the gateway reaches a tool server's upstream. Secrets
// are write-only: they are sealed with the KEK and never returned.
type Settings struct {
	ServerID       uuid.UUID  `json:"server_id"`
	AutoApprove    bool       `json:"auto_approve" doc:"new tools are approved at sync (definition changes still need approval unless also auto)"`
	PinPolicy      string     `json:"pin_policy" doc:"which definition changes quarantine an approved tool until re-approved: any (default) or description (its description or title)"`
	TimeoutMS      int        `json:"timeout_ms" doc:"bound of one upstream call (default 30000)"`
	CredentialType string     `json:"credential_type" doc:"none, bearer, oauth_client_credentials or mtls"`
	TokenURL       string     `json:"token_url,omitempty" doc:"oauth_client_credentials: the upstream's token endpoint"`
	ClientID       string     `json:"client_id,omitempty" doc:"oauth_client_credentials: xavyo's client at the upstream"`
	Scope          string     `json:"scope,omitempty"`
	ServerCAPEM    string     `json:"server_ca_pem,omitempty" doc:"extra roots trusted for the upstream's server certificate"`
	HasSecret      bool       `json:"has_secret" doc:"a token or client secret is stored"`
	SyncedAt       *time.Time `json:"synced_at,omitempty"`
	SyncError      string     `json:"sync_error,omitempty"`
	UpdatedAt      time.Time  `json:"updated_at"`
	Version        int64      `json:"version"`
}

// SettingsInput sets a tool server's upstream settings.
type SettingsInput struct {
	AutoApprove    bool   `json:"auto_approve"`
	PinPolicy      string `json:"pin_policy,omitempty" doc:"any (default) or description"`
	TimeoutMS      int    `json:"timeout_ms,omitempty"`
	CredentialType string `json:"credential_type"`
	// Token is the static bearer token (credential_type bearer).
	Token        string `json:"token,omitempty"`
	TokenURL     string `json:"token_url,omitempty"`
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	Scope        string `json:"scope,omitempty"`
	// ServerCAPEM adds roots for the upstream's server certificate (beside
	// the system roots and xavyo's own CA).
	ServerCAPEM string `json:"server_ca_pem,omitempty"`
}

// secret is the sealed part of the settings.
type secret struct {
	Token        string `json:"token,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
}

// Sealer encrypts upstream secrets at rest.
type Sealer interface {
	Seal(plaintext, aad []byte) []byte
	Open(sealed, aad []byte) ([]byte, error)
}

// NHIs is what the gateway needs of the NHI service.
type NHIs interface {
	Authorize(ctx context.Context, id uuid.UUID, need string) (*nhi.NHI, error)
	Lookup(ctx context.Context, id uuid.UUID) (*nhi.NHI, error)
	// Refs lists the tenant's NHIs of a kind (the catalog's tool servers).
	Refs(ctx context.Context, kind string) ([]nhi.Ref, error)
}

func secretAAD(tenant, server uuid.UUID) []byte {
	return []byte("mcp_server:" + tenant.String() + ":" + server.String())
}

func (in *SettingsInput) validate() error {
	if in.TimeoutMS == 0 {
		in.TimeoutMS = defaultTimeoutMS
	}
	switch in.PinPolicy {
	case "":
		in.PinPolicy = PinAny
	case PinAny, PinDescription:
	default:
		return apperr.Invalid("pin_policy", "must be any or description")
	}
	if in.TimeoutMS < 100 || in.TimeoutMS > 600_000 {
		return apperr.Invalid("timeout_ms", "must be between 100 and 600000")
	}
	if in.CredentialType == "" {
		in.CredentialType = CredNone
	}
	switch in.CredentialType {
	case CredNone, CredMTLS: // mtls: xavyo's CA issues the tool server's certificate
		if in.Token != "" || in.ClientSecret != "" || in.TokenURL != "" || in.ClientID != "" {
			return apperr.Invalid("credential_type", in.CredentialType+" takes no token or client")
		}
	case CredBearer:
		if in.Token == "" || len(in.Token) > 8192 {
			return apperr.Invalid("token", "a bearer credential needs a token (at most 8192 characters)")
		}
	case CredOAuth:
		u, err := url.Parse(in.TokenURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return apperr.Invalid("token_url", "must be an absolute http(s) URL")
		}
		if in.ClientID == "" || in.ClientSecret == "" {
			return apperr.Invalid("client_id", "client credentials need client_id and client_secret")
		}
	default:
		return apperr.Invalid("credential_type", "must be none, bearer, oauth_client_credentials or mtls")
	}
	if len(in.Scope) > 1000 || len(in.ClientID) > 500 || len(in.TokenURL) > 2000 {
		return apperr.Invalid("scope", "too long")
	}
	if in.ServerCAPEM != "" {
		if len(in.ServerCAPEM) > 64<<10 || !x509.NewCertPool().AppendCertsFromPEM([]byte(in.ServerCAPEM)) {
			return apperr.Invalid("server_ca_pem", "must hold PEM certificates (at most 64 KiB)")
		}
	}
	return nil
}

const settingsCols = `nhi_id, auto_approve, timeout_ms, credential_type, token_url, client_id, scope, server_ca_pem, credential IS NOT NULL,
	synced_at, sync_error, updated_at, version, pin_policy`

func scanSettings(row interface{ Scan(...any) error }) (*Settings, error) {
	var s Settings
	err := row.Scan(&s.ServerID, &s.AutoApprove, &s.TimeoutMS, &s.CredentialType, &s.TokenURL, &s.ClientID, &s.Scope, &s.ServerCAPEM, &s.HasSecret,
		&s.SyncedAt, &s.SyncError, &s.UpdatedAt, &s.Version, &s.PinPolicy)
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// defaultSettings are a tool server's settings before any are set.
func defaultSettings(id uuid.UUID) *Settings {
	return &Settings{ServerID: id, TimeoutMS: defaultTimeoutMS, CredentialType: CredNone, PinPolicy: PinAny}
}

// toolServer returns the NHI when it is a tool server the caller may
// manage (need "manage") or use.
func (g *Gateway) toolServer(ctx context.Context, id uuid.UUID, need string) (*nhi.NHI, error) {
	n, err := g.cfg.NHIs.Authorize(ctx, id, need)
	if err != nil {
		return nil, err
	}
	if n.Kind != nhi.KindToolServer {
		return nil, apperr.NotFound("tool server")
	}
	return n, nil
}

// Settings returns a tool server's upstream settings.
func (g *Gateway) Settings(ctx context.Context, id uuid.UUID) (*Settings, error) {
	if _, err := g.toolServer(ctx, id, "use"); err != nil {
		return nil, err
	}
	var s *Settings
	err := g.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		s, err = settingsOf(ctx, tx, id, false)
		if store.NoRows(err) {
			s, err = defaultSettings(id), nil
		}
		return err
	})
	return s, err
}

// SetSettings replaces a tool server's upstream settings (If-Match by
// version when ifVersion > 0).
func (g *Gateway) SetSettings(ctx context.Context, id uuid.UUID, in SettingsInput, ifVersion int64) (*Settings, error) {
	n, err := g.toolServer(ctx, id, "manage")
	if err != nil {
		return nil, err
	}
	if n.Profile.ToolServer == nil {
		return nil, apperr.Invalid("profile.tool_server", "not a tool server")
	}
	if err := in.validate(); err != nil {
		return nil, err
	}
	if n.Profile.ToolServer.Transport == "stdio" && (in.CredentialType != CredNone || in.ServerCAPEM != "") {
		return nil, apperr.Invalid("credential_type", "a stdio tool server takes no credential (its command runs on this host)")
	}
	var sealed []byte
	if in.Token != "" || in.ClientSecret != "" {
		// Marshaled only to be sealed with the KEK below.
		b, _ := json.Marshal(secret{Token: in.Token, ClientSecret: in.ClientSecret}) //nolint:gosec // G117: sealed, never stored or sent in clear
		tenant, _ := store.TenantFrom(ctx)
		sealed = g.cfg.Sealer.Seal(b, secretAAD(tenant, id))
	}
	var out *Settings
	err = g.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		cur, err := settingsOf(ctx, tx, id, true)
		now := store.Now()
		switch {
		case store.NoRows(err):
			if ifVersion > 0 {
				return apperr.New(apperr.KindConflict, "the settings changed since you read them")
			}
			if err := insertSettings(ctx, tx, id, in, sealed, now); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			if ifVersion > 0 && cur.Version != ifVersion {
				return apperr.New(apperr.KindConflict, "the settings changed since you read them")
			}
			if err := updateSettings(ctx, tx, id, in, sealed, now); err != nil {
				return err
			}
		}
		if out, err = settingsOf(ctx, tx, id, false); err != nil {
			return err
		}
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: EventServer, ID: id.String(), Version: out.Version}, nil); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, g.cfg.Audit, "mcp.server.settings", "nhi", id.String(),
			map[string]any{"credential_type": in.CredentialType, "auto_approve": in.AutoApprove, "pin_policy": in.PinPolicy, "timeout_ms": in.TimeoutMS,
				"token_url": in.TokenURL, "server_ca": in.ServerCAPEM != ""})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// upstreamConfig is everything needed to reach one upstream.
type upstreamConfig struct {
	tenant    uuid.UUID
	server    uuid.UUID
	slug      string
	url       string
	timeout   time.Duration
	credType  string
	token     string
	tokenURL  string
	clientID  string
	secret    string
	scope     string
	serverCA  string
	auto      bool
	pinPolicy string
	command   string // stdio
	args      []string
	sse       bool // the HTTP+SSE transport (2024-11-05)
}

// loadUpstream reads a tool server's upstream configuration (secrets
// opened) in the tenant of ctx.
func (g *Gateway) loadUpstream(ctx context.Context, n *nhi.NHI) (*upstreamConfig, error) {
	ts := n.Profile.ToolServer
	switch {
	case ts == nil:
		return nil, apperr.Invalid("profile.tool_server", "not a tool server")
	case (ts.Transport == "streamable_http" || ts.Transport == "sse") && ts.URL != "":
	case ts.Transport == "stdio" && ts.Command != "":
		if !slices.Contains(g.cfg.StdioAllowlist, ts.Command) {
			// The allowlist may have changed since the NHI was registered.
			return nil, apperr.Invalid("profile.tool_server.command", "not on this replica's mcp.stdio_allowlist")
		}
	default:
		return nil, apperr.Invalid("profile.tool_server", "a tool server needs a URL (streamable_http, sse) or a command (stdio)")
	}
	tenant, _ := store.TenantFrom(ctx)
	c := &upstreamConfig{tenant: tenant, server: n.ID, slug: n.Slug, url: ts.URL, command: ts.Command, args: ts.Args, sse: ts.Transport == "sse",
		timeout: defaultTimeoutMS * time.Millisecond, credType: CredNone, pinPolicy: PinAny}
	err := g.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		sealed, ms, err := upstreamRow(ctx, tx, n.ID, c)
		if store.NoRows(err) {
			return nil
		}
		if err != nil {
			return err
		}
		c.timeout = time.Duration(ms) * time.Millisecond
		if len(sealed) > 0 {
			plain, err := g.cfg.Sealer.Open(sealed, secretAAD(tenant, n.ID))
			if err != nil {
				return fmt.Errorf("mcp: open upstream credential: %w", err)
			}
			var s secret
			if err := json.Unmarshal(plain, &s); err != nil {
				return fmt.Errorf("mcp: upstream credential: %w", err)
			}
			c.token, c.secret = s.Token, s.ClientSecret
		}
		return nil
	})
	return c, err
}
