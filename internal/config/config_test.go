package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xavyo/xavyo/internal/config"
)

func TestDefaultsWithNoConfiguration(t *testing.T) {
	c, err := config.Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "data" || c.Admin.Addr != "127.0.0.1:8080" || c.Agent.Addr != "127.0.0.1:8443" ||
		c.PKI.TrustDomain != "xavyo.local" || c.IsPostgres() || c.SQLitePath() != filepath.Join("data", "xavyo.db") ||
		c.ShutdownTimeout != 15*time.Second || c.BootstrapTokenSet || c.Egress.AllowPrivate {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestFileThenEnvironment(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "xavyo.yaml")
	yaml := `
data_dir: /var/lib/xavyo
database:
  url: postgres://app@db/xavyo
  migrate_url: postgres://owner@db/xavyo
admin:
  addr: 0.0.0.0:9000
  public_url: https://admin.example.test/
agent:
  allowed_origins: [https://a.example.test]
  tls:
    cert_file: /etc/xavyo/tls.crt
    key_file: /etc/xavyo/tls.key
egress:
  allow_private: true
mcp:
  stdio_allowlist: [/usr/bin/mcp-server]
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path, []string{
		"XAVYO_ADMIN_ADDR=127.0.0.1:9100",
		"XAVYO_AGENT_ALLOWED_ORIGINS=https://b.example.test, https://c.example.test",
		"XAVYO_EGRESS_ALLOW_PRIVATE=false",
		"XAVYO_SHUTDOWN_TIMEOUT=3s",
		"UNRELATED=1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/var/lib/xavyo" || !c.IsPostgres() || c.Database.MigrateURL != "postgres://owner@db/xavyo" {
		t.Fatalf("file values: %+v", c)
	}
	if c.Admin.Addr != "127.0.0.1:9100" || c.Admin.PublicURL != "https://admin.example.test" {
		t.Fatalf("admin: %+v", c.Admin)
	}
	if strings.Join(c.Agent.AllowedOrigins, " ") != "https://b.example.test https://c.example.test" {
		t.Fatalf("origins: %v", c.Agent.AllowedOrigins)
	}
	if c.Egress.AllowPrivate || c.ShutdownTimeout != 3*time.Second || c.MCP.StdioAllowlist[0] != "/usr/bin/mcp-server" {
		t.Fatalf("env overrides: %+v", c)
	}
}

func TestBootstrapTokenSetVersusUnset(t *testing.T) {
	c, _ := config.Load("", []string{"XAVYO_BOOTSTRAP_TOKEN="})
	if !c.BootstrapTokenSet || c.BootstrapToken != "" {
		t.Fatal("empty token must count as set (revocation)")
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	_ = os.WriteFile(path, []byte("bootstrap_token: \"\"\n"), 0o600)
	c, _ = config.Load(path, nil)
	if !c.BootstrapTokenSet {
		t.Fatal("empty token in the file must count as set")
	}
}

func TestInvalidConfigurations(t *testing.T) {
	cases := map[string]struct {
		yaml string
		env  []string
		want string
	}{
		"unknown key":        {yaml: "data_dri: x\n", want: "data_dri"},
		"wrong type":         {yaml: "egress:\n  allow_private: maybe\n", want: "line 2"},
		"bad database url":   {env: []string{"XAVYO_DATABASE_URL=mysql://x"}, want: "database.url"},
		"migrate on sqlite":  {env: []string{"XAVYO_DATABASE_MIGRATE_URL=postgres://o@db/x"}, want: "migrate_url"},
		"bad addr":           {env: []string{"XAVYO_ADMIN_ADDR=nope"}, want: "admin.addr"},
		"relative url":       {env: []string{"XAVYO_AGENT_PUBLIC_URL=/mcp"}, want: "agent.public_url"},
		"half tls":           {env: []string{"XAVYO_AGENT_TLS_CERT_FILE=/x.crt"}, want: "key_file"},
		"bad origin":         {env: []string{"XAVYO_AGENT_ALLOWED_ORIGINS=https://a.test/path"}, want: "allowed_origins"},
		"short kek":          {env: []string{"XAVYO_SECRETS_KEK=c2hvcnQ="}, want: "secrets.kek"},
		"bad trust domain":   {env: []string{"XAVYO_PKI_TRUST_DOMAIN=Bad Domain"}, want: "trust_domain"},
		"short bootstrap":    {env: []string{"XAVYO_BOOTSTRAP_TOKEN=short"}, want: "bootstrap_token"},
		"bad bool env":       {env: []string{"XAVYO_EGRESS_ALLOW_PRIVATE=maybe"}, want: "XAVYO_EGRESS_ALLOW_PRIVATE"},
		"bad duration env":   {env: []string{"XAVYO_SHUTDOWN_TIMEOUT=soon"}, want: "XAVYO_SHUTDOWN_TIMEOUT"},
		"relative stdio cmd": {env: []string{"XAVYO_MCP_STDIO_ALLOWLIST=mcp-server"}, want: "stdio_allowlist"},
		"bad log level":      {env: []string{"XAVYO_LOG_LEVEL=loud"}, want: "log.level"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			path := ""
			if tc.yaml != "" {
				path = filepath.Join(t.TempDir(), "c.yaml")
				_ = os.WriteFile(path, []byte(tc.yaml), 0o600)
			}
			_, err := config.Load(path, tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
		})
	}
}

func TestEnvVarsCoverTheContractKeys(t *testing.T) {
	have := map[string]string{}
	for _, v := range config.EnvVars() {
		have[v.Key] = v.Name
		if v.Desc == "" {
			t.Errorf("%s has no description", v.Name)
		}
	}
	for key, env := range map[string]string{
		"data_dir": "XAVYO_DATA_DIR", "database.url": "XAVYO_DATABASE_URL", "database.migrate_url": "XAVYO_DATABASE_MIGRATE_URL",
		"admin.addr": "XAVYO_ADMIN_ADDR", "admin.public_url": "XAVYO_ADMIN_PUBLIC_URL", "agent.addr": "XAVYO_AGENT_ADDR",
		"agent.public_url": "XAVYO_AGENT_PUBLIC_URL", "agent.tls.cert_file": "XAVYO_AGENT_TLS_CERT_FILE",
		"agent.tls.key_file": "XAVYO_AGENT_TLS_KEY_FILE", "agent.tls.client_ca_file": "XAVYO_AGENT_TLS_CLIENT_CA_FILE",
		"agent.allowed_origins": "XAVYO_AGENT_ALLOWED_ORIGINS", "bootstrap_token": "XAVYO_BOOTSTRAP_TOKEN",
		"secrets.kek": "XAVYO_SECRETS_KEK", "pki.trust_domain": "XAVYO_PKI_TRUST_DOMAIN",
		"egress.allow_private": "XAVYO_EGRESS_ALLOW_PRIVATE", "mcp.stdio_allowlist": "XAVYO_MCP_STDIO_ALLOWLIST",
	} {
		if have[key] != env {
			t.Errorf("key %s: env %q, want %q", key, have[key], env)
		}
	}
}

func TestSecretReferences(t *testing.T) {
	dir := t.TempDir()
	kek := filepath.Join(dir, "kek.json")
	if err := os.WriteFile(kek, []byte(`{"xavyo":{"kek":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(dir, "metrics")
	if err := os.WriteFile(tok, []byte(strings.Repeat("m", 40)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "xavyo.yaml")
	if err := os.WriteFile(cfgFile, []byte("metrics:\n  token: file:"+tok+"\nsecrets:\n  kek: file:"+kek+"#xavyo.kek\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(cfgFile, []string{"XAVYO_BOOTSTRAP_TOKEN=env:BREAK_GLASS", "BREAK_GLASS=" + strings.Repeat("b", 40)})
	if err != nil {
		t.Fatal(err)
	}
	if c.Metrics.Token != strings.Repeat("m", 40) || c.BootstrapToken != strings.Repeat("b", 40) ||
		c.Secrets.KEK != "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" {
		t.Fatalf("references not resolved: %+v", c)
	}
	// A reference that cannot be resolved fails the start, naming the key
	// and the reference.
	for env, want := range map[string]string{
		"XAVYO_METRICS_TOKEN=env:NOT_SET":                      "metrics.token",
		"XAVYO_SECRETS_KEK=file:" + filepath.Join(dir, "none"): "secrets.kek",
		"XAVYO_DEFAULT_ADMIN_PASSWORD=sealed:AAAA":             "default_tenant.admin_password",
	} {
		_, err := config.Load("", []string{env})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one naming %s", env, err, want)
		}
	}
	// Other keys are taken as they are, references or not.
	c, err = config.Load("", []string{"XAVYO_DATA_DIR=env:HOME"})
	if err != nil || c.DataDir != "env:HOME" {
		t.Fatalf("data_dir %q, %v", c.DataDir, err)
	}
}

func TestWebAuthnRelyingParty(t *testing.T) {
	for name, tc := range map[string]struct {
		w       config.WebAuthn
		public  string
		id      string
		origins string
	}{
		"loopback address":  {public: "http://127.0.0.1:8080", id: "localhost", origins: "http://127.0.0.1:8080 http://localhost:8080"},
		"public host":       {public: "https://id.example.com", id: "id.example.com", origins: "https://id.example.com"},
		"configured suffix": {w: config.WebAuthn{RPID: "example.com"}, public: "https://id.example.com", id: "example.com", origins: "https://id.example.com"},
		"configured origins": {w: config.WebAuthn{RPID: "example.com", Origins: []string{"https://a.example.com", "https://b.example.com"}},
			public: "https://id.example.com", id: "example.com", origins: "https://a.example.com https://b.example.com"},
	} {
		id, origins := tc.w.RelyingParty(tc.public)
		if id != tc.id || strings.Join(origins, " ") != tc.origins {
			t.Errorf("%s: %s %v, want %s %s", name, id, origins, tc.id, tc.origins)
		}
	}
	for _, env := range []string{"XAVYO_WEBAUTHN_RP_ID=127.0.0.1", "XAVYO_WEBAUTHN_RP_ID=https://example.com", "XAVYO_WEBAUTHN_ORIGINS=example.com"} {
		if _, err := config.Load("", []string{env}); err == nil || !strings.Contains(err.Error(), "webauthn") {
			t.Errorf("%s: %v", env, err)
		}
	}
}
