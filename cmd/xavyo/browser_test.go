package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/xavyo/xavyo/internal/store"
)

// TestBrowserSignIn: headless Chromium (Debian's) walks the pages a
// person sees: the sign-in page, the consent page of an application that
// is not first-party, back to the application with a code; then the same
// browser signs in to the application again without a page (the SSO
// session), connects a device by typing its code (device flow), and
// signs out after confirming. Screenshots of each page are
// kept in the test's output directory (XAVYO_SCREENSHOTS, else a
// temporary one).
func TestBrowserSignIn(t *testing.T) {
	b := newChrome(t, 900, 800)
	var mu sync.Mutex
	var landed, logos, frontchannel []string
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/favicon.ico":
			http.NotFound(w, r)
			return
		case "/logo.svg":
			mu.Lock()
			logos = append(logos, r.URL.String())
			mu.Unlock()
			w.Header().Set("Content-Type", "image/svg+xml")
			_, _ = w.Write([]byte(`<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><circle cx="32" cy="32" r="30" fill="#2a6"/></svg>`))
			return
		case "/fc":
			mu.Lock()
			frontchannel = append(frontchannel, r.URL.RawQuery)
			mu.Unlock()
			_, _ = w.Write([]byte("<!doctype html><title>signed out of the wiki</title>"))
			return
		}
		mu.Lock()
		landed = append(landed, r.URL.String())
		mu.Unlock()
		_, _ = w.Write([]byte("<!doctype html><title>Wiki</title><h1 id=\"app\">The wiki</h1>"))
	}))
	defer rp.Close()

	h := start(t, env(t, store.SQLite, t.TempDir()), nil)
	slug := uniqueSlug("web")
	_, tok := tenantAdmin(t, h, slug)
	resp, body := h.DoAs(tok, "POST", "/api/v1/clients", map[string]any{"name": "Team wiki", "redirect_uris": []string{rp.URL + "/callback"},
		"post_logout_redirect_uris": []string{rp.URL + "/bye"}, "logo_uri": rp.URL + "/logo.svg", "client_uri": rp.URL + "/",
		"frontchannel_logout_uri": rp.URL + "/fc", "frontchannel_logout_session_required": true})
	expect(t, resp, body, 201, "register the wiki")
	clientID := decode[struct {
		ClientID string `json:"client_id"`
	}](t, body).ClientID
	resp, body = h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "ada@web.test", "password": "Analytical-engine-1843"})
	expect(t, resp, body, 201, "user")

	step, location, shot := b.step, b.location, b.shot
	authorize := h.Admin + "/t/" + slug + "/authorize?" + url.Values{"response_type": {"code"}, "client_id": {clientID},
		"redirect_uri": {rp.URL + "/callback"}, "state": {"st-1"}, "scope": {"openid email"},
		"code_challenge": {strings.Repeat("c", 43)}, "code_challenge_method": {"S256"}}.Encode()
	step("open the application's sign-in", chromedp.Navigate(authorize))
	step("the sign-in page", chromedp.WaitVisible(chromedp.ID("login")))
	shot("1-sign-in")
	step("type the login", chromedp.SendKeys(chromedp.ID("login"), "ada@web.test"))
	step("type the password", chromedp.SendKeys(chromedp.ID("password"), "Analytical-engine-1843"))
	step("sign in", chromedp.Click(chromedp.CSS("button[type=submit]")))
	step("the consent page", chromedp.WaitVisible(chromedp.CSS("button[value=allow]")))
	consentText := b.text()
	logoWidth, err := chromedp.Run(b.ctx, chromedp.Evaluate[float64](`document.querySelector("img").naturalWidth`))
	if err != nil {
		t.Fatal(err)
	}
	shot("2-consent")
	if !strings.Contains(consentText, "Team wiki") || !strings.Contains(consentText, "see your email address") || logoWidth != 64 {
		t.Fatalf("consent page (logo width %v): %q", logoWidth, consentText)
	}
	step("allow", chromedp.Click(chromedp.CSS("button[value=allow]")))
	step("back at the application", chromedp.WaitVisible(chromedp.ID("app")))
	shot("3-back-at-the-app")
	if loc := location(); !strings.HasPrefix(loc, rp.URL+"/callback?") || !strings.Contains(loc, "code=") || !strings.Contains(loc, "state=st-1") {
		t.Fatalf("back at the app: %s", loc)
	}

	// Again: the SSO session and the remembered consent, no page.
	step("sign in again", chromedp.Navigate(authorize+"&prompt=none"))
	step("back at once", chromedp.WaitVisible(chromedp.ID("app")))
	if loc := location(); !strings.HasPrefix(loc, rp.URL+"/callback?") || !strings.Contains(loc, "code=") {
		t.Fatalf("silent sign-in: %s", loc)
	}

	// A CLI on a device: the person types its code in this browser (the
	// SSO session signs them in) and allows it; the CLI gets their tokens.
	st, dev := h.Form("/t/"+slug+"/device_authorization", url.Values{"client_id": {clientID}, "scope": {"openid"}}, "", "")
	if st != 200 {
		t.Fatalf("device authorization: %d %v", st, dev)
	}
	poll := func() (int, map[string]any) {
		return h.Form("/t/"+slug+"/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "client_id": {clientID},
			"device_code": {dev["device_code"].(string)}}, "", "")
	}
	if st, out := poll(); st != 400 || out["error"] != "authorization_pending" {
		t.Fatalf("before the person decides: %d %v", st, out)
	}
	step("open the device page", chromedp.Navigate(dev["verification_uri"].(string)))
	step("the code entry", chromedp.WaitVisible(chromedp.ID("user_code")))
	step("type the code", chromedp.SendKeys(chromedp.ID("user_code"), strings.ToLower(dev["user_code"].(string))))
	step("continue", chromedp.Click(chromedp.CSS("button[type=submit]")))
	step("the device's request", chromedp.WaitVisible(chromedp.CSS("button[value=allow]")))
	shot("5-device")
	step("allow the device", chromedp.Click(chromedp.CSS("button[value=allow]")))
	step("done", chromedp.WaitVisible(chromedp.ID("done")))
	if doneText := b.text(); !strings.Contains(doneText, "Your device is connected") {
		t.Fatalf("after allowing the device: %q", doneText)
	}
	time.Sleep(5*time.Second + 200*time.Millisecond) // the polling interval
	if st, out := poll(); st != 200 || out["id_token"] == nil {
		t.Fatalf("the device's tokens: %d %v", st, out)
	}

	// Signing out, confirmed on the page.
	logout := h.Admin + "/t/" + slug + "/end_session?" + url.Values{"client_id": {clientID}, "post_logout_redirect_uri": {rp.URL + "/bye"},
		"state": {"s-2"}}.Encode()
	step("open sign-out", chromedp.Navigate(logout))
	step("the sign-out page", chromedp.WaitVisible(chromedp.CSS("button[value=yes]")))
	shot("4-sign-out")
	step("confirm", chromedp.Click(chromedp.CSS("button[value=yes]")))
	// The page loads the wiki's front-channel logout URI in a frame, then
	// goes back to the wiki.
	step("back at the application", chromedp.WaitVisible(chromedp.ID("app")))
	if loc := location(); loc != rp.URL+"/bye?state=s-2" {
		t.Fatalf("after signing out: %s", loc)
	}
	mu.Lock()
	if len(frontchannel) != 1 || !strings.Contains(frontchannel[0], "sid=") ||
		!strings.Contains(frontchannel[0], "iss="+url.QueryEscape(h.App.Config().Admin.PublicURL+"/t/"+slug)) {
		t.Errorf("front-channel logout requests: %v", frontchannel)
	}
	if len(logos) == 0 {
		t.Error("the consent page did not load the logo")
	}
	mu.Unlock()
	step("sign in silently once more", chromedp.Navigate(authorize+"&prompt=none"))
	step("back with an error", chromedp.WaitVisible(chromedp.ID("app")))
	if loc := location(); !strings.Contains(loc, "error=login_required") {
		t.Fatalf("after signing out, prompt=none: %s", loc)
	}
	b.checkShots("1-sign-in", "2-consent", "3-back-at-the-app", "4-sign-out", "5-device")
	mu.Lock()
	defer mu.Unlock()
	if len(landed) != 4 {
		t.Errorf("the application was reached %d times, want 4: %v", len(landed), landed)
	}
}
