package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/xavyo/xavyo/internal/mail/mailtest"
	"github.com/xavyo/xavyo/internal/store"
)

// mailEnv is a server's environment with a relay on loopback.
func mailEnv(t *testing.T, relay *mailtest.Server) []string {
	return append(env(t, store.SQLite, t.TempDir()), "XAVYO_SMTP_HOST="+relay.Host, "XAVYO_SMTP_PORT="+strconv.Itoa(relay.Port),
		"XAVYO_SMTP_FROM=no-reply@id.example.test", "XAVYO_SMTP_TLS=none")
}

// TestMailSurvivesRelayOutage: with the relay down for 30 s, invitations
// wait in the outbox and are delivered once it is back: none lost, none
// sent twice.
func TestMailSurvivesRelayOutage(t *testing.T) {
	t.Parallel()
	relay := mailtest.Start(t, false)
	h := start(t, mailEnv(t, relay), nil)
	slug := uniqueSlug("out")
	_, tok := tenantAdmin(t, h, slug)
	relay.Stop()
	down := time.Now()
	want := map[string]bool{}
	for i := range 3 {
		email := "person" + strconv.Itoa(i) + "@out.example.test"
		resp, body := h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": email, "status": "pending_verification"})
		expect(t, resp, body, 201, "user")
		id := decode[userJSON](t, body).ID
		resp, body = h.DoAs(tok, "POST", "/api/v1/users/"+id+"/invitation", nil)
		expect(t, resp, body, 202, "invite while the relay is down")
		want[email] = true
	}
	time.Sleep(30*time.Second - time.Since(down))
	if n := len(relay.Messages()); n != 0 {
		t.Fatalf("%d messages while the relay was down", n)
	}
	relay.Restart()
	relay.Wait(3, 90*time.Second)
	time.Sleep(5 * time.Second) // anything sent twice would be here by now
	msgs := relay.Messages()
	ids := map[string]bool{}
	for _, m := range msgs {
		ids[m.Header.Get("Message-Id")] = true
		to := strings.Trim(m.To, "<>")
		if !want[to] {
			t.Errorf("unexpected message to %s", m.To)
		}
		delete(want, to)
	}
	if len(msgs) != 3 || len(ids) != 3 || len(want) != 0 {
		t.Fatalf("%d messages (%d distinct), missing %v", len(msgs), len(ids), want)
	}
}

// TestBrowserAccountPages: in headless Chromium a person follows the
// invitation email to set a password and sign in, then forgets it and
// resets it from the second email; with an authenticator app added, the
// next sign-in asks for its code (computed by the test) after the
// password. Screenshots are kept.
func TestBrowserAccountPages(t *testing.T) {
	relay := mailtest.Start(t, false)
	h := start(t, mailEnv(t, relay), nil)
	slug := uniqueSlug("pages")
	_, tok := tenantAdmin(t, h, slug)
	resp, body := h.DoAs(tok, "PATCH", "/api/v1/policies", map[string]any{"branding": map[string]any{"display_name": "Acme", "primary_color": "#6f42c1"}})
	expect(t, resp, body, 200, "branding")
	resp, body = h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "grace@pages.example.test", "display_name": "Grace",
		"status": "pending_verification"})
	expect(t, resp, body, 201, "user")
	resp, body = h.DoAs(tok, "POST", "/api/v1/users/"+decode[userJSON](t, body).ID+"/invitation", nil)
	expect(t, resp, body, 202, "invite")
	link := regexp.MustCompile(`https?://\S+token=[A-Za-z0-9_-]{43}`)
	invitation := link.FindString(relay.Wait(1, 20*time.Second)[0].Text)

	b := newChrome(t, 900, 700)
	step, shot, text := b.step, b.shot, b.text
	setPassword := func(pw string) {
		t.Helper()
		step("the password form", chromedp.WaitVisible(chromedp.ID("password")))
		step("type the password", chromedp.SendKeys(chromedp.ID("password"), pw))
		step("type it again", chromedp.SendKeys(chromedp.ID("confirm"), pw))
		step("save", chromedp.Click(chromedp.CSS("button[type=submit]")))
		step("saved", chromedp.WaitVisible(chromedp.ID("done")))
	}
	signIn := func(pw string) {
		t.Helper()
		step("to sign in", chromedp.Click(chromedp.ID("next")))
		step("the sign-in page", chromedp.WaitVisible(chromedp.ID("login")))
		step("type the login", chromedp.SendKeys(chromedp.ID("login"), "grace@pages.example.test"))
		step("type the password", chromedp.SendKeys(chromedp.ID("password"), pw))
		step("sign in", chromedp.Click(chromedp.CSS("button[type=submit]")))
		step("signed in", chromedp.WaitVisible(chromedp.ID("signed-in")))
	}

	step("open the invitation", chromedp.Navigate(invitation))
	step("the invitation page", chromedp.WaitVisible(chromedp.ID("password")))
	shot("account-1-invitation")
	setPassword("Compiler-pioneer-1952")
	shot("account-2-password-set")
	signIn("Compiler-pioneer-1952")

	step("open the forgot page", chromedp.Navigate(h.Admin+"/t/"+slug+"/password/forgot"))
	step("the forgot page", chromedp.WaitVisible(chromedp.ID("email")))
	shot("account-3-forgot")
	step("type the address", chromedp.SendKeys(chromedp.ID("email"), "grace@pages.example.test"))
	step("send", chromedp.Click(chromedp.CSS("button[type=submit]")))
	step("sent", chromedp.WaitVisible(chromedp.ID("done")))
	if !strings.Contains(text(), "If an account uses this address") {
		t.Fatalf("after asking for a reset: %q", text())
	}
	reset := link.FindString(relay.Wait(2, 20*time.Second)[1].Text)
	step("open the reset link", chromedp.Navigate(reset))
	step("the reset page", chromedp.WaitVisible(chromedp.ID("password")))
	shot("account-4-reset")
	setPassword("Nanosecond-wire-1985")
	signIn("Nanosecond-wire-1985")
	step("the reset link again", chromedp.Navigate(reset))
	step("refused", chromedp.WaitVisible(chromedp.ID("done")))
	if !strings.Contains(text(), "invalid or has expired") {
		t.Fatalf("the reset link used twice: %q", text())
	}

	// Grace adds an authenticator app; the next sign-in in the browser asks
	// for its code after the password.
	resp, body = h.Do("POST", "/api/v1/auth/login", map[string]any{"tenant": slug, "login": "grace@pages.example.test", "password": "Nanosecond-wire-1985"})
	expect(t, resp, body, 200, "grace signs in to the API")
	grace := decode[struct {
		AccessToken string `json:"access_token"`
	}](t, body).AccessToken
	resp, body = h.DoAs(grace, "POST", "/api/v1/me/mfa/totp", map[string]any{})
	expect(t, resp, body, 201, "enrol")
	e := decode[struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}](t, body)
	code, _ := totp.GenerateCode(e.Secret, time.Now())
	resp, body = h.DoAs(grace, "POST", "/api/v1/me/mfa/totp/"+e.ID+"/confirm", map[string]any{"code": code})
	expect(t, resp, body, 200, "confirm")
	step("sign in again", chromedp.Navigate(h.Admin+"/t/"+slug+"/login"))
	step("the sign-in page", chromedp.WaitVisible(chromedp.ID("login")))
	step("type the login", chromedp.SendKeys(chromedp.ID("login"), "grace@pages.example.test"))
	step("type the password", chromedp.SendKeys(chromedp.ID("password"), "Nanosecond-wire-1985"))
	step("sign in", chromedp.Click(chromedp.CSS("button[type=submit]")))
	step("the second step", chromedp.WaitVisible(chromedp.ID("code")))
	shot("account-5-second-step")
	next, _ := totp.GenerateCode(e.Secret, time.Now().Add(30*time.Second))
	step("type the code", chromedp.SendKeys(chromedp.ID("code"), next))
	step("verify", chromedp.Click(chromedp.CSS("button[type=submit]")))
	step("signed in with two factors", chromedp.WaitVisible(chromedp.ID("signed-in")))
	b.checkShots("account-1-invitation", "account-2-password-set", "account-3-forgot", "account-4-reset", "account-5-second-step")
}
