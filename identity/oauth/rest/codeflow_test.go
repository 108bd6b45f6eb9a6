package rest_test

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
)

// TestAuthorizationCodeWithPKCE walks the code flow through the real
// login page (form posted over HTTP) and its negative cases.
func TestAuthorizationCodeWithPKCE(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) { authorizationCodeWithPKCE(t, flavor) })
	}
}

func authorizationCodeWithPKCE(t *testing.T, flavor store.Flavor) {
	h := apptest.Start(t, apptest.Env(t, flavor, t.TempDir()), apptest.Options{})
	slug := apptest.UniqueSlug("cf")
	_, tok := h.TenantAdmin(t, slug)
	redirectURI := "http://127.0.0.1:9999/callback"
	resp, body := h.DoAs(tok, "POST", "/api/v1/clients", map[string]any{"name": "Inspector", "redirect_uris": []string{redirectURI}, "first_party": true})
	apptest.Expect(t, resp, body, 201, "register client")
	clientID := apptest.Decode[struct {
		ClientID string `json:"client_id"`
	}](t, body).ClientID
	resp, body = h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "ada@cf.test", "password": "Analytical-engine-1843"})
	apptest.Expect(t, resp, body, 201, "user")
	ada := apptest.Decode[userJSON](t, body)
	iss := h.App.Config().Admin.PublicURL + "/t/" + slug

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	verifier := strings.Repeat("v", 20) + "-verifier-0123456789abcdef"
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	authz := func(mut func(url.Values)) (*http.Response, string) {
		v := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI}, "state": {"st-1"},
			"scope": {"openid mcp offline_access"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
		if mut != nil {
			mut(v)
		}
		r, err := noFollow.Get(h.Admin + "/t/" + slug + "/authorize?" + v.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r, string(b)
	}
	login := func(pw string, withCSRF bool) *http.Response {
		v := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI}, "state": {"st-1"},
			"scope": {"openid mcp offline_access"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
		resp, page := pageLogin(t, h, h.Admin+"/t/"+slug+"/authorize?"+v.Encode(), "ada@cf.test", pw, withCSRF)
		if !strings.Contains(page, "Inspector") {
			t.Fatalf("login page: %s", page)
		}
		return resp
	}
	codeOf := func(resp *http.Response) string {
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != 302 || err != nil || !strings.HasPrefix(loc.String(), redirectURI) || loc.Query().Get("state") != "st-1" || loc.Query().Get("iss") != iss {
			t.Fatalf("authorization response: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		return loc.Query().Get("code")
	}
	exchange := func(code, v string) (int, map[string]any) {
		return h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {code},
			"redirect_uri": {redirectURI}, "code_verifier": {v}}, "", "")
	}

	if r := login("wrong-password-123", true); r.StatusCode != 401 {
		t.Fatalf("wrong password: %d", r.StatusCode)
	}
	if r := login("Analytical-engine-1843", false); r.StatusCode != 403 {
		t.Fatalf("missing CSRF token: %d", r.StatusCode)
	}
	code := codeOf(login("Analytical-engine-1843", true))
	if c, out := exchange(code, strings.Repeat("x", 43)); c != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("wrong verifier: %d %v", c, out)
	}
	// The failed attempt did not burn the code: the right verifier works once.
	c, out := exchange(code, verifier)
	if c != 200 || out["refresh_token"] == nil {
		t.Fatalf("code exchange: %d %v", c, out)
	}
	claims := apptest.JWTClaims(t, out["access_token"].(string))
	if claims["sub"] != ada.ID || claims["iss"] != iss || claims["client_id"] != clientID {
		t.Fatalf("claims: %v", claims)
	}
	firstRefresh := out["refresh_token"].(string)
	firstAccess := out["access_token"].(string)
	// RFC 9068: access tokens are typed at+jwt; ID tokens stay JWT.
	if typ := apptest.JWTHeader(t, firstAccess)["typ"]; typ != "at+jwt" {
		t.Fatalf("access token typ %v", typ)
	}
	if typ := apptest.JWTHeader(t, out["id_token"].(string))["typ"]; typ != "JWT" {
		t.Fatalf("ID token typ %v", typ)
	}
	userinfo := func(at string) int {
		resp, _ := h.DoAs(at, "GET", "/t/"+slug+"/userinfo", nil)
		return resp.StatusCode
	}
	if c := userinfo(firstAccess); c != 200 {
		t.Fatalf("userinfo: %d", c)
	}
	// Replaying the code fails and revokes what it issued: the refresh
	// token and the access token (RFC 6749 §4.1.2).
	if c, out := exchange(code, verifier); c != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("code replay: %d %v", c, out)
	}
	if c := userinfo(firstAccess); c != 401 {
		t.Fatalf("the access token of a replayed code still works: %d", c)
	}
	refresh := func(rt string) (int, map[string]any) {
		return h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {rt}}, "", "")
	}
	if c, _ := refresh(firstRefresh); c != 400 {
		t.Fatalf("refresh from a replayed code survived: %d", c)
	}
	// Refresh rotation and reuse detection.
	_, out = exchange(codeOf(login("Analytical-engine-1843", true)), verifier)
	rt := out["refresh_token"].(string)
	c, out = refresh(rt)
	if c != 200 || out["refresh_token"] == rt {
		t.Fatalf("refresh: %d %v", c, out)
	}
	next := out["refresh_token"].(string)
	if c, _ := refresh(rt); c != 400 {
		t.Fatalf("refresh reuse accepted: %d", c)
	}
	if c, _ := refresh(next); c != 400 {
		t.Fatalf("the family survived reuse: %d", c)
	}

	// A public client revokes its own tokens with its client_id alone
	// (RFC 7009 §2.1); another client's revocation is ignored.
	_, out = exchange(codeOf(login("Analytical-engine-1843", true)), verifier)
	rt, at := out["refresh_token"].(string), out["access_token"].(string)
	revoke := func(client, tok string) int {
		c, _ := h.Form("/t/"+slug+"/revoke", url.Values{"client_id": {client}, "token": {tok}}, "", "")
		return c
	}
	resp, body = h.DoAs(tok, "POST", "/api/v1/clients", map[string]any{"name": "Other", "redirect_uris": []string{redirectURI}})
	apptest.Expect(t, resp, body, 201, "another client")
	if c := revoke(apptest.Decode[struct {
		ClientID string `json:"client_id"`
	}](t, body).ClientID, rt); c != 200 || userinfo(at) != 200 {
		t.Fatalf("another client's revocation: %d, userinfo %d", c, userinfo(at))
	}
	if c := revoke("app-unknown", rt); c != 401 {
		t.Fatalf("revocation by an unknown client: %d", c)
	}
	if c := revoke(clientID, rt); c != 200 {
		t.Fatalf("the public client's own revocation: %d", c)
	}
	if c, _ := refresh(rt); c != 400 || userinfo(at) != 401 {
		t.Fatalf("after revocation: refresh %d, userinfo %d", c, userinfo(at))
	}
	_, body = h.DoAs("", "GET", "/t/"+slug+"/.well-known/openid-configuration", nil)
	if md := apptest.Decode[struct {
		Revocation []string `json:"revocation_endpoint_auth_methods_supported"`
	}](t, body); !slices.Contains(md.Revocation, "none") {
		t.Fatalf("revocation auth methods: %v", md.Revocation)
	}
	// Negative authorization requests.
	if r, page := authz(func(v url.Values) { v.Set("redirect_uri", redirectURI+"/other") }); r.StatusCode != 400 || r.Header.Get("Location") != "" || !strings.Contains(page, "redirect_uri") {
		t.Fatalf("non-exact redirect_uri: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	for name, mut := range map[string]func(url.Values){
		"no PKCE":            func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") },
		"plain PKCE":         func(v url.Values) { v.Set("code_challenge_method", "plain") },
		"token response":     func(v url.Values) { v.Set("response_type", "token") },
		"unknown resource":   func(v url.Values) { v.Set("resource", "https://evil.example.test/mcp") },
		"scope beyond grant": func(v url.Values) { v.Set("scope", "admin") },
	} {
		r, _ := authz(mut)
		loc, _ := url.Parse(r.Header.Get("Location"))
		if r.StatusCode != 302 || loc.Query().Get("error") == "" || loc.Query().Get("iss") != iss || loc.Query().Get("state") != "st-1" {
			t.Errorf("%s: %d %s", name, r.StatusCode, r.Header.Get("Location"))
		}
	}
	if r, _ := authz(func(v url.Values) { v.Set("client_id", "app-unknown") }); r.StatusCode != 400 || r.Header.Get("Location") != "" {
		t.Fatalf("unknown client: %d", r.StatusCode)
	}

	// A deleted client's tokens die with it, and it uses the token
	// endpoint no more (RFC 7592 §2.3).
	_, out = exchange(codeOf(login("Analytical-engine-1843", true)), verifier)
	rt, at = out["refresh_token"].(string), out["access_token"].(string)
	resp, body = h.DoAs(tok, "GET", "/api/v1/clients", nil)
	apptest.Expect(t, resp, body, 200, "clients")
	for _, cl := range apptest.Decode[[]struct {
		ID       string `json:"id"`
		ClientID string `json:"client_id"`
	}](t, body) {
		if cl.ClientID == clientID {
			resp, body = h.DoAs(tok, "DELETE", "/api/v1/clients/"+cl.ID, nil)
			apptest.Expect(t, resp, body, 204, "delete the client")
		}
	}
	if c, out := refresh(rt); c != 401 || out["error"] != "invalid_client" {
		t.Fatalf("a deleted client refreshes: %d %v", c, out)
	}
	if c := userinfo(at); c != 401 {
		t.Fatalf("a deleted client's access token still works: %d", c)
	}
}

// TestDynamicRegistration: RFC 7591 under the tenant's policy (open,
// token, off); registered clients can start the code flow.
func TestDynamicRegistration(t *testing.T) {
	h := apptest.Start(t, apptest.Env(t, store.SQLite, t.TempDir()), apptest.Options{})
	slug := apptest.UniqueSlug("dcr")
	_, tok := h.TenantAdmin(t, slug)
	reg := func(bearer string, body map[string]any) (int, map[string]any) {
		resp, raw := h.DoAs(bearer, "POST", "/t/"+slug+"/register", body)
		var out map[string]any
		_ = json.Unmarshal(raw, &out)
		return resp.StatusCode, out
	}
	meta := map[string]any{"client_name": "MCP Inspector", "redirect_uris": []string{"http://localhost:6274/oauth/callback"},
		"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code", "refresh_token"}, "unknown_member": true}
	code, out := reg("", meta)
	if code != 201 || out["client_id"] == nil || out["token_endpoint_auth_method"] != "none" {
		t.Fatalf("open registration: %d %v", code, out)
	}
	r, err := http.Get(h.Admin + "/t/" + slug + "/authorize?response_type=code&client_id=" + out["client_id"].(string) +
		"&redirect_uri=" + url.QueryEscape("http://localhost:6274/oauth/callback") + "&code_challenge=" + strings.Repeat("c", 43) + "&code_challenge_method=S256")
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("registered client cannot start the flow: %v %v", r, err)
	}
	r.Body.Close()

	// RFC 7592: read, replace and delete with the registration access token.
	clientID, rat := out["client_id"].(string), out["registration_access_token"].(string)
	uri := h.Admin + "/t/" + slug + "/register/" + clientID
	if out["registration_client_uri"] != uri || !strings.HasPrefix(rat, "xvr_") {
		t.Fatalf("registration response: %v", out)
	}
	manage := func(method, bearer string, body any) (int, map[string]any) {
		resp, raw := h.DoAs(bearer, method, strings.TrimPrefix(uri, h.Admin), body)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		return resp.StatusCode, m
	}
	if code, got := manage("GET", rat, nil); code != 200 || got["client_name"] != "MCP Inspector" || got["registration_access_token"] != nil {
		t.Fatalf("read registration: %d %v", code, got)
	}
	for name, bearer := range map[string]string{"no token": "", "wrong token": "xvr_" + strings.Repeat("A", 43), "admin token": tok} {
		if code, got := manage("GET", bearer, nil); code != 401 || got["error"] != "invalid_token" {
			t.Errorf("%s: %d %v", name, code, got)
		}
	}
	update := map[string]any{"client_id": clientID, "client_name": "MCP Inspector 2", "redirect_uris": []string{"http://localhost:6275/cb"},
		"token_endpoint_auth_method": "none", "post_logout_redirect_uris": []string{"http://localhost:6275/bye"}}
	if code, got := manage("PUT", rat, update); code != 200 || got["client_name"] != "MCP Inspector 2" {
		t.Fatalf("update registration: %d %v", code, got)
	}
	if _, got := manage("GET", rat, nil); fmt.Sprint(got["post_logout_redirect_uris"]) != "[http://localhost:6275/bye]" {
		t.Fatalf("post-logout redirect URIs after the update: %v", got)
	}
	for name, body := range map[string]map[string]any{
		"other client_id": {"client_id": "app-other", "redirect_uris": []string{"http://localhost:1/cb"}},
		"bad redirect":    {"client_id": clientID, "redirect_uris": []string{"http://evil.example/cb"}},
		"confidential":    {"client_id": clientID, "redirect_uris": []string{"http://localhost:1/cb"}, "token_endpoint_auth_method": "client_secret_basic"},
		"bad post-logout": {"client_id": clientID, "redirect_uris": []string{"http://localhost:1/cb"}, "post_logout_redirect_uris": []string{"http://evil.example/bye"}},
	} {
		if code, got := manage("PUT", rat, body); code != 400 {
			t.Errorf("update %s: %d %v", name, code, got)
		}
	}
	if _, got := manage("GET", rat, nil); got["client_name"] != "MCP Inspector 2" {
		t.Fatalf("a refused update changed the client: %v", got)
	}
	// Another registered client's token does not reach this one.
	_, second := reg("", meta)
	if code, _ := manage("DELETE", second["registration_access_token"].(string), nil); code != 401 {
		t.Fatalf("another client's token deleted this client: %d", code)
	}
	if code, _ := manage("DELETE", rat, nil); code != 204 {
		t.Fatalf("delete registration: %d", code)
	}
	if code, _ := manage("GET", rat, nil); code != 401 {
		t.Fatalf("deleted client still readable: %d", code)
	}

	for name, m := range map[string]map[string]any{
		"confidential":       {"redirect_uris": []string{"https://app.example.test/cb"}, "token_endpoint_auth_method": "client_secret_basic"},
		"plain http":         {"redirect_uris": []string{"http://app.example.test/cb"}},
		"no redirect":        {"client_name": "x"},
		"implicit":           {"redirect_uris": []string{"https://app.example.test/cb"}, "response_types": []string{"token"}},
		"client credentials": {"redirect_uris": []string{"https://app.example.test/cb"}, "grant_types": []string{"client_credentials"}},
	} {
		if code, out := reg("", m); code != 400 {
			t.Errorf("%s: %d %v", name, code, out)
		}
	}
	setPolicy := func(mode string) {
		resp, body := h.DoAs(tok, "PATCH", "/api/v1/policies", map[string]any{"oauth": map[string]any{"registration": mode}})
		apptest.Expect(t, resp, body, 200, "policy "+mode)
	}
	setPolicy("token")
	if code, _ := reg("", meta); code != 401 {
		t.Fatalf("token policy without a token: %d", code)
	}
	if code, _ := reg(tok, meta); code != 201 {
		t.Fatalf("token policy with an admin token: %d", code)
	}
	setPolicy("off")
	if code, _ := reg(tok, meta); code != 403 {
		t.Fatalf("registration off: %d", code)
	}
}

// TestClientIDMetadataDocuments: an https client_id names its metadata
// document, fetched through the egress client; a document on a private
// address is refused unless egress.allow_private.
func TestClientIDMetadataDocuments(t *testing.T) {
	var docURL string
	doc := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := docURL
		if r.URL.Path == "/liar.json" {
			id = "https://someone-else.example.test/client.json"
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"client_id": id, "client_name": "Metadata app",
			"redirect_uris": []string{"http://127.0.0.1:9999/cb"}, "token_endpoint_auth_method": "none"})
	}))
	defer doc.Close()
	docURL = doc.URL + "/client.json"
	pool := x509.NewCertPool()
	pool.AddCert(doc.Certificate())
	authorize := func(h *apptest.Harness, slug, clientID string) (int, string) {
		r, err := http.Get(h.Admin + "/t/" + slug + "/authorize?response_type=code&client_id=" + url.QueryEscape(clientID) +
			"&redirect_uri=" + url.QueryEscape("http://127.0.0.1:9999/cb") + "&code_challenge=" + strings.Repeat("c", 43) + "&code_challenge_method=S256")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}

	// Loopback is private: the default egress refuses it.
	strict := apptest.Start(t, apptest.Env(t, store.SQLite, t.TempDir()), apptest.Options{})
	slug := apptest.UniqueSlug("cimd")
	strict.TenantAdmin(t, slug)
	if code, page := authorize(strict, slug, docURL); code != 400 || !strings.Contains(page, "could not be fetched") {
		t.Fatalf("private address: %d %s", code, page)
	}
	strict.Stop()

	dev := apptest.Start(t, append(apptest.Env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"),
		apptest.Options{FetchRoots: pool})
	dev.TenantAdmin(t, slug)
	if code, page := authorize(dev, slug, docURL); code != 200 || !strings.Contains(page, "Metadata app") {
		t.Fatalf("metadata document client: %d %s", code, page)
	}
	if code, page := authorize(dev, slug, doc.URL+"/liar.json"); code != 400 || !strings.Contains(page, "client_id") {
		t.Fatalf("a document naming another client_id: %d %s", code, page)
	}
	if _, md := dev.DoAs("", "GET", "/.well-known/oauth-authorization-server/t/"+slug, nil); !strings.Contains(string(md), `"client_id_metadata_document_supported":true`) {
		t.Fatalf("metadata: %s", md)
	}
}
