package rest_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
)

// TestIDJAGBetweenTenants: Enterprise-Managed Authorization between two
// tenants. The enterprise (corp) signs Ada in to its MCP client, and
// exchanges her ID token for an identity assertion grant (ID-JAG) for the
// apps tenant's authorization server, which it registered with the
// entitlement Ada holds. The apps tenant trusts corp for ID-JAGs: the
// client (known there by another id) presents it with the jwt-bearer
// grant, gets an access token for Ada (created just in time) and calls
// the MCP gateway with it. Refused: Bob (not entitled), an audience
// corp did not register, the grant replayed, presented by another client
// or at a tenant it was not made for, and a provider not trusted for
// ID-JAGs.
func TestIDJAGBetweenTenants(t *testing.T) {
	t.Parallel()
	h := apptest.Start(t, append(apptest.Env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), apptest.Options{})
	corp := apptest.NewGovTenant(t, h, "corp")
	adaID, _ := corp.User("ada", "")
	corp.User("bob", "")
	ent := corp.Ent("apps.tools", nil)
	resp, body := h.DoAs(corp.Tok, "POST", "/api/v1/assignments", map[string]any{"subject_type": "user", "subject_id": adaID, "target_type": "entitlement",
		"target_id": ent})
	apptest.Expect(t, resp, body, 201, "ada may reach the apps tenant's tools")

	apps := apptest.UniqueSlug("apps")
	_, appsTok := h.TenantAdmin(t, apps)
	appsIssuer, mcpURL := h.Admin+"/t/"+apps, h.Agent+"/t/"+apps+"/mcp"
	type client struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	newClient := func(tok, name string) client {
		t.Helper()
		resp, body := h.DoAs(tok, "POST", "/api/v1/clients", map[string]any{"name": name, "redirect_uris": []string{"https://client.example/cb"},
			"token_endpoint_auth_method": "client_secret_basic", "first_party": true})
		apptest.Expect(t, resp, body, 201, "client "+name)
		return apptest.Decode[client](t, body)
	}
	corpClient := newClient(corp.Tok, "MCP client")
	appsClient := newClient(appsTok, "MCP client")
	otherClient := newClient(appsTok, "Another client")
	// Agents of corp that act for people: one entitled too, one not.
	agent := func(slug string) apptest.Agent {
		t.Helper()
		resp, body := h.DoAs(corp.Tok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": slug, "name": slug, "owner_id": adaID})
		apptest.Expect(t, resp, body, 201, "agent "+slug)
		return apptest.Decode[apptest.Agent](t, body)
	}
	helper, stranger := agent("helper"), agent("stranger")
	resp, body = h.DoAs(corp.Tok, "POST", "/api/v1/assignments", map[string]any{"subject_type": "nhi", "subject_id": helper.ID, "target_type": "entitlement",
		"target_id": ent})
	apptest.Expect(t, resp, body, 201, "the helper agent may reach the apps tenant's tools")

	// Corp registers the apps tenant's authorization server.
	resp, body = h.DoAs(corp.Tok, "POST", "/api/v1/resource-servers", map[string]any{"key": "apps", "issuer": appsIssuer, "resources": []string{mcpURL},
		"scopes": []string{"mcp"}, "entitlement_id": ent,
		"clients": map[string]string{corpClient.ClientID: appsClient.ClientID, helper.ClientID: appsClient.ClientID, stranger.ClientID: appsClient.ClientID}})
	apptest.Expect(t, resp, body, 201, "resource server")
	// The apps tenant trusts corp for ID-JAGs.
	resp, body = h.DoAs(appsTok, "POST", "/api/v1/identity-providers", map[string]any{"key": "corp", "name": "Corp",
		"settings": map[string]any{"issuer": h.Admin + "/t/" + corp.Slug, "client_id": "apps-at-corp", "id_jag": true, "jit": true, "trust_email": true}})
	apptest.Expect(t, resp, body, 201, "trusted enterprise IdP")
	corpProvider := apptest.Decode[providerJSON](t, body)

	// signIn signs a person in at corp for its MCP client (code + PKCE):
	// their ID token and access token.
	signIn := func(who string) (string, string) {
		t.Helper()
		b := apptest.NewBrowser(t)
		verifier, challenge := pkce()
		_, page := b.Do("GET", h.Admin+"/t/"+corp.Slug+"/authorize?"+url.Values{"client_id": {corpClient.ClientID},
			"redirect_uri": {"https://client.example/cb"}, "response_type": {"code"}, "scope": {"openid email"}, "state": {"s"}, "nonce": {"n"},
			"code_challenge": {challenge}, "code_challenge_method": {"S256"}}.Encode(), nil)
		resp, _ := b.Do("POST", h.Admin+"/t/"+corp.Slug+"/login", url.Values{"tx": {apptest.Field(t, page, "tx")}, "csrf": {apptest.Field(t, page, "csrf")},
			"login": {who + "@" + corp.Slug + ".test"}, "password": {"Corr3ct-horse-battery-9"}})
		loc, _ := url.Parse(resp.Header.Get("Location"))
		status, out := h.Form("/t/"+corp.Slug+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
			"redirect_uri": {"https://client.example/cb"}, "code_verifier": {verifier}}, corpClient.ClientID, corpClient.ClientSecret)
		if status != 200 || out["id_token"] == nil {
			t.Fatalf("%s's ID token: %d %v", who, status, out)
		}
		return out["id_token"].(string), out["access_token"].(string)
	}
	idToken := func(who string) string { t.Helper(); idt, _ := signIn(who); return idt }
	exchange := func(idt, audience string) (int, map[string]any) {
		t.Helper()
		return h.Form("/t/"+corp.Slug+"/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"requested_token_type": {"urn:ietf:params:oauth:token-type:id-jag"}, "audience": {audience}, "resource": {mcpURL}, "scope": {"mcp"},
			"subject_token": {idt}, "subject_token_type": {"urn:ietf:params:oauth:token-type:id_token"}}, corpClient.ClientID, corpClient.ClientSecret)
	}
	redeem := func(slug, jag string, cl client) (int, map[string]any) {
		t.Helper()
		return h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {jag}},
			cl.ClientID, cl.ClientSecret)
	}

	adaIDT, adaAccess := signIn("ada")
	status, out := exchange(adaIDT, appsIssuer)
	if status != 200 || out["issued_token_type"] != "urn:ietf:params:oauth:token-type:id-jag" || out["token_type"] != "N_A" {
		t.Fatalf("ID-JAG: %d %v", status, out)
	}
	jag := out["access_token"].(string)
	if hdr := apptest.JWTHeader(t, jag); hdr["typ"] != "oauth-id-jag+jwt" {
		t.Fatalf("ID-JAG header: %v", hdr)
	}
	claims := apptest.JWTClaims(t, jag)
	if claims["aud"] != appsIssuer || claims["client_id"] != appsClient.ClientID || claims["sub"] != adaID || claims["resource"] != mcpURL ||
		claims["scope"] != "mcp" || claims["jti"] == nil {
		t.Fatalf("ID-JAG claims: %v", claims)
	}
	// Another client of the apps tenant cannot use it; it stays unspent.
	if status, out := redeem(apps, jag, otherClient); status != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("another client: %d %v", status, out)
	}
	status, out = redeem(apps, jag, appsClient)
	if status != 200 || out["token_type"] != "Bearer" {
		t.Fatalf("redeem: %d %v", status, out)
	}
	at := out["access_token"].(string)
	atClaims := apptest.JWTClaims(t, at)
	if aud := apptest.JSON(atClaims["aud"]); !strings.Contains(aud, mcpURL) || atClaims["client_id"] != appsClient.ClientID ||
		!strings.Contains(apptest.JSON(atClaims["amr"]), "fed") {
		t.Fatalf("the apps tenant's token: %v", atClaims)
	}
	ada := findUser(t, h, appsTok, "ada@"+corp.Slug+".test")
	if ada == nil || atClaims["sub"] != ada.ID {
		t.Fatalf("Ada at the apps tenant: %+v (sub %v)", ada, atClaims["sub"])
	}
	// The token opens an MCP session at the apps tenant's gateway.
	req, _ := http.NewRequest("POST", mcpURL, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"idjag","version":"1"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+at)
	mresp, err := h.TLS.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	mbody, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if mresp.StatusCode != 200 || mresp.Header.Get("Mcp-Session-Id") == "" {
		t.Fatalf("MCP with the ID-JAG's token: %d %s", mresp.StatusCode, mbody)
	}
	if status, out := redeem(apps, jag, appsClient); status != 400 || !strings.Contains(apptest.JSON(out), "used before") {
		t.Fatalf("a replayed ID-JAG: %d %v", status, out)
	}

	// An agent acting for Ada exchanges her access token: the grant names
	// her, with the agent as actor; an agent without the entitlement gets
	// none.
	agentExchange := func(a apptest.Agent) (int, map[string]any) {
		t.Helper()
		return h.Form("/t/"+corp.Slug+"/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"requested_token_type": {"urn:ietf:params:oauth:token-type:id-jag"}, "audience": {appsIssuer}, "resource": {mcpURL}, "scope": {"mcp"},
			"subject_token": {adaAccess}, "subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}}, a.ClientID, a.ClientSecret)
	}
	status, out = agentExchange(helper)
	if status != 200 {
		t.Fatalf("an agent's ID-JAG: %d %v", status, out)
	}
	agentJAG := apptest.JWTClaims(t, out["access_token"].(string))
	if act, _ := agentJAG["act"].(map[string]any); act == nil || act["sub"] != helper.ID || agentJAG["sub"] != adaID || agentJAG["client_id"] != appsClient.ClientID {
		t.Fatalf("an agent's ID-JAG claims: %v", agentJAG)
	}
	if status, out := redeem(apps, out["access_token"].(string), appsClient); status != 200 {
		t.Fatalf("redeem an agent's ID-JAG: %d %v", status, out)
	}
	if status, out := agentExchange(stranger); status != 400 || out["error"] != "access_denied" {
		t.Fatalf("an agent without the entitlement: %d %v", status, out)
	}

	// At a tenant it was not made for (which trusts corp too): refused.
	third := apptest.UniqueSlug("third")
	_, thirdTok := h.TenantAdmin(t, third)
	resp, body = h.DoAs(thirdTok, "POST", "/api/v1/identity-providers", map[string]any{"key": "corp",
		"settings": map[string]any{"issuer": h.Admin + "/t/" + corp.Slug, "client_id": "x", "id_jag": true, "jit": true, "trust_email": true}})
	apptest.Expect(t, resp, body, 201, "third trusts corp")
	thirdClient := newClient(thirdTok, "MCP client")
	_, out = exchange(adaIDT, appsIssuer)
	if status, out := redeem(third, out["access_token"].(string), thirdClient); status != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("at another tenant: %d %v", status, out)
	}
	// Bob holds no entitlement for it; an unregistered audience; the
	// ID token of another client.
	if status, out := exchange(idToken("bob"), appsIssuer); status != 400 || out["error"] != "access_denied" {
		t.Fatalf("bob: %d %v", status, out)
	}
	if status, out := exchange(adaIDT, h.Admin+"/t/"+third); status != 400 || out["error"] != "invalid_target" {
		t.Fatalf("an unregistered audience: %d %v", status, out)
	}
	if a := audit(t, h, corp.Tok, "oauth.id_jag.issue"); !strings.Contains(a, `"outcome":"denied"`) || !strings.Contains(a, `"outcome":"success"`) {
		t.Fatalf("ID-JAG issuance audit: %s", a)
	}
	// A provider no longer trusted for ID-JAGs: refused.
	resp, body = h.DoAs(appsTok, "PATCH", "/api/v1/identity-providers/"+corpProvider.ID, map[string]any{"settings": map[string]any{
		"issuer": h.Admin + "/t/" + corp.Slug, "client_id": "apps-at-corp", "jit": true, "trust_email": true}})
	apptest.Expect(t, resp, body, 200, "stop trusting ID-JAGs")
	_, out = exchange(adaIDT, appsIssuer)
	if status, out := redeem(apps, out["access_token"].(string), appsClient); status != 400 || !strings.Contains(apptest.JSON(out), "not a trusted") {
		t.Fatalf("an untrusted issuer: %d %v", status, out)
	}
}
