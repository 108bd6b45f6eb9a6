package main

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xavyo/xavyo/internal/store"
)

type hookJSON struct {
	ID, URL, Status, Secret string
	Version                 int64
}

type deliveryJSON struct {
	ID        string `json:"id"`
	EventType string `json:"event_type"`
	Status    string `json:"status"`
	Attempts  int    `json:"attempts"`
}

// hookSink is a webhook endpoint that checks signatures itself (HMAC-SHA256
// over "id.timestamp.body", as Standard Webhooks says) and fails the next
// requests when told.
type hookSink struct {
	mu     sync.Mutex
	secret []byte
	fail   int
	got    []map[string]any
	bad    []string
}

func (s *hookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(r.Header.Get("webhook-id") + "." + r.Header.Get("webhook-timestamp") + "."))
	m.Write(b)
	if r.Header.Get("webhook-signature") != "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)) {
		s.bad = append(s.bad, string(b))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if s.fail > 0 {
		s.fail--
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var ev map[string]any
	_ = json.Unmarshal(b, &ev)
	if ev["id"] != r.Header.Get("webhook-id") {
		s.bad = append(s.bad, "webhook-id differs from the body's id: "+string(b))
	}
	s.got = append(s.got, ev)
	w.WriteHeader(http.StatusNoContent)
}

func (s *hookSink) types() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, ev := range s.got {
		out = append(out, fmt.Sprint(ev["type"]))
	}
	return out
}

func (s *hookSink) setSecret(secret string) {
	k, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	s.mu.Lock()
	s.secret = k
	s.mu.Unlock()
}

// TestWebhooks: an admin subscribes an endpoint to event types; the
// tenant's events of those types reach it signed, once each; a failing
// endpoint gets the event again after the retry delay; the last failed
// attempt dead-letters it, and a redelivery brings it; a paused
// subscription's events wait until it resumes; a rotated secret signs at
// once; bad input changes nothing; another tenant sees none of it.
func TestWebhooks(t *testing.T) {
	t.Parallel() // waits more than it works: it overlaps the other waiting suites
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			sink := &hookSink{}
			srv := httptest.NewServer(sink)
			t.Cleanup(srv.Close)
			h := start(t, append(envOwn(t, flavor, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true", "XAVYO_WEBHOOKS_MAX_ATTEMPTS=2"), nil)
			slug := uniqueSlug("wh")
			_, tok := tenantAdmin(t, h, slug)
			_, otherTok := tenantAdmin(t, h, uniqueSlug("wh"))
			list := func(tok string) string { _, b := h.doAs(tok, "GET", "/api/v1/webhooks", nil); return string(b) }

			for what, in := range map[string]map[string]any{
				"no url":         {"events": []string{"user"}},
				"ftp":            {"url": "ftp://example.test/x", "events": []string{"user"}},
				"credentials":    {"url": "https://u:p@example.test/x", "events": []string{"user"}},
				"no events":      {"url": srv.URL, "events": []string{}},
				"internal event": {"url": srv.URL, "events": []string{"signing_key"}},
				"unknown family": {"url": srv.URL, "events": []string{"nope."}},
				"bad status":     {"url": srv.URL, "events": []string{"user"}, "status": "maybe"},
				"unknown field":  {"url": srv.URL, "events": []string{"user"}, "secret": "mine"},
			} {
				if resp, body := h.doAs(tok, "POST", "/api/v1/webhooks", in); resp.StatusCode != 400 {
					t.Errorf("%s: %d %s", what, resp.StatusCode, body)
				}
			}
			if l := list(tok); !strings.Contains(l, `"items":[]`) {
				t.Fatalf("bad input created something: %s", l)
			}

			resp, body := h.doAs(tok, "POST", "/api/v1/webhooks", map[string]any{"url": srv.URL + "/hook", "events": []string{"user", "approval."},
				"description": "ops"})
			expect(t, resp, body, 201, "subscribe")
			hook := decode[hookJSON](t, body)
			if !strings.HasPrefix(hook.Secret, "whsec_") || hook.Status != "active" {
				t.Fatalf("subscription: %s", body)
			}
			sink.setSecret(hook.Secret)
			if _, body := h.doAs(tok, "GET", "/api/v1/webhooks/"+hook.ID, nil); strings.Contains(string(body), "whsec_") {
				t.Fatalf("the secret was shown again: %s", body)
			}
			if resp, _ := h.doAs(otherTok, "GET", "/api/v1/webhooks/"+hook.ID, nil); resp.StatusCode != 404 {
				t.Fatalf("another tenant read the subscription: %d", resp.StatusCode)
			}
			if l := list(otherTok); strings.Contains(l, hook.ID) {
				t.Fatalf("another tenant listed it: %s", l)
			}

			newUser := func(email string) {
				t.Helper()
				resp, body := h.doAs(tok, "POST", "/api/v1/users", map[string]any{"email": email, "password": "Analytical-engine-1843"})
				expect(t, resp, body, 201, "user "+email)
			}
			count := func(typ string) int {
				n := 0
				for _, x := range sink.types() {
					if x == typ {
						n++
					}
				}
				return n
			}
			newUser("ada@" + slug + ".test")
			waitFor(t, "the user event at the endpoint", func() bool { return count("user") == 1 })
			resp, body = h.doAs(tok, "POST", "/api/v1/webhooks/"+hook.ID+"/test", nil)
			expect(t, resp, body, 202, "test delivery")
			waitFor(t, "the test event", func() bool { return count("webhook.test") == 1 })
			// Groups were not asked for.
			resp, body = h.doAs(tok, "POST", "/api/v1/groups", map[string]any{"name": "Ops"})
			expect(t, resp, body, 201, "group")

			// Two events; the endpoint fails three times: the first event
			// fails twice (dead: two attempts at most), the second once, then
			// comes on its retry five seconds on.
			sink.mu.Lock()
			sink.fail = 3
			sink.mu.Unlock()
			newUser("bob@" + slug + ".test")
			newUser("eve@" + slug + ".test")
			deliveries := func(status string) []deliveryJSON {
				_, b := h.doAs(tok, "GET", "/api/v1/webhooks/"+hook.ID+"/deliveries?status="+status, nil)
				return decode[pageJSON[deliveryJSON]](t, b).Items
			}
			deadline := time.Now().Add(20 * time.Second)
			for len(deliveries("dead")) != 1 || count("user") != 2 {
				if time.Now().After(deadline) {
					t.Fatalf("after the retries: %d user events, deliveries %+v", count("user"), deliveries(""))
				}
				time.Sleep(100 * time.Millisecond)
			}
			dead := deliveries("dead")[0]
			if dead.Attempts != 2 || dead.EventType != "user" {
				t.Fatalf("dead: %+v", dead)
			}
			if resp, _ := h.doAs(otherTok, "POST", "/api/v1/webhooks/"+hook.ID+"/deliveries/"+dead.ID+"/redeliver", nil); resp.StatusCode != 404 {
				t.Fatalf("another tenant redelivered: %d", resp.StatusCode)
			}
			resp, body = h.doAs(tok, "POST", "/api/v1/webhooks/"+hook.ID+"/deliveries/"+dead.ID+"/redeliver", nil)
			expect(t, resp, body, 202, "redeliver")
			waitFor(t, "the redelivered event", func() bool { return count("user") == 3 })

			// Paused: events wait; resumed: they come.
			resp, body = h.doAs(tok, "PATCH", "/api/v1/webhooks/"+hook.ID, map[string]any{"status": "paused"})
			expect(t, resp, body, 200, "pause")
			newUser("mallory@" + slug + ".test")
			waitFor(t, "the event queued for the paused endpoint", func() bool { return len(deliveries("pending")) == 1 })
			time.Sleep(1500 * time.Millisecond) // the worker polls every second: it would have sent it by now
			if n := count("user"); n != 3 || len(deliveries("pending")) != 1 {
				t.Fatalf("paused: %d user events, pending %+v", n, deliveries("pending"))
			}
			resp, body = h.doAs(tok, "PATCH", "/api/v1/webhooks/"+hook.ID, map[string]any{"status": "active"})
			expect(t, resp, body, 200, "resume")
			waitFor(t, "the waiting event", func() bool { return count("user") == 4 })

			// A rotated secret signs the next delivery; the old one is refused.
			resp, body = h.doAs(tok, "POST", "/api/v1/webhooks/"+hook.ID+"/rotate-secret", nil)
			expect(t, resp, body, 200, "rotate")
			rotated := decode[hookJSON](t, body)
			if rotated.Secret == hook.Secret || !strings.HasPrefix(rotated.Secret, "whsec_") {
				t.Fatalf("rotated: %s", body)
			}
			sink.setSecret(rotated.Secret)
			resp, body = h.doAs(tok, "POST", "/api/v1/webhooks/"+hook.ID+"/test", nil)
			expect(t, resp, body, 202, "test after rotation")
			waitFor(t, "a delivery signed with the new secret", func() bool { return count("webhook.test") == 2 })

			metrics := h.metrics(t)
			for _, want := range []string{`xavyo_webhook_delivery_attempts_total{outcome="dead"} 1`, `xavyo_webhook_delivery_attempts_total{outcome="retry"} 2`} {
				if !strings.Contains(metrics, want) {
					t.Errorf("metrics lack %s", want)
				}
			}
			sink.mu.Lock()
			bad := sink.bad
			sink.mu.Unlock()
			if len(bad) > 0 || count("group") != 0 {
				t.Fatalf("unverified deliveries %v; group events %d", bad, count("group"))
			}
			// Audited, then gone.
			_, body = h.doAs(tok, "GET", "/api/v1/audit?action=webhook.*", nil)
			for _, a := range []string{"webhook.create", "webhook.update", "webhook.rotate_secret", "webhook.redeliver"} {
				if !strings.Contains(string(body), `"action":"`+a+`"`) {
					t.Errorf("no %s audited", a)
				}
			}
			if resp, _ := h.doAs(otherTok, "DELETE", "/api/v1/webhooks/"+hook.ID, nil); resp.StatusCode != 404 {
				t.Fatalf("another tenant deleted it: %d", resp.StatusCode)
			}
			resp, body = h.doAs(tok, "DELETE", "/api/v1/webhooks/"+hook.ID, nil)
			expect(t, resp, body, 204, "delete")
			if resp, _ := h.doAs(tok, "GET", "/api/v1/webhooks/"+hook.ID+"/deliveries", nil); resp.StatusCode != 404 {
				t.Fatalf("deliveries of a deleted subscription: %d", resp.StatusCode)
			}
		})
	}
}

// TestWebhooksVerifyWithStandardWebhooks: the Standard Webhooks reference
// library (npm standardwebhooks) verifies xavyo's deliveries, refuses a
// forged one, and refuses deliveries signed after the secret it holds was
// rotated (they fail and stay pending).
func TestWebhooksVerifyWithStandardWebhooks(t *testing.T) {
	dir, _ := filepath.Abs("../../test/interop")
	_, nodeErr := exec.LookPath("node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "standardwebhooks")); err != nil || nodeErr != nil {
		if os.Getenv("XAVYO_REQUIRE_INTEROP") == "1" {
			t.Fatalf("node and test/interop/node_modules are required (npm ci --prefix test/interop): %v %v", err, nodeErr)
		}
		t.Skip("node or test/interop/node_modules missing")
	}
	h := start(t, append(env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), nil)
	slug := uniqueSlug("whi")
	_, tok := tenantAdmin(t, h, slug)
	resp, body := h.doAs(tok, "POST", "/api/v1/webhooks", map[string]any{"url": "http://127.0.0.1:9/later", "events": []string{"*"}})
	expect(t, resp, body, 201, "subscribe")
	hook := decode[hookJSON](t, body)

	cmd := exec.Command("node", "webhook-receiver.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SECRET="+hook.Secret)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan map[string]any, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines <- m
			}
		}
		close(lines)
	}()
	next := func(what string) map[string]any {
		t.Helper()
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatalf("%s: the receiver ended", what)
			}
			return m
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: nothing from the receiver", what)
		}
		return nil
	}
	port := next("listening")["listening"]
	receiver := fmt.Sprintf("http://127.0.0.1:%v/hook", port)
	resp, body = h.doAs(tok, "PATCH", "/api/v1/webhooks/"+hook.ID, map[string]any{"url": receiver})
	expect(t, resp, body, 200, "point at the receiver")

	resp, body = h.doAs(tok, "POST", "/api/v1/users", map[string]any{"email": "ada@" + slug + ".test", "password": "Analytical-engine-1843"})
	expect(t, resp, body, 201, "user")
	if m := next("the user event"); m["verified"] != true || m["type"] != "user" || m["id"] != m["webhookId"] {
		t.Fatalf("the user event: %v", m)
	}
	// A forged delivery (signed with another key) is refused.
	forged, _ := http.NewRequest(http.MethodPost, receiver, strings.NewReader(`{"id":"x","type":"user"}`))
	forged.Header.Set("webhook-id", "x")
	forged.Header.Set("webhook-timestamp", fmt.Sprint(time.Now().Unix()))
	forged.Header.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32)))
	if res, err := http.DefaultClient.Do(forged); err != nil || res.StatusCode != 401 {
		t.Fatalf("a forged delivery: %v %v", res, err)
	}
	if m := next("the forged delivery"); m["verified"] != false {
		t.Fatalf("the forged delivery: %v", m)
	}
	// Rotated: the receiver's old secret no longer verifies.
	resp, body = h.doAs(tok, "POST", "/api/v1/webhooks/"+hook.ID+"/rotate-secret", nil)
	expect(t, resp, body, 200, "rotate")
	resp, body = h.doAs(tok, "POST", "/api/v1/webhooks/"+hook.ID+"/test", nil)
	expect(t, resp, body, 202, "test")
	if m := next("a delivery after rotation"); m["verified"] != false {
		t.Fatalf("a delivery signed with the new secret verified with the old one: %v", m)
	}
	waitFor(t, "the refused delivery recorded", func() bool {
		_, b := h.doAs(tok, "GET", "/api/v1/webhooks/"+hook.ID+"/deliveries?status=pending", nil)
		return strings.Contains(string(b), `"last_status":401`)
	})
}

// TestWebhooksNotifyApprovers: an access request's pending approval and
// its decision reach the tenant's endpoint, naming the approvers.
func TestWebhooksNotifyApprovers(t *testing.T) {
	sink := &hookSink{}
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	h := start(t, append(env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), nil)
	g := newGovTenant(t, h, "wha")
	resp, body := h.doAs(g.tok, "POST", "/api/v1/webhooks", map[string]any{"url": srv.URL, "events": []string{"approval."}})
	expect(t, resp, body, 201, "subscribe")
	sink.setSecret(decode[hookJSON](t, body).Secret)
	ownerID, ownerTok := g.user("olivia", "")
	_, aliceTok := g.user("alice", "")
	ent := g.ent("pay", map[string]any{"owner_id": ownerID})
	req := g.request(aliceTok, map[string]any{"target_id": ent}, 201)
	find := func(typ string) map[string]any {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		for _, ev := range sink.got {
			if ev["type"] == typ {
				return ev
			}
		}
		return nil
	}
	waitFor(t, "approval.pending at the endpoint", func() bool { return find("approval.pending") != nil })
	if data := fmt.Sprint(find("approval.pending")["data"]); !strings.Contains(data, ownerID) || !strings.Contains(data, req.ID) {
		t.Fatalf("the pending approval does not name its approver: %s", data)
	}
	resp, body = h.doAs(ownerTok, "POST", "/api/v1/approvals/"+req.ID+"/decision", map[string]any{"decision": "approve"})
	expect(t, resp, body, 200, "approve")
	waitFor(t, "approval.decided at the endpoint", func() bool { return find("approval.decided") != nil })
	if data := fmt.Sprint(find("approval.decided")["data"]); !strings.Contains(data, "approved") {
		t.Fatalf("the decision: %s", data)
	}
	if len(sink.bad) > 0 {
		t.Fatalf("unverified deliveries: %v", sink.bad)
	}
}
