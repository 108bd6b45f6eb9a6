package rest_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/mail/mailtest"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

var (
	csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)
	linkRE = regexp.MustCompile(`https?://[^\s"<>]+token=[A-Za-z0-9_-]{43}`)
)

// person is a browser on the account pages.
type person struct {
	t *testing.T
	h *apptest.Harness
	c *http.Client
}

func newPerson(t *testing.T, h *apptest.Harness) *person {
	jar, _ := cookiejar.New(nil)
	return &person{t: t, h: h, c: &http.Client{Jar: jar}}
}

func (p *person) get(u, lang string) (int, string) {
	p.t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	if lang != "" {
		req.Header.Set("Accept-Language", lang)
	}
	return p.do(req)
}

func (p *person) do(req *http.Request) (int, string) {
	p.t.Helper()
	r, err := p.c.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b)
}

// submit posts a page's form with fields (the page's CSRF token and
// hidden token included).
func (p *person) submit(u, page string, fields url.Values) (int, string) {
	p.t.Helper()
	v := url.Values{}
	if m := csrfRE.FindStringSubmatch(page); m != nil {
		v.Set("csrf", m[1])
	}
	if m := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(page); m != nil {
		v.Set("token", m[1])
	}
	for k := range fields {
		v.Set(k, fields.Get(k))
	}
	req, _ := http.NewRequest("POST", u, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return p.do(req)
}

// TestInvitationAndPasswordReset, against a real SMTP server: an admin
// invites a person, who sets a password from the email and signs in; a
// forgotten password is reset from its email once (the link then fails,
// as a superseded or another tenant's link does), the old password and
// sessions end, and a notice follows; an unknown address gets the same
// page and no mail; names are escaped in HTML mail; the pages speak the
// browser's language.
func TestInvitationAndPasswordReset(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			t.Parallel()
			invitationAndReset(t, flavor)
		})
	}
}

func invitationAndReset(t *testing.T, flavor store.Flavor) {
	relay := mailtest.Start(t, false)
	env := append(apptest.Env(t, flavor, t.TempDir()), "XAVYO_SMTP_HOST="+relay.Host, "XAVYO_SMTP_PORT="+strconv.Itoa(relay.Port),
		"XAVYO_SMTP_FROM=Identity <no-reply@id.example.test>", "XAVYO_SMTP_TLS=none")
	h := apptest.Start(t, env, apptest.Options{})
	slug, other := apptest.UniqueSlug("acct"), apptest.UniqueSlug("acco")
	_, tok := h.TenantAdmin(t, slug)
	h.TenantAdmin(t, other)
	resp, body := h.DoAs(tok, "PATCH", "/api/v1/policies", map[string]any{"branding": map[string]any{"display_name": "Acme\r\nBcc: victim@example.test"}})
	apptest.Expect(t, resp, body, 400, "a display name with a header")
	resp, body = h.DoAs(tok, "PATCH", "/api/v1/policies", map[string]any{"branding": map[string]any{"display_name": "Acme Corp", "primary_color": "#aa3300",
		"support_email": "help@acme.example.test"}})
	apptest.Expect(t, resp, body, 200, "branding")

	resp, body = h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "bob@acme.example.test", "display_name": "<b>Bob</b> & co",
		"status": "pending_verification"})
	apptest.Expect(t, resp, body, 201, "a user without a password")
	bob := apptest.Decode[struct {
		ID string `json:"id"`
	}](t, body).ID
	resp, body = h.DoAs(tok, "POST", "/api/v1/users/"+bob+"/invitation", nil)
	apptest.Expect(t, resp, body, 202, "invite")
	msgs := relay.Wait(1, 20*time.Second)
	inv := msgs[0]
	if inv.Subject != "You are invited to Acme Corp" || !strings.Contains(inv.To, "bob@acme.example.test") ||
		!strings.Contains(inv.Header.Get("From"), "Acme Corp") || !strings.Contains(inv.Header.Get("From"), "no-reply@id.example.test") {
		t.Fatalf("invitation: subject %q to %q from %q", inv.Subject, inv.To, inv.Header.Get("From"))
	}
	if strings.Contains(inv.HTML, "<b>Bob</b>") || !strings.Contains(inv.HTML, "&lt;b&gt;Bob&lt;/b&gt; &amp; co") || !strings.Contains(inv.HTML, "#aa3300") {
		t.Fatalf("the HTML mail does not escape the name (or lacks the branding): %s", inv.HTML)
	}
	link := linkRE.FindString(inv.Text)
	if link == "" || !strings.Contains(link, "/t/"+slug+"/invitation?token=") || linkRE.FindString(inv.HTML) == "" {
		t.Fatalf("no invitation link: %s", inv.Text)
	}
	// The link at another tenant is no link.
	p := newPerson(t, h)
	if st, page := p.get(strings.Replace(link, "/t/"+slug+"/", "/t/"+other+"/", 1), ""); st != 400 || !strings.Contains(page, "invalid or has expired") {
		t.Fatalf("the invitation at another tenant: %d %s", st, page)
	}
	st, page := p.get(link, "")
	if st != 200 || !strings.Contains(page, `name="password"`) {
		t.Fatalf("invitation page: %d %s", st, page)
	}
	if st, _ := p.submit(link, page, url.Values{"password": {"Difference-engine-1822"}, "confirm": {"something else"}}); st != 400 {
		t.Fatalf("two different passwords: %d", st)
	}
	_, page = p.get(link, "")
	if st, page := p.submit(link, page, url.Values{"password": {"short"}, "confirm": {"short"}}); st != 400 || !strings.Contains(page, "password") {
		t.Fatalf("a password the policy refuses: %d %s", st, page)
	}
	_, page = p.get(link, "") // a refused password leaves the link usable
	if st, page := p.submit(link, page, url.Values{"password": {"Difference-engine-1822"}, "confirm": {"Difference-engine-1822"}}); st != 200 || !strings.Contains(page, `id="done"`) {
		t.Fatalf("setting the password: %d %s", st, page)
	}
	if st, _ := p.get(link, ""); st != 400 {
		t.Fatalf("the invitation used twice: %d", st)
	}
	h.Login(slug, "bob@acme.example.test", "Difference-engine-1822", 200)
	_, body = h.DoAs(tok, "GET", "/api/v1/users/"+bob, nil)
	if !strings.Contains(string(body), `"status":"active"`) {
		t.Fatalf("after the invitation the address is verified: %s", body)
	}

	// Forgot: the same page for a known and an unknown address; one mail.
	forgot := h.Admin + "/t/" + slug + "/password/forgot"
	answers := map[string]string{}
	for _, addr := range []string{"bob@acme.example.test", "nobody@acme.example.test"} {
		q := newPerson(t, h)
		_, page := q.get(forgot, "")
		st, page := q.submit(forgot, page, url.Values{"email": {addr}})
		if st != 200 {
			t.Fatalf("forgot %s: %d %s", addr, st, page)
		}
		answers[addr] = page
	}
	if answers["bob@acme.example.test"] != answers["nobody@acme.example.test"] {
		t.Fatalf("the answers differ:\n%s\n---\n%s", answers["bob@acme.example.test"], answers["nobody@acme.example.test"])
	}
	msgs = relay.Wait(2, 20*time.Second)
	reset := msgs[1]
	first := linkRE.FindString(reset.Text)
	if reset.Subject != "Reset your Acme Corp password" || !strings.Contains(first, "/t/"+slug+"/password/reset?token=") || !strings.Contains(reset.To, "bob@") {
		t.Fatalf("reset mail: %q %s", reset.Subject, reset.Text)
	}
	// A second request supersedes the first link.
	q := newPerson(t, h)
	_, page = q.get(forgot, "")
	q.submit(forgot, page, url.Values{"email": {"BOB@acme.example.test"}})
	second := linkRE.FindString(relay.Wait(3, 20*time.Second)[2].Text)
	if st, _ := p.get(first, ""); st != 400 {
		t.Fatalf("a superseded reset link: %d", st)
	}
	bobTokens := h.Login(slug, "bob@acme.example.test", "Difference-engine-1822", 200)
	_, page = p.get(second, "")
	if st, page := p.submit(second, page, url.Values{"password": {"Jacquard-loom-1804!"}, "confirm": {"Jacquard-loom-1804!"}}); st != 200 {
		t.Fatalf("reset: %d %s", st, page)
	}
	if st, _ := p.get(second, ""); st != 400 {
		t.Fatalf("a reset link used twice: %d", st)
	}
	h.Login(slug, "bob@acme.example.test", "Difference-engine-1822", 401)
	h.Login(slug, "bob@acme.example.test", "Jacquard-loom-1804!", 200)
	if resp, _ := h.DoAs(bobTokens.AccessToken, "GET", "/api/v1/me", nil); resp.StatusCode != 401 {
		t.Fatalf("a session from before the reset: %d", resp.StatusCode)
	}
	notice := relay.Wait(4, 20*time.Second)[3]
	if notice.Subject != "Your Acme Corp password was changed" || linkRE.FindString(notice.Text) != "" || !strings.Contains(notice.Text, "help@acme.example.test") {
		t.Fatalf("notice: %q %s", notice.Subject, notice.Text)
	}
	time.Sleep(time.Second)
	if n := len(relay.Messages()); n != 4 {
		t.Fatalf("%d messages, want 4 (none for the unknown address; none for sign-ins from the same device)", n)
	}
	// A sign-in from another device: a notice naming it (escaped).
	resp, body = h.DoAs("", "POST", "/api/v1/auth/login", map[string]any{"tenant": slug, "login": "bob@acme.example.test", "password": "Jacquard-loom-1804!"},
		"User-Agent", "Evil/1.0 <img src=x onerror=alert(1)>")
	apptest.Expect(t, resp, body, 200, "sign-in from another device")
	seen := relay.Wait(5, 20*time.Second)[4]
	if seen.Subject != "A new sign-in to your Acme Corp account" || !strings.Contains(seen.Text, "Evil/1.0 <img src=x onerror=alert(1)>") ||
		strings.Contains(seen.HTML, "<img src=x") || !strings.Contains(seen.HTML, "Evil/1.0 &lt;img src=x onerror=alert(1)&gt;") {
		t.Fatalf("new-device notice: %q\n%s\n%s", seen.Subject, seen.Text, seen.HTML)
	}

	// A new address: the link goes to it; following it changes the
	// address (and tells the old one); the link works once.
	bobNow := h.Login(slug, "bob@acme.example.test", "Jacquard-loom-1804!", 200)
	resp, body = h.DoAs(bobNow.AccessToken, "POST", "/api/v1/me/email", map[string]any{"email": "bob@acme.example.test"})
	apptest.Expect(t, resp, body, 400, "the same address")
	resp, body = h.DoAs(bobNow.AccessToken, "POST", "/api/v1/me/email", map[string]any{"email": "robert@acme.example.test"})
	apptest.Expect(t, resp, body, 202, "a new address")
	change := relay.Wait(6, 20*time.Second)[5]
	confirm := linkRE.FindString(change.Text)
	if !strings.Contains(change.To, "robert@acme.example.test") || !strings.Contains(confirm, "/t/"+slug+"/email/confirm?token=") {
		t.Fatalf("the change mail: to %s: %s", change.To, change.Text)
	}
	h.Login(slug, "robert@acme.example.test", "Jacquard-loom-1804!", 401) // not yet
	st, page = p.get(confirm, "")
	if st != 200 || !strings.Contains(page, "robert@acme.example.test") {
		t.Fatalf("confirm page: %d %s", st, page)
	}
	if st, page := p.submit(confirm, page, nil); st != 200 || !strings.Contains(page, `id="done"`) {
		t.Fatalf("confirming: %d %s", st, page)
	}
	h.Login(slug, "robert@acme.example.test", "Jacquard-loom-1804!", 200)
	told := relay.Wait(7, 20*time.Second)[6]
	if !strings.Contains(told.To, "bob@acme.example.test") || told.Subject != "Your Acme Corp email address was changed" || !strings.Contains(told.Text, "robert@acme.example.test") {
		t.Fatalf("the old address's notice: to %s %q %s", told.To, told.Subject, told.Text)
	}
	if st, _ := p.get(confirm, ""); st != 400 {
		t.Fatalf("a confirmation used twice: %d", st)
	}

	// The tenant's own words and sender address; a person's own language.
	resp, body = h.DoAs(tok, "PATCH", "/api/v1/policies", map[string]any{"branding": map[string]any{"display_name": "Acme Corp",
		"from_address": "hr@acme.example.test", "texts": map[string]any{"invite": map[string]any{"en": map[string]any{
			"subject": "Join the {org} crew", "intro": "<i>Welcome</i> aboard {org}."}}}}})
	apptest.Expect(t, resp, body, 200, "own words")
	resp, body = h.DoAs(tok, "POST", "/api/v1/attribute-definitions", map[string]any{"name": "locale", "type": "string"})
	apptest.Expect(t, resp, body, 201, "a locale attribute")
	for _, who := range []struct{ email, locale, subject string }{
		{"eve@acme.example.test", "", "Join the Acme Corp crew"},
		{"elise@acme.example.test", "fr", "Vous êtes invité·e chez Acme Corp"},
	} {
		in := map[string]any{"email": who.email, "status": "pending_verification"}
		if who.locale != "" {
			in["attributes"] = map[string]any{"locale": who.locale}
		}
		resp, body = h.DoAs(tok, "POST", "/api/v1/users", in)
		apptest.Expect(t, resp, body, 201, "user "+who.email)
		resp, body = h.DoAs(tok, "POST", "/api/v1/users/"+apptest.Decode[struct {
			ID string `json:"id"`
		}](t, body).ID+"/invitation", nil)
		apptest.Expect(t, resp, body, 202, "invite "+who.email)
		m := relay.WaitFor("inviting "+who.email, func(m mailtest.Message) bool { return strings.Contains(m.To, who.email) }, 20*time.Second)
		if m.Subject != who.subject || !strings.Contains(m.Header.Get("From"), "hr@acme.example.test") ||
			m.Header.Get("X-MailFrom") != "no-reply@id.example.test" {
			t.Fatalf("invitation of %s: %q from %q envelope %q", who.email, m.Subject, m.Header.Get("From"), m.Header.Get("X-MailFrom"))
		}
		if who.locale == "" && (!strings.Contains(m.HTML, "&lt;i&gt;Welcome&lt;/i&gt; aboard Acme Corp.") || strings.Contains(m.HTML, "<i>Welcome")) {
			t.Fatalf("the tenant's words are not escaped: %s", m.HTML)
		}
	}

	// Languages: the browser's first that the pages speak; the mail
	// preview in French.
	if _, page := newPerson(t, h).get(forgot, "de-CH, fr;q=0.8, en;q=0.5"); !strings.Contains(page, "Mot de passe oublié") || !strings.Contains(page, `lang="fr"`) {
		t.Fatalf("French page: %s", page)
	}
	resp, body = h.DoAs(tok, "GET", "/api/v1/mail/preview?template=reset&locale=fr", nil)
	apptest.Expect(t, resp, body, 200, "preview")
	if !strings.Contains(string(body), "Réinitialiser votre mot de passe Acme Corp") {
		t.Fatalf("preview: %s", body)
	}
	resp, body = h.DoAs(tok, "GET", "/api/v1/mail/preview?template=nope", nil)
	apptest.Expect(t, resp, body, 400, "an unknown template")
}

// TestSignup: where the tenant opens it (and for its domains), a person
// asks for an account by email and creates it from the link; an address
// that already has an account gets the same page, and its owner a notice
// instead of a link; a closed tenant or another domain gets no mail.
func TestSignup(t *testing.T) {
	relay := mailtest.Start(t, false)
	env := append(apptest.Env(t, store.SQLite, t.TempDir()), "XAVYO_SMTP_HOST="+relay.Host, "XAVYO_SMTP_PORT="+strconv.Itoa(relay.Port),
		"XAVYO_SMTP_FROM=no-reply@id.example.test", "XAVYO_SMTP_TLS=none")
	h := apptest.Start(t, env, apptest.Options{})
	slug := apptest.UniqueSlug("sign")
	_, tok := h.TenantAdmin(t, slug)
	signup := h.Admin + "/t/" + slug + "/signup"
	if st, page := newPerson(t, h).get(signup, ""); st != 404 || !strings.Contains(page, "not open") {
		t.Fatalf("sign-up while closed: %d %s", st, page)
	}
	resp, body := h.DoAs(tok, "PATCH", "/api/v1/policies", map[string]any{"signup": map[string]any{"enabled": true, "allowed_domains": []string{"@bad"}}})
	apptest.Expect(t, resp, body, 400, "a bad domain")
	resp, body = h.DoAs(tok, "PATCH", "/api/v1/policies", map[string]any{"signup": map[string]any{"enabled": true, "allowed_domains": []string{"acme.example.test"}}})
	apptest.Expect(t, resp, body, 200, "open sign-up")
	resp, body = h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "dave@acme.example.test", "password": "Analytical-engine-1843"})
	apptest.Expect(t, resp, body, 201, "an existing account")

	ask := func(addr string) (int, string) {
		p := newPerson(t, h)
		_, page := p.get(signup, "")
		return p.submit(signup, page, url.Values{"email": {addr}})
	}
	if st, page := ask("eve@elsewhere.example.test"); st != 403 {
		t.Fatalf("another domain: %d %s", st, page)
	}
	st1, carolPage := ask("carol@acme.example.test")
	st2, davePage := ask("dave@acme.example.test")
	if st1 != 200 || st2 != 200 || carolPage != davePage || !strings.Contains(carolPage, "Check your mailbox") {
		t.Fatalf("the answers: %d / %d\n%s\n---\n%s", st1, st2, carolPage, davePage)
	}
	msgs := relay.Wait(2, 20*time.Second)
	time.Sleep(500 * time.Millisecond)
	if n := len(relay.Messages()); n != 2 {
		t.Fatalf("%d messages, want 2 (none for another domain)", n)
	}
	var link string
	for _, m := range msgs {
		switch {
		case strings.Contains(m.To, "carol@"):
			link = linkRE.FindString(m.Text)
		case strings.Contains(m.To, "dave@"):
			if m.Subject != "You already have a "+slug+" account" || linkRE.FindString(m.Text) != "" {
				t.Fatalf("the existing account's notice: %q %s", m.Subject, m.Text)
			}
		}
	}
	if !strings.Contains(link, "/t/"+slug+"/signup/complete?token=") {
		t.Fatalf("no sign-up link: %v", msgs)
	}
	p := newPerson(t, h)
	st, page := p.get(link, "")
	if st != 200 || !strings.Contains(page, "carol@acme.example.test") || !strings.Contains(page, `name="name"`) {
		t.Fatalf("the sign-up page: %d %s", st, page)
	}
	if st, _ := p.submit(link, page, url.Values{"name": {"Carol"}, "password": {"Babbage-1791-engine"}, "confirm": {"nope"}}); st != 400 {
		t.Fatalf("two different passwords: %d", st)
	}
	_, page = p.get(link, "")
	if st, page := p.submit(link, page, url.Values{"name": {"Carol"}, "password": {"Babbage-1791-engine"}, "confirm": {"Babbage-1791-engine"}}); st != 200 ||
		!strings.Contains(page, `id="done"`) {
		t.Fatalf("creating the account: %d %s", st, page)
	}
	h.Login(slug, "carol@acme.example.test", "Babbage-1791-engine", 200)
	if st, _ := p.get(link, ""); st != 400 {
		t.Fatalf("the sign-up link used twice: %d", st)
	}
}
