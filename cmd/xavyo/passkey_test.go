package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/xavyo/xavyo/internal/store"
)

// TestBrowserPasskey: headless Chromium with the DevTools virtual
// authenticator (CTAP2, resident keys, user verification) at localhost,
// in a tenant that requires a second factor. Ada, signing in with her
// password, is sent to set one up, makes a passkey (its recovery codes
// are shown once) and is signed in; in a fresh browser she signs in with
// the passkey alone, without typing her name. Bob sets up an
// authenticator app instead with a code computed here, signs in again
// with a recovery code and asks the browser to be remembered, so his next
// sign-in skips the second step; in a fresh browser the spent recovery
// code is refused and a new TOTP code works.
func TestBrowserPasskey(t *testing.T) {
	b := newChrome(t, 800, 900)
	h := start(t, env(t, store.SQLite, t.TempDir()), nil)
	slug := uniqueSlug("pk")
	_, tok := tenantAdmin(t, h, slug)
	const pw = "Analytical-engine-1843"
	for _, email := range []string{"ada@pk.test", "bob@pk.test"} {
		resp, body := h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": email, "password": pw})
		expect(t, resp, body, 201, "user")
	}
	resp, body := h.DoAs(tok, "PATCH", "/api/v1/policies", map[string]any{"mfa": map[string]any{"required": true, "remember_device_days": 7}})
	expect(t, resp, body, 200, "require a second factor")

	if _, err := chromedp.Call(b.ctx, cdpwebauthn.Enable, cdpwebauthn.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	auth, err := chromedp.Call(b.ctx, cdpwebauthn.AddVirtualAuthenticator, cdpwebauthn.AddVirtualAuthenticatorParams{Options: &cdpwebauthn.VirtualAuthenticatorOptions{
		Protocol: cdpwebauthn.AuthenticatorProtocolCtap2, Transport: cdpwebauthn.AuthenticatorTransportInternal, HasResidentKey: true,
		HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true}})
	if err != nil {
		t.Fatal(err)
	}
	step, shot := b.step, b.shot
	fresh := func() {
		t.Helper()
		if _, err := chromedp.Call(b.ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
			t.Fatal(err)
		}
	}
	loginPage := strings.Replace(h.Admin, "127.0.0.1", "localhost", 1) + "/t/" + slug + "/login"
	password := func(email string) {
		t.Helper()
		step("open the sign-in page", chromedp.Navigate(loginPage))
		step("the sign-in page", chromedp.WaitVisible(chromedp.ID("login")))
		step("type the login", chromedp.SendKeys(chromedp.ID("login"), email))
		step("type the password", chromedp.SendKeys(chromedp.ID("password"), pw))
		step("sign in", chromedp.Click(chromedp.CSS("button[type=submit]")))
	}
	codesOf := func() []string {
		t.Helper()
		step("the recovery codes", chromedp.WaitVisible(chromedp.ID("codes")))
		codes := regexp.MustCompile(`[a-z2-7]{5}-[a-z2-7]{5}`).FindAllString(b.text(), -1)
		if len(codes) != 10 {
			t.Fatalf("recovery codes: %q", b.text())
		}
		return codes
	}

	// Ada makes a passkey where she must set up a second factor.
	password("ada@pk.test")
	step("the set-up page", chromedp.WaitVisible(chromedp.ID("register-key")))
	shot("passkey-1-set-up")
	step("make a passkey", chromedp.Click(chromedp.ID("register-key")))
	codesOf()
	shot("passkey-2-recovery-codes")
	step("continue", chromedp.Click(chromedp.ID("continue")))
	step("signed in", chromedp.WaitVisible(chromedp.ID("signed-in")))
	creds, err := chromedp.Call(b.ctx, cdpwebauthn.GetCredentials, cdpwebauthn.GetCredentialsParams(auth))
	if err != nil || len(creds.Credentials) != 1 || !creds.Credentials[0].IsResidentCredential || creds.Credentials[0].RpID != "localhost" {
		t.Fatalf("the authenticator's credentials: %+v %v", creds, err)
	}

	// In a fresh browser: the passkey alone, no name typed.
	fresh()
	step("open the sign-in page", chromedp.Navigate(loginPage))
	step("the passkey button", chromedp.WaitVisible(chromedp.ID("passkey")))
	shot("passkey-3-sign-in")
	step("sign in with the passkey", chromedp.Click(chromedp.ID("passkey")))
	step("signed in", chromedp.WaitVisible(chromedp.ID("signed-in")))
	if c, err := chromedp.Call(b.ctx, cdpwebauthn.GetCredentials, cdpwebauthn.GetCredentialsParams(auth)); err != nil ||
		len(c.Credentials) != 1 || c.Credentials[0].SignCount < 2 {
		t.Fatalf("the passkey was not used: %+v %v", c, err)
	}

	// Bob: an authenticator app, then a recovery code.
	fresh()
	password("bob@pk.test")
	step("the set-up page", chromedp.WaitVisible(chromedp.ID("secret")))
	secret, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.ID("secret")))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	code, err := totp.GenerateCode(strings.TrimSpace(secret), now)
	if err != nil {
		t.Fatal(err)
	}
	step("type the app's code", chromedp.SendKeys(chromedp.ID("code"), code))
	step("confirm", chromedp.Click(chromedp.CSS("button[type=submit]")))
	codes := codesOf()
	step("continue", chromedp.Click(chromedp.ID("continue")))
	step("signed in", chromedp.WaitVisible(chromedp.ID("signed-in")))
	fresh()
	password("bob@pk.test")
	step("the second step", chromedp.WaitVisible(chromedp.ID("code")))
	shot("passkey-4-second-step")
	step("type a recovery code", chromedp.SendKeys(chromedp.ID("code"), codes[0]))
	step("remember this browser", chromedp.Click(chromedp.ID("remember")))
	step("verify", chromedp.Click(chromedp.CSS("button[type=submit]")))
	step("signed in", chromedp.WaitVisible(chromedp.ID("signed-in")))
	password("bob@pk.test")
	step("signed in without the second step", chromedp.WaitVisible(chromedp.ID("signed-in")))

	// A fresh browser is not remembered; the spent code is refused.
	fresh()
	password("bob@pk.test")
	step("the second step", chromedp.WaitVisible(chromedp.ID("code")))
	step("type the spent recovery code", chromedp.SendKeys(chromedp.ID("code"), codes[0]))
	step("verify", chromedp.Click(chromedp.CSS("button[type=submit]")))
	step("refused", chromedp.WaitVisible(chromedp.CSS("p.err[role=alert]")))
	if !strings.Contains(b.text(), "That code is not valid") {
		t.Fatalf("a spent recovery code: %q", b.text())
	}
	// The next step's code (the enrolment spent this one's).
	next, err := totp.GenerateCode(strings.TrimSpace(secret), now.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	step("type the app's next code", chromedp.SendKeys(chromedp.ID("code"), next))
	step("verify", chromedp.Click(chromedp.CSS("button[type=submit]")))
	step("signed in", chromedp.WaitVisible(chromedp.ID("signed-in")))
	b.checkShots("passkey-1-set-up", "passkey-2-recovery-codes", "passkey-3-sign-in", "passkey-4-second-step")
}
