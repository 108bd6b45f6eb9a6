package rest_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
)

// TestGoOIDCCodeFlow: go-oidc discovers the tenant issuer, x/oauth2 runs
// the code flow with PKCE (the login form posted over HTTP), and go-oidc
// verifies the ID token against the JWKS.
func TestGoOIDCCodeFlow(t *testing.T) {
	h := apptest.Start(t, apptest.Env(t, store.SQLite, t.TempDir()), apptest.Options{})
	slug := apptest.UniqueSlug("oidc")
	_, tok := h.TenantAdmin(t, slug)
	redirectURI := "http://127.0.0.1:9999/cb"
	resp, body := h.DoAs(tok, "POST", "/api/v1/clients", map[string]any{"name": "Go app", "redirect_uris": []string{redirectURI}, "first_party": true})
	apptest.Expect(t, resp, body, 201, "client")
	clientID := apptest.Decode[struct {
		ClientID string `json:"client_id"`
	}](t, body).ClientID
	resp, body = h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "grace@oidc.test", "password": "Compiler-pioneer-1952"})
	apptest.Expect(t, resp, body, 201, "user")
	grace := apptest.Decode[userJSON](t, body)

	// The issuer is built from admin.public_url, which is this listener.
	ctx := oidc.ClientContext(context.Background(), h.HTTP)
	provider, err := oidc.NewProvider(ctx, h.App.Config().Admin.PublicURL+"/t/"+slug)
	if err != nil {
		t.Fatal(err)
	}
	conf := oauth2.Config{ClientID: clientID, Endpoint: provider.Endpoint(), RedirectURL: redirectURI,
		Scopes: []string{oidc.ScopeOpenID, "mcp"}}
	conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	verifier := oauth2.GenerateVerifier()
	nonceBytes := make([]byte, 8)
	_, _ = rand.Read(nonceBytes)
	nonce := hex.EncodeToString(nonceBytes)
	authURL := conf.AuthCodeURL("state-42", oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))

	// A person signs in on the page.
	r, _ := pageLogin(t, h, authURL, "grace@oidc.test", "Compiler-pioneer-1952", true)
	if r.StatusCode != 302 {
		t.Fatalf("login: %d", r.StatusCode)
	}
	loc, _ := url.Parse(r.Header.Get("Location"))
	if loc.Query().Get("state") != "state-42" {
		t.Fatalf("state: %s", loc)
	}

	tokens, err := conf.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	rawID, ok := tokens.Extra("id_token").(string)
	if !ok {
		t.Fatal("no id_token")
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: clientID}).Verify(ctx, rawID)
	if err != nil {
		t.Fatal(err)
	}
	if idt.Subject != grace.ID || idt.Nonce != nonce {
		t.Fatalf("ID token: sub %s nonce %s", idt.Subject, idt.Nonce)
	}
	// The ID token is not an access token for anything.
	if resp, _ := h.DoAs(rawID, "GET", "/api/v1/me", nil); resp.StatusCode != 401 {
		t.Fatalf("ID token accepted by the admin API: %d", resp.StatusCode)
	}
	// Userinfo with the access token.
	info, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tokens))
	if err != nil || info.Subject != grace.ID {
		t.Fatalf("userinfo: %+v %v", info, err)
	}
}
