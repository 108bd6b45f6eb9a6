package main

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
)

// TestSAMLWithNodeSAML runs test/interop/saml.mjs: @node-saml/node-saml,
// a real SAML service provider, against a tenant's identity provider
// (SP-initiated SSO over HTTP-Redirect and HTTP-POST, signature and
// InResponseTo validation, an unentitled person refused). Like the other
// interop suites it needs Node and `npm ci` in test/interop.
func TestSAMLWithNodeSAML(t *testing.T) {
	dir, _ := filepath.Abs("../../test/interop")
	_, nodeErr := exec.LookPath("node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@node-saml", "node-saml")); err != nil || nodeErr != nil {
		if os.Getenv("XAVYO_REQUIRE_INTEROP") == "1" {
			t.Fatalf("node and test/interop/node_modules are required (npm ci --prefix test/interop): %v %v", err, nodeErr)
		}
		t.Skip("node or test/interop/node_modules missing")
	}
	h := start(t, env(t, store.SQLite, t.TempDir()), nil)
	g := apptest.NewGovTenant(t, h, "nsaml")
	adaID, _ := g.User("ada", "")
	g.User("bob", "")
	ent := g.Ent("notes.sso", map[string]any{"risk_level": "low"})
	resp, body := h.DoAs(g.Tok, "POST", "/api/v1/assignments", map[string]any{"subject_type": "user", "subject_id": adaID, "target_type": "entitlement",
		"target_id": ent})
	expect(t, resp, body, 201, "ada may use notes")
	// The SP's signing key and certificate (node-saml signs its logout
	// requests with them; its metadata carries the certificate).
	key, cert := apptest.SelfSigned(t, "notes")
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	cmd := exec.Command("node", "saml.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ADMIN="+h.Admin, "SLUG="+g.Slug, "TOKEN="+g.Tok, "ENTITLEMENT="+ent,
		"USER_LOGIN=ada@"+g.Slug+".test", "OTHER_LOGIN=bob@"+g.Slug+".test", "PASSWORD=Corr3ct-horse-battery-9",
		"SP_KEY="+string(keyPEM), "SP_CERT="+base64.StdEncoding.EncodeToString(cert.Raw))
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil || !strings.Contains(string(out), "saml: all passed") {
		t.Fatalf("saml.mjs failed: %v", err)
	}
}
