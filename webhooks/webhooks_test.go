package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xavyo/xavyo/internal/audit"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/seal"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

// TestSignMatchesStandardWebhooks: the signature of the Standard Webhooks
// specification's example.
func TestSignMatchesStandardWebhooks(t *testing.T) {
	key, _ := base64.StdEncoding.DecodeString("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if got != "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" {
		t.Fatalf("signature %s", got)
	}
	if Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, []byte(`{"test": 2432232314}`)) == got {
		t.Fatal("the timestamp is not signed")
	}
}

func TestFilters(t *testing.T) {
	for _, c := range []struct {
		filters []string
		kind    string
		want    bool
	}{
		{[]string{"*"}, "user", true},
		{[]string{"approval."}, "approval.pending", true},
		{[]string{"approval."}, "approval_workflow", false},
		{[]string{"user"}, "user", true},
		{[]string{"user"}, "group", false},
		{[]string{"nhi."}, "nhi", false},
	} {
		if matches(c.filters, c.kind) != c.want {
			t.Errorf("%v takes %s: want %v", c.filters, c.kind, c.want)
		}
	}
	for _, bad := range [][]string{nil, {"signing_key"}, {"token_revocation"}, {"a2a.push"}, {"session"}, {"approval"}, {"x."}} {
		if checkEvents(bad) == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	for _, good := range [][]string{{"*"}, {"approval.", "sod."}, {"user", "governance.assignment"}} {
		if err := checkEvents(good); err != nil {
			t.Errorf("%v refused: %v", good, err)
		}
	}
}

// receiver records deliveries and fails as told.
type receiver struct {
	mu   sync.Mutex
	fail int // how many of the next requests get 503
	got  []*http.Request
	body []string
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, req)
	r.body = append(r.body, string(b))
	if r.fail > 0 {
		r.fail--
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// TestDeliveryRetriesDeadLettersAndBreaks drives the worker with a clock
// of its own: a delivery is signed and posted; a failure is retried after
// its delay and not before; the last attempt dead-letters it and a
// redelivery revives it; five failures in a row pause the subscription
// (its deliveries wait) until the pause ends or an admin resumes it; a
// success closes the breaker. Another tenant's subscriptions see nothing.
func TestDeliveryRetriesDeadLettersAndBreaks(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		sealer, err := seal.New(key)
		if err != nil {
			t.Fatal(err)
		}
		rcv := &receiver{}
		srv := httptest.NewServer(rcv)
		t.Cleanup(srv.Close)
		clock := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
		s := New(Config{DB: db, Sealer: sealer, Client: srv.Client(), MaxAttempts: 3, Audit: audit.Discard, Now: func() time.Time { return clock },
			Logger: slog.New(slog.DiscardHandler)})
		tenants := &tenant.Service{DB: db, Audit: audit.Discard}
		ctxOf := func() (context.Context, uuid.UUID) {
			tn, err := tenants.Create(context.Background(), tenant.CreateInput{Slug: "w-" + uuid.NewString()[:8], Name: "W"})
			if err != nil {
				t.Fatal(err)
			}
			return principal.With(store.WithTenant(context.Background(), tn.ID), &principal.Principal{TenantID: tn.ID, Kind: principal.KindUser,
				SubjectID: "admin", AdminRoles: []string{principal.RoleTenantAdmin}}), tn.ID
		}
		ctx, tid := ctxOf()
		other, _ := ctxOf()
		u := srv.URL + "/hook"
		sub, err := s.Create(ctx, Input{URL: &u, Events: []string{"user", "approval."}})
		if err != nil {
			t.Fatal(err)
		}
		otherSub, err := s.Create(other, Input{URL: &u, Events: []string{"*"}})
		if err != nil {
			t.Fatal(err)
		}
		secret, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(sub.Secret, "whsec_"))
		event := func(kind string) events.Event {
			return events.Event{ID: uuid.Must(uuid.NewV7()), TenantID: tid, Kind: kind, SubjectID: "s-1", Version: 3, CreatedAt: clock,
				Payload: json.RawMessage(`{"n":12345678901234567890}`)}
		}
		run := func() int {
			t.Helper()
			n, err := s.RunOnce(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		deliveries := func(status string) []*Delivery {
			t.Helper()
			ds, _, err := s.Deliveries(ctx, sub.ID, status, 100, uuid.Nil)
			if err != nil {
				t.Fatal(err)
			}
			return ds
		}

		// Delivered, signed, once (a second outbox delivery of the same
		// event adds nothing); types not asked for are not delivered.
		ev := event("user")
		for range 2 {
			if err := s.OnEvent(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range []string{"group", "signing_key", "a2a.push"} {
			if err := s.OnEvent(context.Background(), event(k)); err != nil {
				t.Fatal(err)
			}
		}
		if n := run(); n != 1 || rcv.count() != 1 {
			t.Fatalf("claimed %d, posted %d", n, rcv.count())
		}
		req, body := rcv.got[0], rcv.body[0]
		ts := req.Header.Get("webhook-timestamp")
		if req.Header.Get("webhook-id") != ev.ID.String() || ts != strconv.FormatInt(clock.Unix(), 10) ||
			req.Header.Get("webhook-signature") != Sign(secret, ev.ID.String(), clock.Unix(), []byte(body)) {
			t.Fatalf("headers %v", req.Header)
		}
		var env map[string]any
		if err := json.Unmarshal([]byte(body), &env); err != nil || env["type"] != "user" || env["id"] != ev.ID.String() ||
			env["tenant_id"] != tid.String() || !strings.Contains(body, `"data":{"n":12345678901234567890}`) {
			t.Fatalf("body %s", body)
		}
		if d := deliveries("delivered"); len(d) != 1 || d[0].Attempts != 1 || *d[0].LastStatus != 204 {
			t.Fatalf("delivered: %+v", d)
		}

		// Fails, waits its delay, fails, waits, fails: dead (3 attempts).
		rcv.fail = 3
		if err := s.OnEvent(context.Background(), event("approval.pending")); err != nil {
			t.Fatal(err)
		}
		for attempt, delay := range []time.Duration{5 * time.Second, 30 * time.Second, 0} {
			if n := run(); n != 1 {
				t.Fatalf("attempt %d: claimed %d", attempt+1, n)
			}
			if delay > 0 {
				clock = clock.Add(delay - time.Second)
				if n := run(); n != 0 {
					t.Fatalf("attempt %d retried before its delay", attempt+1)
				}
				clock = clock.Add(time.Second)
			}
		}
		dead := deliveries("dead")
		if len(dead) != 1 || dead[0].Attempts != 3 || *dead[0].LastStatus != 503 || !strings.Contains(*dead[0].LastError, "HTTP 503") {
			t.Fatalf("dead: %+v", dead)
		}
		clock = clock.Add(time.Hour)
		if n := run(); n != 0 {
			t.Fatal("a dead delivery was tried again")
		}
		if _, err := s.Redeliver(other, sub.ID, dead[0].ID); err == nil {
			t.Fatal("another tenant redelivered it")
		}
		if _, err := s.Redeliver(ctx, sub.ID, dead[0].ID); err != nil {
			t.Fatal(err)
		}
		if n := run(); n != 1 || len(deliveries("delivered")) != 2 {
			t.Fatalf("redelivered: claimed %d, %+v", n, deliveries(""))
		}

		// Five failures in a row pause the subscription; its deliveries
		// wait; resuming it (or the pause ending) lets them go.
		rcv.fail = 5
		for range 5 {
			if err := s.OnEvent(context.Background(), event("user")); err != nil {
				t.Fatal(err)
			}
		}
		if n := run(); n != 5 {
			t.Fatalf("claimed %d of 5", n)
		}
		got, err := s.Get(ctx, sub.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.ConsecutiveFailures != 5 || got.PausedUntil == nil || !got.PausedUntil.Equal(clock.Add(time.Minute)) {
			t.Fatalf("breaker: %+v", got)
		}
		clock = clock.Add(30 * time.Second)
		if n := run(); n != 0 {
			t.Fatalf("a paused subscription's deliveries went: %d", n)
		}
		active := "active"
		if _, err := s.Update(ctx, sub.ID, Input{Status: &active}, 0); err != nil {
			t.Fatal(err)
		}
		if n := run(); n != 5 {
			t.Fatalf("after resuming: claimed %d", n)
		}
		if got, _ = s.Get(ctx, sub.ID); got.ConsecutiveFailures != 0 || got.PausedUntil != nil {
			t.Fatalf("a success did not close the breaker: %+v", got)
		}

		// The other tenant's subscription got none of this tenant's events.
		ds, _, err := s.Deliveries(other, otherSub.ID, "", 10, uuid.Nil)
		if err != nil || len(ds) != 0 {
			t.Fatalf("the other tenant's subscription got %d deliveries (%v)", len(ds), err)
		}
		if _, err := s.Get(other, sub.ID); err == nil {
			t.Fatal("another tenant read the subscription")
		}
		if _, _, err := s.Deliveries(other, sub.ID, "", 10, uuid.Nil); err == nil {
			t.Fatal("another tenant listed the subscription's deliveries")
		}
	})
}
