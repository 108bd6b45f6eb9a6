package rest_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xavyo/xavyo/app/apptest"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
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
			sink := &apptest.WebhookSink{}
			srv := httptest.NewServer(sink)
			t.Cleanup(srv.Close)
			h := apptest.Start(t, append(apptest.EnvOwn(t, flavor, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true", "XAVYO_WEBHOOKS_MAX_ATTEMPTS=2"), apptest.Options{})
			slug := apptest.UniqueSlug("wh")
			_, tok := h.TenantAdmin(t, slug)
			_, otherTok := h.TenantAdmin(t, apptest.UniqueSlug("wh"))
			list := func(tok string) string { _, b := h.DoAs(tok, "GET", "/api/v1/webhooks", nil); return string(b) }

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
				if resp, body := h.DoAs(tok, "POST", "/api/v1/webhooks", in); resp.StatusCode != 400 {
					t.Errorf("%s: %d %s", what, resp.StatusCode, body)
				}
			}
			if l := list(tok); !strings.Contains(l, `"items":[]`) {
				t.Fatalf("bad input created something: %s", l)
			}

			resp, body := h.DoAs(tok, "POST", "/api/v1/webhooks", map[string]any{"url": srv.URL + "/hook", "events": []string{"user", "approval."},
				"description": "ops"})
			apptest.Expect(t, resp, body, 201, "subscribe")
			hook := apptest.Decode[hookJSON](t, body)
			if !strings.HasPrefix(hook.Secret, "whsec_") || hook.Status != "active" {
				t.Fatalf("subscription: %s", body)
			}
			sink.SetSecret(hook.Secret)
			if _, body := h.DoAs(tok, "GET", "/api/v1/webhooks/"+hook.ID, nil); strings.Contains(string(body), "whsec_") {
				t.Fatalf("the secret was shown again: %s", body)
			}
			if resp, _ := h.DoAs(otherTok, "GET", "/api/v1/webhooks/"+hook.ID, nil); resp.StatusCode != 404 {
				t.Fatalf("another tenant read the subscription: %d", resp.StatusCode)
			}
			if l := list(otherTok); strings.Contains(l, hook.ID) {
				t.Fatalf("another tenant listed it: %s", l)
			}

			newUser := func(email string) {
				t.Helper()
				resp, body := h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": email, "password": "Analytical-engine-1843"})
				apptest.Expect(t, resp, body, 201, "user "+email)
			}
			count := func(typ string) int {
				n := 0
				for _, x := range sink.Types() {
					if x == typ {
						n++
					}
				}
				return n
			}
			newUser("ada@" + slug + ".test")
			apptest.WaitFor(t, "the user event at the endpoint", func() bool { return count("user") == 1 })
			resp, body = h.DoAs(tok, "POST", "/api/v1/webhooks/"+hook.ID+"/test", nil)
			apptest.Expect(t, resp, body, 202, "test delivery")
			apptest.WaitFor(t, "the test event", func() bool { return count("webhook.test") == 1 })
			// Groups were not asked for.
			resp, body = h.DoAs(tok, "POST", "/api/v1/groups", map[string]any{"name": "Ops"})
			apptest.Expect(t, resp, body, 201, "group")

			// Two events; the endpoint fails three times: the first event
			// fails twice (dead: two attempts at most), the second once, then
			// comes on its retry five seconds on.
			sink.Fail(3)
			newUser("bob@" + slug + ".test")
			newUser("eve@" + slug + ".test")
			deliveries := func(status string) []deliveryJSON {
				_, b := h.DoAs(tok, "GET", "/api/v1/webhooks/"+hook.ID+"/deliveries?status="+status, nil)
				return apptest.Decode[pageJSON[deliveryJSON]](t, b).Items
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
			if resp, _ := h.DoAs(otherTok, "POST", "/api/v1/webhooks/"+hook.ID+"/deliveries/"+dead.ID+"/redeliver", nil); resp.StatusCode != 404 {
				t.Fatalf("another tenant redelivered: %d", resp.StatusCode)
			}
			resp, body = h.DoAs(tok, "POST", "/api/v1/webhooks/"+hook.ID+"/deliveries/"+dead.ID+"/redeliver", nil)
			apptest.Expect(t, resp, body, 202, "redeliver")
			apptest.WaitFor(t, "the redelivered event", func() bool { return count("user") == 3 })

			// Paused: events wait; resumed: they come.
			resp, body = h.DoAs(tok, "PATCH", "/api/v1/webhooks/"+hook.ID, map[string]any{"status": "paused"})
			apptest.Expect(t, resp, body, 200, "pause")
			newUser("mallory@" + slug + ".test")
			apptest.WaitFor(t, "the event queued for the paused endpoint", func() bool { return len(deliveries("pending")) == 1 })
			time.Sleep(1500 * time.Millisecond) // the worker polls every second: it would have sent it by now
			if n := count("user"); n != 3 || len(deliveries("pending")) != 1 {
				t.Fatalf("paused: %d user events, pending %+v", n, deliveries("pending"))
			}
			resp, body = h.DoAs(tok, "PATCH", "/api/v1/webhooks/"+hook.ID, map[string]any{"status": "active"})
			apptest.Expect(t, resp, body, 200, "resume")
			apptest.WaitFor(t, "the waiting event", func() bool { return count("user") == 4 })

			// A rotated secret signs the next delivery; the old one is refused.
			resp, body = h.DoAs(tok, "POST", "/api/v1/webhooks/"+hook.ID+"/rotate-secret", nil)
			apptest.Expect(t, resp, body, 200, "rotate")
			rotated := apptest.Decode[hookJSON](t, body)
			if rotated.Secret == hook.Secret || !strings.HasPrefix(rotated.Secret, "whsec_") {
				t.Fatalf("rotated: %s", body)
			}
			sink.SetSecret(rotated.Secret)
			resp, body = h.DoAs(tok, "POST", "/api/v1/webhooks/"+hook.ID+"/test", nil)
			apptest.Expect(t, resp, body, 202, "test after rotation")
			apptest.WaitFor(t, "a delivery signed with the new secret", func() bool { return count("webhook.test") == 2 })

			metrics := h.Metrics(t)
			for _, want := range []string{`xavyo_webhook_delivery_attempts_total{outcome="dead"} 1`, `xavyo_webhook_delivery_attempts_total{outcome="retry"} 2`} {
				if !strings.Contains(metrics, want) {
					t.Errorf("metrics lack %s", want)
				}
			}
			bad := sink.Bad()
			if len(bad) > 0 || count("group") != 0 {
				t.Fatalf("unverified deliveries %v; group events %d", bad, count("group"))
			}
			// Audited, then gone.
			_, body = h.DoAs(tok, "GET", "/api/v1/audit?action=webhook.*", nil)
			for _, a := range []string{"webhook.create", "webhook.update", "webhook.rotate_secret", "webhook.redeliver"} {
				if !strings.Contains(string(body), `"action":"`+a+`"`) {
					t.Errorf("no %s audited", a)
				}
			}
			if resp, _ := h.DoAs(otherTok, "DELETE", "/api/v1/webhooks/"+hook.ID, nil); resp.StatusCode != 404 {
				t.Fatalf("another tenant deleted it: %d", resp.StatusCode)
			}
			resp, body = h.DoAs(tok, "DELETE", "/api/v1/webhooks/"+hook.ID, nil)
			apptest.Expect(t, resp, body, 204, "delete")
			if resp, _ := h.DoAs(tok, "GET", "/api/v1/webhooks/"+hook.ID+"/deliveries", nil); resp.StatusCode != 404 {
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
	h := apptest.Start(t, append(apptest.Env(t, store.SQLite, t.TempDir()), "XAVYO_EGRESS_ALLOW_PRIVATE=true"), apptest.Options{})
	slug := apptest.UniqueSlug("whi")
	_, tok := h.TenantAdmin(t, slug)
	resp, body := h.DoAs(tok, "POST", "/api/v1/webhooks", map[string]any{"url": "http://127.0.0.1:9/later", "events": []string{"*"}})
	apptest.Expect(t, resp, body, 201, "subscribe")
	hook := apptest.Decode[hookJSON](t, body)

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
	resp, body = h.DoAs(tok, "PATCH", "/api/v1/webhooks/"+hook.ID, map[string]any{"url": receiver})
	apptest.Expect(t, resp, body, 200, "point at the receiver")

	resp, body = h.DoAs(tok, "POST", "/api/v1/users", map[string]any{"email": "ada@" + slug + ".test", "password": "Analytical-engine-1843"})
	apptest.Expect(t, resp, body, 201, "user")
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
	resp, body = h.DoAs(tok, "POST", "/api/v1/webhooks/"+hook.ID+"/rotate-secret", nil)
	apptest.Expect(t, resp, body, 200, "rotate")
	resp, body = h.DoAs(tok, "POST", "/api/v1/webhooks/"+hook.ID+"/test", nil)
	apptest.Expect(t, resp, body, 202, "test")
	if m := next("a delivery after rotation"); m["verified"] != false {
		t.Fatalf("a delivery signed with the new secret verified with the old one: %v", m)
	}
	apptest.WaitFor(t, "the refused delivery recorded", func() bool {
		_, b := h.DoAs(tok, "GET", "/api/v1/webhooks/"+hook.ID+"/deliveries?status=pending", nil)
		return strings.Contains(string(b), `"last_status":401`)
	})
}

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

type pageJSON[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}
