// Package config holds xavyo's one configuration: a YAML file whose every
// key can be overridden by an environment variable named in the struct
// tag `env`. Defaults and validation live in CheckAndSetDefaults, and
// nowhere else.
package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/xavyo/xavyo/internal/secretref"
)

// Config is the whole configuration of a xavyo process.
type Config struct {
	DataDir  string   `yaml:"data_dir" env:"XAVYO_DATA_DIR" desc:"directory for the embedded database, generated dev keys and files (default ./data)"`
	Database Database `yaml:"database"`
	Admin    Admin    `yaml:"admin"`
	Agent    Agent    `yaml:"agent"`
	// BootstrapToken is the break-glass super_admin credential. Unset: one
	// is generated at first start and printed once. Set to empty: the
	// stored one is revoked.
	BootstrapToken string        `yaml:"bootstrap_token" env:"XAVYO_BOOTSTRAP_TOKEN" secret:"ref" desc:"break-glass super_admin token (or a secret reference: env:NAME, file:/path[#json.key]); empty revokes it; unset generates one at first start"`
	Secrets        Secrets       `yaml:"secrets"`
	PKI            PKI           `yaml:"pki"`
	Egress         Egress        `yaml:"egress"`
	MCP            MCP           `yaml:"mcp"`
	DefaultTenant  DefaultTenant `yaml:"default_tenant"`
	Log            Log           `yaml:"log"`
	Audit          Audit         `yaml:"audit"`
	Webhooks       Webhooks      `yaml:"webhooks"`
	Platform       Platform      `yaml:"platform"`
	Metrics        Metrics       `yaml:"metrics"`
	SMTP           SMTP          `yaml:"smtp"`
	WebAuthn       WebAuthn      `yaml:"webauthn"`
	DPoP           DPoP          `yaml:"dpop"`
	// ShutdownTimeout bounds how long in-flight requests may drain on SIGTERM.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" env:"XAVYO_SHUTDOWN_TIMEOUT" desc:"how long in-flight requests may drain at shutdown (default 15s)"`

	// BootstrapTokenSet records whether bootstrap_token was given at all
	// (file or environment), to tell "unset" from "set to empty".
	BootstrapTokenSet bool `yaml:"-"`
}

// Database selects the store backend.
type Database struct {
	URL        string `yaml:"url" env:"XAVYO_DATABASE_URL" desc:"postgres://… for PostgreSQL (the application role); empty or sqlite:PATH for the embedded store (default {data_dir}/xavyo.db)"`
	MigrateURL string `yaml:"migrate_url" env:"XAVYO_DATABASE_MIGRATE_URL" desc:"PostgreSQL URL of the schema owner used for migrations (default database.url)"`
	MaxConns   int    `yaml:"max_conns" env:"XAVYO_DATABASE_MAX_CONNS" desc:"maximum open connections (default 16)"`
}

// Admin configures the admin and human plane.
type Admin struct {
	Addr      string `yaml:"addr" env:"XAVYO_ADMIN_ADDR" desc:"admin plane listen address (default 127.0.0.1:8080)"`
	PublicURL string `yaml:"public_url" env:"XAVYO_ADMIN_PUBLIC_URL" desc:"absolute URL clients reach the admin plane at (default http://{admin.addr})"`
	BodyLimit int    `yaml:"body_limit" env:"XAVYO_ADMIN_BODY_LIMIT" desc:"maximum request body in bytes (default 1 MiB)"`
}

// Agent configures the agent plane.
type Agent struct {
	Addr           string   `yaml:"addr" env:"XAVYO_AGENT_ADDR" desc:"agent plane listen address (default 127.0.0.1:8443)"`
	PublicURL      string   `yaml:"public_url" env:"XAVYO_AGENT_PUBLIC_URL" desc:"absolute URL agents reach the agent plane at (default https://{agent.addr})"`
	TLS            AgentTLS `yaml:"tls"`
	AllowedOrigins []string `yaml:"allowed_origins" env:"XAVYO_AGENT_ALLOWED_ORIGINS" desc:"comma-separated browser origins allowed on the agent plane"`
	// BodyTimeout bounds how long a request body may take to arrive.
	BodyTimeout time.Duration `yaml:"body_timeout" env:"XAVYO_AGENT_BODY_TIMEOUT" desc:"how long an agent-plane request body may take to arrive (default 10s; streams after the body are not bound by it)"`
}

// AgentTLS is the agent plane's TLS configuration.
type AgentTLS struct {
	CertFile     string `yaml:"cert_file" env:"XAVYO_AGENT_TLS_CERT_FILE" desc:"server certificate chain (default: a generated development certificate)"`
	KeyFile      string `yaml:"key_file" env:"XAVYO_AGENT_TLS_KEY_FILE" desc:"server private key"`
	ClientCAFile string `yaml:"client_ca_file" env:"XAVYO_AGENT_TLS_CLIENT_CA_FILE" desc:"extra CA bundle trusted for client certificates"`
	// Plaintext serves the agent plane without TLS, for deployments behind
	// a TLS-terminating proxy: no client certificates then.
	Plaintext bool `yaml:"plaintext" env:"XAVYO_AGENT_TLS_PLAINTEXT" desc:"serve the agent plane over plain HTTP (only behind a TLS-terminating proxy; disables mTLS)"`
}

// Secrets configures encryption of secrets at rest.
type Secrets struct {
	KEK string `yaml:"kek" env:"XAVYO_SECRETS_KEK" secret:"ref" desc:"base64 32-byte key-encryption key, or a secret reference to it (env:NAME, file:/path[#json.key]; default: generated into {data_dir}/kek)"`
}

// PKI configures the built-in CA.
type PKI struct {
	TrustDomain string `yaml:"trust_domain" env:"XAVYO_PKI_TRUST_DOMAIN" desc:"SPIFFE trust domain (default xavyo.local)"`
}

// Egress configures outbound calls to tenant-configured addresses.
type Egress struct {
	AllowPrivate bool `yaml:"allow_private" env:"XAVYO_EGRESS_ALLOW_PRIVATE" desc:"allow outbound calls to private, loopback and link-local addresses (dev and tests)"`
}

// MCP configures the MCP gateway.
type MCP struct {
	StdioAllowlist []string `yaml:"stdio_allowlist" env:"XAVYO_MCP_STDIO_ALLOWLIST" desc:"comma-separated commands that stdio upstreams may run"`
	PageSize       int      `yaml:"page_size" env:"XAVYO_MCP_PAGE_SIZE" desc:"tools per tools/list page on the gateway (default 100)"`
	MaxSessions    int      `yaml:"max_sessions_per_principal" env:"XAVYO_MCP_MAX_SESSIONS_PER_PRINCIPAL" desc:"live MCP sessions one agent or user may hold; opening one more ends the oldest (default 1000)"`
	MaxStreams     int      `yaml:"max_streams_per_principal" env:"XAVYO_MCP_MAX_STREAMS_PER_PRINCIPAL" desc:"open event streams and WebSocket/SSE connections one agent or user may hold per replica (default 256)"`
}

// Platform configures the platform's operators.
type Platform struct {
	// OperatorTenant is the reserved tenant whose users may hold
	// super_admin: only its issuer's tokens, checked against the user's
	// current roles, carry it.
	OperatorTenant string `yaml:"operator_tenant" env:"XAVYO_PLATFORM_OPERATOR_TENANT" desc:"slug of the operators' tenant, created at start when missing; only its users may hold super_admin (default operator)"`
}

// Metrics configures the operators' Prometheus endpoint.
type Metrics struct {
	// Token, when set, is a bearer token that may read /metrics besides
	// operators (for a scraper).
	Token string `yaml:"token" env:"XAVYO_METRICS_TOKEN" secret:"ref" desc:"bearer token a Prometheus scraper presents to read /metrics, or a secret reference to it (at least 32 characters; default: operators only)"`
	// TenantLabels adds tenant ids to the gateway's metric labels.
	TenantLabels bool `yaml:"tenant_labels" env:"XAVYO_METRICS_TENANT_LABELS" desc:"label gateway metrics with tenant ids (default false)"`
}

// SMTP is the relay email goes through (invitations, password resets,
// verification, security notifications). Without a host no mail is sent,
// and the flows that need it say so.
type SMTP struct {
	Host     string `yaml:"host" env:"XAVYO_SMTP_HOST" desc:"SMTP relay host (default: none, no email is sent)"`
	Port     int    `yaml:"port" env:"XAVYO_SMTP_PORT" desc:"relay port (default 587; 465 with implicit TLS, 25 without TLS)"`
	Username string `yaml:"username" env:"XAVYO_SMTP_USERNAME" desc:"SMTP AUTH user (default: no authentication)"`
	Password string `yaml:"password" env:"XAVYO_SMTP_PASSWORD" secret:"ref" desc:"SMTP AUTH password, or a secret reference to it (env:NAME, file:/path[#json.key])"`
	From     string `yaml:"from" env:"XAVYO_SMTP_FROM" desc:"sender address, e.g. \"Example <no-reply@example.com>\" (required with smtp.host)"`
	TLS      string `yaml:"tls" env:"XAVYO_SMTP_TLS" desc:"starttls (default: required), implicit (SMTPS) or none (a loopback relay only)"`
}

// DPoP is how DPoP proofs (RFC 9449) are taken.
type DPoP struct {
	RequireNonce bool `yaml:"require_nonce" env:"XAVYO_DPOP_REQUIRE_NONCE" desc:"DPoP proofs must carry a nonce xavyo gave (DPoP-Nonce), at the token endpoint and the gateway (default false)"`
}

// WebAuthn is the relying party passkeys and security keys are bound to.
type WebAuthn struct {
	RPID    string   `yaml:"rp_id" env:"XAVYO_WEBAUTHN_RP_ID" desc:"WebAuthn relying party id: the host (or a registrable suffix of it) people reach the sign-in pages at (default: admin.public_url's host; localhost when that is a loopback address)"`
	Origins []string `yaml:"origins" env:"XAVYO_WEBAUTHN_ORIGINS" desc:"comma-separated origins the sign-in pages are served at (default: admin.public_url's origin, and http://localhost:{port} when the rp id is localhost)"`
}

// DefaultTenant is created, with its first tenant_admin, at the first
// start of a platform that has no tenant.
type DefaultTenant struct {
	Slug          string `yaml:"slug" env:"XAVYO_DEFAULT_TENANT" desc:"slug of the tenant created at first start (default default)"`
	AdminEmail    string `yaml:"admin_email" env:"XAVYO_DEFAULT_ADMIN_EMAIL" desc:"email of its first tenant_admin (default admin@example.com)"`
	AdminPassword string `yaml:"admin_password" env:"XAVYO_DEFAULT_ADMIN_PASSWORD" secret:"ref" desc:"that admin's initial password or a secret reference to it, to be changed at first login (default: generated and printed once)"`
}

// Audit configures the audit log.
type Audit struct {
	Durability string `yaml:"durability" env:"XAVYO_AUDIT_DURABILITY" desc:"process (default): gateway call records survive any crash of xavyo and reach the disk within moments; disk: every record waits for the disk flush"`
}

// Webhooks configures the delivery of events to tenants' endpoints.
type Webhooks struct {
	MaxAttempts int `yaml:"max_attempts" env:"XAVYO_WEBHOOKS_MAX_ATTEMPTS" desc:"tries of a delivery before it is dead-lettered (default 9: over about eight hours)"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level" env:"XAVYO_LOG_LEVEL" desc:"debug, info, warn or error (default info)"`
	Format string `yaml:"format" env:"XAVYO_LOG_FORMAT" desc:"text or json (default text)"`
}

// Load reads the YAML file at path (none when empty), applies the
// environment (a list of KEY=VALUE), then defaults and validation.
func Load(path string, environ []string) (*Config, error) {
	c := &Config{}
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("parse config %s: %w", path, err)
		}
		var keys map[string]any
		if err := yaml.Unmarshal(raw, &keys); err == nil {
			_, c.BootstrapTokenSet = keys["bootstrap_token"]
		}
	}
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	if _, ok := env["XAVYO_BOOTSTRAP_TOKEN"]; ok {
		c.BootstrapTokenSet = true
	}
	if err := applyEnv(reflect.ValueOf(c).Elem(), env); err != nil {
		return nil, err
	}
	r := secretref.Resolver{Getenv: func(k string) string { return env[k] }}
	if err := resolveSecrets(reflect.ValueOf(c).Elem(), "", r); err != nil {
		return nil, err
	}
	if err := c.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	return c, nil
}

// CheckAndSetDefaults fills defaults and validates; it is the only place
// that does either.
func (c *Config) CheckAndSetDefaults() error {
	var errs []error
	if c.DataDir == "" {
		c.DataDir = "data"
	}
	if c.Database.MaxConns == 0 {
		c.Database.MaxConns = 16
	}
	if c.Database.MaxConns < 1 {
		errs = append(errs, errors.New("database.max_conns must be positive"))
	}
	if c.Database.URL != "" && !strings.HasPrefix(c.Database.URL, "postgres://") &&
		!strings.HasPrefix(c.Database.URL, "postgresql://") && !strings.HasPrefix(c.Database.URL, "sqlite:") {
		errs = append(errs, errors.New("database.url must be a postgres:// or postgresql:// URL, or sqlite:PATH"))
	}
	if c.Database.MigrateURL != "" && !c.IsPostgres() {
		errs = append(errs, errors.New("database.migrate_url is only used with PostgreSQL"))
	}
	if c.Admin.Addr == "" {
		c.Admin.Addr = "127.0.0.1:8080"
	}
	if c.Agent.Addr == "" {
		c.Agent.Addr = "127.0.0.1:8443"
	}
	if c.Admin.BodyLimit == 0 {
		c.Admin.BodyLimit = 1 << 20
	}
	for name, addr := range map[string]string{"admin.addr": c.Admin.Addr, "agent.addr": c.Agent.Addr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	for name, u := range map[string]string{"admin.public_url": c.Admin.PublicURL, "agent.public_url": c.Agent.PublicURL} {
		if u == "" {
			continue
		}
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || pu.RawQuery != "" || pu.Fragment != "" {
			errs = append(errs, fmt.Errorf("%s must be an absolute http(s) URL without query", name))
		}
	}
	c.Admin.PublicURL = strings.TrimSuffix(c.Admin.PublicURL, "/")
	c.Agent.PublicURL = strings.TrimSuffix(c.Agent.PublicURL, "/")
	if (c.Agent.TLS.CertFile == "") != (c.Agent.TLS.KeyFile == "") {
		errs = append(errs, errors.New("agent.tls.cert_file and agent.tls.key_file go together"))
	}
	for _, o := range c.Agent.AllowedOrigins {
		ou, err := url.Parse(o)
		if err != nil || ou.Scheme == "" || ou.Host == "" || ou.Path != "" {
			errs = append(errs, fmt.Errorf("agent.allowed_origins: %q is not an origin (scheme://host[:port])", o))
		}
	}
	if c.Secrets.KEK != "" {
		if k, err := base64.StdEncoding.DecodeString(c.Secrets.KEK); err != nil || len(k) != 32 {
			errs = append(errs, errors.New("secrets.kek must be 32 bytes, base64-encoded"))
		}
	}
	if c.WebAuthn.RPID != "" && (strings.ContainsAny(c.WebAuthn.RPID, ":/ ") || net.ParseIP(c.WebAuthn.RPID) != nil) {
		errs = append(errs, errors.New("webauthn.rp_id must be a host name (not an address, no scheme or port)"))
	}
	for _, o := range c.WebAuthn.Origins {
		ou, err := url.Parse(o)
		if err != nil || (ou.Scheme != "http" && ou.Scheme != "https") || ou.Host == "" || ou.Path != "" {
			errs = append(errs, fmt.Errorf("webauthn.origins: %q is not an origin (scheme://host[:port])", o))
		}
	}
	if c.DefaultTenant.Slug == "" {
		c.DefaultTenant.Slug = "default"
	}
	if c.Platform.OperatorTenant == "" {
		c.Platform.OperatorTenant = "operator"
	}
	if c.Platform.OperatorTenant == c.DefaultTenant.Slug {
		errs = append(errs, errors.New("platform.operator_tenant must differ from default_tenant.slug"))
	}
	if c.Metrics.Token != "" && len(c.Metrics.Token) < 32 {
		errs = append(errs, errors.New("metrics.token must be at least 32 characters"))
	}
	if c.SMTP.Host != "" {
		if _, err := mail.ParseAddress(c.SMTP.From); err != nil {
			errs = append(errs, errors.New("smtp.from must be an email address when smtp.host is set"))
		}
		switch c.SMTP.TLS {
		case "", "starttls", "implicit", "none":
		default:
			errs = append(errs, errors.New("smtp.tls must be starttls, implicit or none"))
		}
		if c.SMTP.Port < 0 || c.SMTP.Port > 65535 {
			errs = append(errs, errors.New("smtp.port must be a port number"))
		}
	}
	if c.DefaultTenant.AdminEmail == "" {
		c.DefaultTenant.AdminEmail = "admin@example.com"
	}
	if c.PKI.TrustDomain == "" {
		c.PKI.TrustDomain = "xavyo.local"
	}
	if !validTrustDomain(c.PKI.TrustDomain) {
		errs = append(errs, errors.New("pki.trust_domain must be a lowercase DNS-like name"))
	}
	if c.BootstrapToken != "" && len(c.BootstrapToken) < 32 {
		errs = append(errs, errors.New("bootstrap_token must be at least 32 characters"))
	}
	switch c.Log.Level {
	case "":
		c.Log.Level = "info"
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, errors.New("log.level must be debug, info, warn or error"))
	}
	switch c.Audit.Durability {
	case "":
		c.Audit.Durability = "process"
	case "process", "disk":
	default:
		errs = append(errs, errors.New("audit.durability must be process or disk"))
	}
	switch c.Log.Format {
	case "":
		c.Log.Format = "text"
	case "text", "json":
	default:
		errs = append(errs, errors.New("log.format must be text or json"))
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 15 * time.Second
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, errors.New("shutdown_timeout must be positive"))
	}
	if c.Webhooks.MaxAttempts < 0 || c.Webhooks.MaxAttempts > 50 {
		errs = append(errs, errors.New("webhooks.max_attempts must be from 1 to 50"))
	}
	if c.Agent.BodyTimeout == 0 {
		c.Agent.BodyTimeout = 10 * time.Second
	}
	if c.Agent.BodyTimeout < 0 {
		errs = append(errs, errors.New("agent.body_timeout must be positive"))
	}
	if c.MCP.MaxSessions < 0 || c.MCP.MaxStreams < 0 {
		errs = append(errs, errors.New("mcp.max_sessions_per_principal and mcp.max_streams_per_principal must be positive"))
	}
	if c.MCP.PageSize < 0 || c.MCP.PageSize > 1000 {
		errs = append(errs, errors.New("mcp.page_size must be from 1 to 1000"))
	}
	for _, cmd := range c.MCP.StdioAllowlist {
		if !filepath.IsAbs(cmd) {
			errs = append(errs, fmt.Errorf("mcp.stdio_allowlist: %q must be an absolute path", cmd))
		}
	}
	return errors.Join(errs...)
}

func validTrustDomain(s string) bool {
	if len(s) == 0 || len(s) > 255 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// IsPostgres reports whether the store is PostgreSQL.
func (c *Config) IsPostgres() bool {
	return strings.HasPrefix(c.Database.URL, "postgres://") || strings.HasPrefix(c.Database.URL, "postgresql://")
}

// SQLitePath returns the embedded database file.
func (c *Config) SQLitePath() string {
	if p, ok := strings.CutPrefix(c.Database.URL, "sqlite:"); ok && p != "" {
		return p
	}
	return filepath.Join(c.DataDir, "xavyo.db")
}

// EnvVar describes one environment variable and the key it overrides.
type EnvVar struct {
	Name string
	Key  string
	Desc string
}

// EnvVars lists every environment variable the configuration reads.
func EnvVars() []EnvVar {
	var out []EnvVar
	walk(reflect.TypeOf(Config{}), "", func(f reflect.StructField, key string) {
		if name := f.Tag.Get("env"); name != "" {
			out = append(out, EnvVar{Name: name, Key: key, Desc: f.Tag.Get("desc")})
		}
	})
	return out
}

func walk(t reflect.Type, prefix string, fn func(reflect.StructField, string)) {
	for i := range t.NumField() {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if name == "-" || name == "" {
			continue
		}
		key := prefix + name
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
			walk(f.Type, key+".", fn)
			continue
		}
		fn(f, key)
	}
}

// resolveSecrets replaces the secret references of fields tagged
// secret:"ref" by the secrets they name. Sealed values belong in the
// store, not the configuration (the KEK is not known yet).
func resolveSecrets(v reflect.Value, prefix string, r secretref.Resolver) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		fv := v.Field(i)
		key := prefix + strings.Split(f.Tag.Get("yaml"), ",")[0]
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
			if err := resolveSecrets(fv, key+".", r); err != nil {
				return err
			}
			continue
		}
		if f.Tag.Get("secret") != "ref" || !secretref.IsReference(fv.String()) {
			continue
		}
		if strings.HasPrefix(fv.String(), secretref.Sealed) {
			return fmt.Errorf("%s: sealed values are kept in the store; configuration names env: or file: references", key)
		}
		val, err := r.Resolve(fv.String(), nil)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		fv.SetString(val)
	}
	return nil
}

func applyEnv(v reflect.Value, env map[string]string) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct {
			if err := applyEnv(fv, env); err != nil {
				return err
			}
			continue
		}
		name := f.Tag.Get("env")
		raw, ok := env[name]
		if name == "" || !ok {
			continue
		}
		if err := setValue(fv, raw); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func setValue(v reflect.Value, raw string) error {
	switch v.Interface().(type) {
	case string:
		v.SetString(raw)
	case bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return errors.New("want true or false")
		}
		v.SetBool(b)
	case int:
		n, err := strconv.Atoi(raw)
		if err != nil {
			return errors.New("want an integer")
		}
		v.SetInt(int64(n))
	case time.Duration:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return errors.New("want a duration such as 15s")
		}
		v.SetInt(int64(d))
	case []string:
		var parts []string
		for p := range strings.SplitSeq(raw, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		v.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}

// RelyingParty is the WebAuthn relying party id and origins, with their
// defaults taken from the admin plane's public URL: its host (localhost
// for a loopback address, since an address is never a relying party id)
// and its origin (with http://localhost:{port} beside a loopback one).
func (w WebAuthn) RelyingParty(adminPublicURL string) (string, []string) {
	u, err := url.Parse(adminPublicURL)
	if err != nil {
		return w.RPID, w.Origins
	}
	host := u.Hostname()
	loopback := false
	if ip := net.ParseIP(host); ip != nil {
		loopback, host = ip.IsLoopback(), "localhost"
	}
	id := w.RPID
	if id == "" {
		id = host
	}
	origins := w.Origins
	if len(origins) == 0 {
		origins = []string{u.Scheme + "://" + u.Host}
		if loopback && id == "localhost" {
			local := "localhost"
			if u.Port() != "" {
				local = net.JoinHostPort(local, u.Port())
			}
			origins = append(origins, u.Scheme+"://"+local)
		}
	}
	return id, origins
}
