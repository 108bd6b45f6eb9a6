package rest_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/identity/mfa/mfatest"
	"github.com/xavyo/xavyo/internal/store"
)

type ceremony struct {
	Ceremony  string          `json:"ceremony"`
	PublicKey json.RawMessage `json:"publicKey"`
}

type mfaTokens struct {
	tokens
	WebAuthn *ceremony `json:"webauthn"`
}

// TestWebAuthn: a person registers a passkey through the API (answers
// from another origin, for another relying party, to another challenge,
// or replayed are refused); then the JSON sign-in asks for it as second
// step, and it signs them in alone, username-less (amr hwk user mfa). An
// assertion is refused from another origin, for another relying party,
// to another challenge, with its counter gone backwards, replayed, with
// a ceremony tampered with or of another tenant, as another person's
// second step, and at another tenant (the credential is unknown there).
// Under a phishing-resistant policy codes stop counting; a removed
// passkey signs nobody in.
func TestWebAuthn(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			t.Parallel()
			webauthnFlow(t, flavor)
		})
	}
}

func webauthnFlow(t *testing.T, flavor store.Flavor) {
	h := apptest.Start(t, apptest.Env(t, flavor, t.TempDir()), apptest.Options{})
	slug, other := apptest.UniqueSlug("wa"), apptest.UniqueSlug("wb")
	_, tok := h.TenantAdmin(t, slug)
	_, otherTok := h.TenantAdmin(t, other)
	const pw = "Analytical-engine-1843"
	for _, email := range []string{"ada@wa.test", "bob@wa.test"} {
		resp, body := h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": email, "password": pw})
		apptest.Expect(t, resp, body, 201, "user")
	}
	resp, body := h.DoAs(otherTok, "POST", "/api/v1/users", map[string]any{"email": "ada@wa.test", "password": pw})
	apptest.Expect(t, resp, body, 201, "the other tenant's user")
	origin := strings.Replace(h.Admin, "127.0.0.1", "localhost", 1)
	login := func(tenant, email string) mfaTokens {
		t.Helper()
		resp, body := h.DoAs("", "POST", "/api/v1/auth/login", map[string]any{"tenant": tenant, "login": email, "password": pw})
		apptest.Expect(t, resp, body, 200, "login")
		return apptest.Decode[mfaTokens](t, body)
	}
	begin := func(at string) ceremony {
		t.Helper()
		resp, body := h.DoAs(at, "POST", "/api/v1/me/mfa/webauthn", nil)
		apptest.Expect(t, resp, body, 200, "begin registration")
		c := apptest.Decode[ceremony](t, body)
		var o struct {
			RP struct {
				ID string `json:"id"`
			} `json:"rp"`
			Attestation string `json:"attestation"`
		}
		if err := json.Unmarshal(c.PublicKey, &o); err != nil || o.RP.ID != "localhost" || c.Ceremony == "" {
			t.Fatalf("creation options: %s", body)
		}
		return c
	}
	register := func(a *mfatest.Authenticator, at string, f mfatest.Fault, want int, what string) []byte {
		t.Helper()
		c := begin(at)
		answer, _, err := a.Create(c.PublicKey, f)
		if err != nil {
			t.Fatal(err)
		}
		resp, body := h.DoAs(at, "POST", "/api/v1/me/mfa/webauthn/finish", map[string]any{"ceremony": c.Ceremony, "credential": json.RawMessage(answer), "name": "Laptop"})
		apptest.Expect(t, resp, body, want, what)
		return body
	}

	// Registration.
	ada := &mfatest.Authenticator{Origin: origin}
	at := login(slug, "ada@wa.test").AccessToken
	register(ada, at, mfatest.Fault{Origin: "http://evil.test"}, 400, "a registration from another origin")
	register(ada, at, mfatest.Fault{RPID: "evil.test"}, 400, "a registration for another relying party")
	register(ada, at, mfatest.Fault{Challenge: base64.RawURLEncoding.EncodeToString([]byte("another challenge, not ours!"))}, 400, "another challenge")
	ada = &mfatest.Authenticator{Origin: origin}
	c := begin(at)
	answer, _, err := ada.Create(c.PublicKey, mfatest.Fault{})
	if err != nil {
		t.Fatal(err)
	}
	resp, body = h.DoAs(at, "POST", "/api/v1/me/mfa/webauthn/finish", map[string]any{"ceremony": c.Ceremony, "credential": json.RawMessage(answer), "name": "Laptop"})
	apptest.Expect(t, resp, body, 201, "register a passkey")
	reg := apptest.Decode[struct {
		Factor struct {
			ID   string `json:"id"`
			Kind string `json:"kind"`
		} `json:"factor"`
		RecoveryCodes []string `json:"recovery_codes"`
	}](t, body)
	if reg.Factor.Kind != "webauthn" || len(reg.RecoveryCodes) != 10 {
		t.Fatalf("registered: %s", body)
	}
	resp, body = h.DoAs(at, "POST", "/api/v1/me/mfa/webauthn/finish", map[string]any{"ceremony": c.Ceremony, "credential": json.RawMessage(answer)})
	apptest.Expect(t, resp, body, 400, "the same registration again")
	resp, body = h.DoAs(at, "GET", "/api/v1/me/mfa", nil)
	apptest.Expect(t, resp, body, 200, "factors")
	if !strings.Contains(string(body), `"kind":"webauthn"`) || !strings.Contains(string(body), `"name":"Laptop"`) {
		t.Fatalf("factors: %s", body)
	}

	// The second step of a password sign-in.
	first := login(slug, "ada@wa.test")
	if !first.MFARequired || first.WebAuthn == nil || !strings.Contains(strings.Join(first.MFAMethods, " "), "webauthn") {
		t.Fatalf("the first step: %+v", first)
	}
	second := func(first mfaTokens, answer []byte, want int, what string) tokens {
		t.Helper()
		resp, body := h.DoAs("", "POST", "/api/v1/auth/login/mfa", map[string]any{"tenant": slug, "mfa_token": first.MFAToken,
			"ceremony": first.WebAuthn.Ceremony, "webauthn": json.RawMessage(answer)})
		apptest.Expect(t, resp, body, want, what)
		return apptest.Decode[tokens](t, body)
	}
	assertion, err := ada.Get(first.WebAuthn.PublicKey, mfatest.Fault{})
	if err != nil {
		t.Fatal(err)
	}
	done := second(first, assertion, 200, "the second step with the passkey")
	if amr := apptest.JSON(apptest.JWTClaims(t, done.AccessToken)["amr"]); amr != `["pwd","hwk","user","mfa"]` {
		t.Fatalf("amr %s", amr)
	}
	bob := &mfatest.Authenticator{Origin: origin}
	bobAt := login(slug, "bob@wa.test").AccessToken
	register(bob, bobAt, mfatest.Fault{}, 201, "bob's passkey")
	first = login(slug, "ada@wa.test")
	assertion, err = bob.Get(first.WebAuthn.PublicKey, mfatest.Fault{Credential: bob.Credentials()[0]})
	if err != nil {
		t.Fatal(err)
	}
	second(first, assertion, 401, "bob's passkey as ada's second step")

	// Username-less sign-in.
	passkey := func(tenant string) ceremony {
		t.Helper()
		resp, body := h.DoAs("", "POST", "/api/v1/auth/passkey/begin", map[string]any{"tenant": tenant})
		apptest.Expect(t, resp, body, 200, "begin a passkey sign-in")
		return apptest.Decode[ceremony](t, body)
	}
	signIn := func(tenant string, c ceremony, answer []byte, want int, what string) tokens {
		t.Helper()
		resp, body := h.DoAs("", "POST", "/api/v1/auth/passkey", map[string]any{"tenant": tenant, "ceremony": c.Ceremony, "credential": json.RawMessage(answer)})
		apptest.Expect(t, resp, body, want, what)
		return apptest.Decode[tokens](t, body)
	}
	c = passkey(slug)
	answer, err = ada.Get(c.PublicKey, mfatest.Fault{})
	if err != nil {
		t.Fatal(err)
	}
	out := signIn(slug, c, answer, 200, "a passkey sign-in")
	claims := apptest.JWTClaims(t, out.AccessToken)
	if amr := apptest.JSON(claims["amr"]); amr != `["hwk","user","mfa"]` {
		t.Fatalf("amr %s", amr)
	}
	signIn(slug, c, answer, 401, "the same assertion again")

	faults := map[string]mfatest.Fault{
		"another origin":            {Origin: "http://evil.test"},
		"another relying party":     {RPID: "evil.test"},
		"another challenge":         {Challenge: base64.RawURLEncoding.EncodeToString([]byte("another challenge, not ours!"))},
		"a counter gone backwards":  {Counter: new(uint32(1))},
		"no user verification":      {NoUserVerification: true},
		"an origin of another port": {Origin: "http://localhost:1"},
	}
	for what, f := range faults {
		c := passkey(slug)
		answer, err := ada.Get(c.PublicKey, f)
		if err != nil {
			t.Fatal(err)
		}
		signIn(slug, c, answer, 401, what)
	}
	// An authenticator without a counter (a synced passkey): its replayed
	// assertion is refused as a spent challenge.
	synced := &mfatest.Authenticator{Origin: origin, NoCounter: true}
	register(synced, bobAt, mfatest.Fault{}, 201, "bob's synced passkey")
	c = passkey(slug)
	answer, _ = synced.Get(c.PublicKey, mfatest.Fault{})
	signIn(slug, c, answer, 200, "a sign-in with a synced passkey")
	signIn(slug, c, answer, 401, "its assertion replayed")
	resp, body = h.DoAs(tok, "GET", "/api/v1/audit?action=user.mfa.webauthn&limit=100", nil)
	apptest.Expect(t, resp, body, 200, "audit")
	if !strings.Contains(string(body), "the challenge was spent") {
		t.Errorf("the replay was not refused as a spent challenge: %s", body)
	}

	// Each refusal was for its own reason (audited).
	resp, body = h.DoAs(tok, "GET", "/api/v1/audit?action=user.mfa.webauthn&limit=100", nil)
	apptest.Expect(t, resp, body, 200, "audit")
	for what, reason := range map[string]string{"another origin": "origin", "another relying party": "RP Hash", "another challenge": "challenge",
		"a counter gone backwards": "counter", "no user verification": "verif"} {
		if !strings.Contains(strings.ToLower(string(body)), strings.ToLower(reason)) {
			t.Errorf("no refusal for %s (%q) in the audit: %s", what, reason, body)
		}
	}
	c = passkey(slug)
	answer, _ = ada.Get(c.PublicKey, mfatest.Fault{})
	signIn(slug, ceremony{Ceremony: c.Ceremony[:len(c.Ceremony)-4] + "AAAA"}, answer, 400, "a ceremony tampered with")
	signIn(other, c, answer, 400, "a ceremony of another tenant")
	c = passkey(other)
	answer, _ = ada.Get(c.PublicKey, mfatest.Fault{})
	signIn(other, c, answer, 401, "a credential of another tenant")
	c = passkey(slug)
	answer, _ = ada.Get(c.PublicKey, mfatest.Fault{})
	signIn(slug, c, answer, 200, "the counter goes on after refusals")

	// Only listed authenticator models, attested.
	model := [16]byte{0xcb, 0x69, 0x48, 0x1e, 0x8f, 0xf7, 0x40, 0x39, 0x93, 0xec, 0x0a, 0x27, 0x29, 0xa1, 0x54, 0xa8}
	resp, body = h.DoAs(tok, "PATCH", "/api/v1/policies", map[string]any{"mfa": map[string]any{"allowed_aaguids": []string{"cb69481e-8ff7-4039-93ec-0a2729a154a8"}}})
	apptest.Expect(t, resp, body, 200, "list the models")
	c = begin(bobAt)
	if !strings.Contains(string(c.PublicKey), `"attestation":"direct"`) {
		t.Fatalf("options under a model list: %s", c.PublicKey)
	}
	register(&mfatest.Authenticator{Origin: origin, AAGUID: model}, bobAt, mfatest.Fault{}, 403, "a listed model without attestation")
	register(&mfatest.Authenticator{Origin: origin, Packed: true}, bobAt, mfatest.Fault{}, 403, "an attested model not listed")
	register(&mfatest.Authenticator{Origin: origin, Packed: true, AAGUID: model}, bobAt, mfatest.Fault{}, 201, "an attested listed model")
	resp, body = h.DoAs(tok, "PATCH", "/api/v1/policies", map[string]any{"mfa": map[string]any{"allowed_aaguids": []string{}}})
	apptest.Expect(t, resp, body, 200, "any model")

	// Phishing-resistant: codes stop counting.
	resp, body = h.DoAs(tok, "PATCH", "/api/v1/policies", map[string]any{"mfa": map[string]any{"required": true, "phishing_resistant": true}})
	apptest.Expect(t, resp, body, 200, "require passkeys")
	first = login(slug, "ada@wa.test")
	if strings.Join(first.MFAMethods, " ") != "webauthn" {
		t.Fatalf("methods under a phishing-resistant policy: %v", first.MFAMethods)
	}
	resp, body = h.DoAs("", "POST", "/api/v1/auth/login/mfa", map[string]any{"tenant": slug, "mfa_token": first.MFAToken, "code": reg.RecoveryCodes[0]})
	apptest.Expect(t, resp, body, 403, "a recovery code under a phishing-resistant policy")
	resp, body = h.DoAs(tok, "PATCH", "/api/v1/policies", map[string]any{"mfa": map[string]any{"required": false, "phishing_resistant": false}})
	apptest.Expect(t, resp, body, 200, "relax")

	// A removed passkey signs nobody in.
	resp, body = h.DoAs(at, "DELETE", "/api/v1/me/mfa/"+reg.Factor.ID, nil)
	apptest.Expect(t, resp, body, 204, "remove the passkey")
	c = passkey(slug)
	answer, _ = ada.Get(c.PublicKey, mfatest.Fault{})
	signIn(slug, c, answer, 401, "a removed passkey")
}
