// Package webhooks delivers a tenant's change events to the HTTPS
// endpoints it subscribes (docs/design/0000-architecture.md §8): each event becomes one delivery
// per matching subscription, signed with the subscription's secret
// (HMAC-SHA256, the Standard Webhooks scheme), posted through the egress
// client, retried with backoff and dead-lettered after the last attempt.
// A subscription whose endpoint keeps failing is paused a while (a circuit
// breaker) and its deliveries wait.
package webhooks

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/egress"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
)

// Sealer keeps subscription secrets encrypted with the KEK.
type Sealer interface {
	Seal(plaintext, aad []byte) []byte
	Open(sealed, aad []byte) ([]byte, error)
}

// Config wires the service.
type Config struct {
	DB     *store.DB
	Sealer Sealer
	// Client posts deliveries: the egress client (checked dials, bounded).
	Client *http.Client
	Audit  audit.Recorder
	Logger *slog.Logger
	// MaxAttempts is how many times a delivery is tried before it is
	// dead-lettered (default 9: over about eight hours).
	MaxAttempts int
	// Poll is how often the worker looks for due deliveries when nothing
	// wakes it (default 1s).
	Poll time.Duration
	// Metrics counts attempts; nil counts nothing.
	Metrics *Metrics
	Now     func() time.Time
}

// Service manages subscriptions and delivers events.
type Service struct {
	cfg  Config
	wake chan struct{}
}

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 9
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = store.Now
	}
	return &Service{cfg: cfg, wake: make(chan struct{}, 1)}
}

// Deliverable are the event types a subscription may ask for (a type, or
// a prefix ending in "." for a family): the records a tenant's admins may
// read anyway. Internal plumbing (signing keys, revocations, sessions,
// relayed A2A notifications) is never delivered.
var Deliverable = []string{
	"approval.pending", "approval.decided", "approval.escalated", "approval.delegation",
	"sod.violation.detected", "sod.exemption.granted", "sod.exemption.revoked",
	"governance.application", "governance.entitlement", "governance.role", "governance.assignment", "governance.sod_rule",
	"user", "user.activity", "group", "group_membership",
	"nhi", "nhi.activity", "nhi.secret", "nhi.secret_expiring", "nhi.permission", "pki.certificate",
	"mcp.server", "mcp.catalog", "a2a.card", TestEvent,
}

// TestEvent is the type of the event a test delivery carries.
const TestEvent = "webhook.test"

// deliverable reports whether an event type may be delivered.
func deliverable(kind string) bool { return slices.Contains(Deliverable, kind) }

// matches reports whether a subscription's filters take an event type:
// "*" takes every deliverable type, "x." every type of the family x.
func matches(filters []string, kind string) bool {
	for _, f := range filters {
		if f == "*" || f == kind || (strings.HasSuffix(f, ".") && strings.HasPrefix(kind, f)) {
			return true
		}
	}
	return false
}

// Subscription is an endpoint that receives a tenant's events.
type Subscription struct {
	ID          uuid.UUID `json:"id"`
	URL         string    `json:"url"`
	Description string    `json:"description"`
	Events      []string  `json:"events" doc:"event types, families (\"approval.\") or \"*\""`
	Status      string    `json:"status" doc:"active or paused (by an admin)"`
	// ConsecutiveFailures and PausedUntil are the circuit breaker's state.
	ConsecutiveFailures int        `json:"consecutive_failures"`
	PausedUntil         *time.Time `json:"paused_until,omitempty" doc:"deliveries wait until then after repeated failures"`
	Version             int64      `json:"version"`
	CreatedAt           time.Time  `json:"created_at"`
	UpdatedAt           time.Time  `json:"updated_at"`
}

// WithSecret is a subscription with its signing secret, shown when it is
// made and when the secret is rotated, never again.
type WithSecret struct {
	Subscription
	Secret string `json:"secret" doc:"whsec_ + base64 of 32 random bytes: the HMAC-SHA256 key of the webhook-signature header"`
}

// Input creates or changes a subscription.
type Input struct {
	URL         *string  `json:"url"`
	Description *string  `json:"description"`
	Events      []string `json:"events"`
	Status      *string  `json:"status" doc:"active or paused"`
}

// Delivery is one event posted (or to post) to one subscription.
type Delivery struct {
	ID             uuid.UUID  `json:"id"`
	SubscriptionID uuid.UUID  `json:"subscription_id"`
	EventID        uuid.UUID  `json:"event_id"`
	EventType      string     `json:"event_type"`
	Status         string     `json:"status" doc:"pending, delivered or dead"`
	Attempts       int        `json:"attempts"`
	NextAttemptAt  time.Time  `json:"next_attempt_at"`
	LastAttemptAt  *time.Time `json:"last_attempt_at,omitempty"`
	LastStatus     *int       `json:"last_status,omitempty" doc:"the endpoint's HTTP status at the last attempt"`
	LastError      *string    `json:"last_error,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	DeliveredAt    *time.Time `json:"delivered_at,omitempty"`
}

const subCols = `id, url, description, events, status, consecutive_failures, paused_until, version, created_at, updated_at`

func scanSub(row interface{ Scan(...any) error }) (*Subscription, error) {
	var s Subscription
	var ev string
	if err := row.Scan(&s.ID, &s.URL, &s.Description, &ev, &s.Status, &s.ConsecutiveFailures, &s.PausedUntil, &s.Version, &s.CreatedAt,
		&s.UpdatedAt); err != nil {
		return nil, err
	}
	_ = json.Unmarshal([]byte(ev), &s.Events)
	return &s, nil
}

func secretAAD(tenant, id uuid.UUID) []byte {
	return []byte("webhook_secret:" + tenant.String() + ":" + id.String())
}

func newSecret() (string, []byte) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return "whsec_" + base64.StdEncoding.EncodeToString(key), key
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" || len(raw) > 2000 {
		return apperr.Invalid("url", "must be an absolute http(s) URL without credentials or fragment, at most 2000 characters")
	}
	return nil
}

func checkEvents(evs []string) error {
	if len(evs) == 0 || len(evs) > 50 {
		return apperr.Invalid("events", "must name 1 to 50 event types, families (\"approval.\") or \"*\"")
	}
	for _, e := range evs {
		if e == "*" || deliverable(e) {
			continue
		}
		if strings.HasSuffix(e, ".") && slices.ContainsFunc(Deliverable, func(d string) bool { return strings.HasPrefix(d, e) }) {
			continue
		}
		return apperr.Invalid("events", fmt.Sprintf("%q is not a deliverable event type or family (see GET /api/v1/webhook-event-types)", e))
	}
	return nil
}

// Create adds a subscription and returns it with its secret.
func (s *Service) Create(ctx context.Context, in Input) (*WithSecret, error) {
	if in.URL == nil {
		return nil, apperr.Invalid("url", "is required")
	}
	if err := checkURL(*in.URL); err != nil {
		return nil, err
	}
	if err := checkEvents(in.Events); err != nil {
		return nil, err
	}
	sub := Subscription{ID: uuid.Must(uuid.NewV7()), URL: *in.URL, Events: in.Events, Status: "active", Version: 1}
	if in.Description != nil {
		if len(*in.Description) > 500 {
			return nil, apperr.Invalid("description", "must be at most 500 characters")
		}
		sub.Description = *in.Description
	}
	if in.Status != nil && *in.Status != "active" {
		if *in.Status != "paused" {
			return nil, apperr.Invalid("status", "must be active or paused")
		}
		sub.Status = "paused"
	}
	secret, key := newSecret()
	now := s.cfg.Now()
	sub.CreatedAt, sub.UpdatedAt = now, now
	err := s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if err := insertSub(ctx, tx, &sub, s.cfg.Sealer.Seal(key, secretAAD(tx.TenantID(), sub.ID))); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.cfg.Audit, "webhook.create", "webhook", sub.ID.String(),
			map[string]any{"url": sub.URL, "events": sub.Events})
	})
	if err != nil {
		return nil, err
	}
	return &WithSecret{Subscription: sub, Secret: secret}, nil
}

// Get reads a subscription.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (*Subscription, error) {
	var sub *Subscription
	err := s.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) (err error) {
		sub, err = subByID(ctx, tx, id)
		return err
	})
	if store.NoRows(err) {
		return nil, apperr.NotFound("webhook")
	}
	return sub, err
}

// List reads the tenant's subscriptions, oldest first.
func (s *Service) List(ctx context.Context, limit int, after uuid.UUID) ([]*Subscription, bool, error) {
	return store.ReadPage(ctx, s.cfg.DB, limit, func(tx *store.Tx) ([]*Subscription, error) { return listSubs(ctx, tx, after, limit+1) })
}

// Update changes a subscription (If-Match: ifVersion, 0 for any).
// Status active resumes it: paused by an admin, or by its circuit breaker.
func (s *Service) Update(ctx context.Context, id uuid.UUID, in Input, ifVersion int64) (*Subscription, error) {
	if in.URL != nil {
		if err := checkURL(*in.URL); err != nil {
			return nil, err
		}
	}
	if in.Events != nil {
		if err := checkEvents(in.Events); err != nil {
			return nil, err
		}
	}
	if in.Description != nil && len(*in.Description) > 500 {
		return nil, apperr.Invalid("description", "must be at most 500 characters")
	}
	if in.Status != nil && *in.Status != "active" && *in.Status != "paused" {
		return nil, apperr.Invalid("status", "must be active or paused")
	}
	var sub *Subscription
	err := s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var err error
		if sub, err = lockSub(ctx, tx, id); err != nil {
			return err
		}
		if ifVersion != 0 && sub.Version != ifVersion {
			return apperr.New(apperr.KindPreconditionFailed, "webhook changed since version %d (now %d)", ifVersion, sub.Version)
		}
		if in.URL != nil {
			sub.URL = *in.URL
		}
		if in.Description != nil {
			sub.Description = *in.Description
		}
		if in.Events != nil {
			sub.Events = in.Events
		}
		if in.Status != nil {
			if *in.Status == "active" {
				// Resuming closes the breaker too.
				sub.ConsecutiveFailures, sub.PausedUntil = 0, nil
			}
			sub.Status = *in.Status
		}
		sub.Version++
		sub.UpdatedAt = s.cfg.Now()
		if err := updateSub(ctx, tx, sub); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.cfg.Audit, "webhook.update", "webhook", id.String(), in)
	})
	if err != nil {
		return nil, err
	}
	s.Wake()
	return sub, nil
}

// Delete removes a subscription and its deliveries.
func (s *Service) Delete(ctx context.Context, id uuid.UUID) error {
	err := s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		deleted, err := deleteSub(ctx, tx, id)
		if err != nil {
			return err
		}
		if !deleted {
			return apperr.NotFound("webhook")
		}
		return audit.RecordChangeTx(ctx, tx, s.cfg.Audit, "webhook.delete", "webhook", id.String(), nil)
	})
	if err != nil {
		return err
	}
	return nil
}

// RotateSecret gives a subscription a new secret (the old one stops
// signing at once) and returns it.
func (s *Service) RotateSecret(ctx context.Context, id uuid.UUID) (*WithSecret, error) {
	secret, key := newSecret()
	var sub *Subscription
	err := s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var err error
		if sub, err = lockSub(ctx, tx, id); err != nil {
			return err
		}
		sub.Version++
		sub.UpdatedAt = s.cfg.Now()
		if err := setSubSecret(ctx, tx, sub, s.cfg.Sealer.Seal(key, secretAAD(tx.TenantID(), id))); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.cfg.Audit, "webhook.rotate_secret", "webhook", id.String(), nil)
	})
	if err != nil {
		return nil, err
	}
	return &WithSecret{Subscription: *sub, Secret: secret}, nil
}

// envelope is the body of a delivery.
type envelope struct {
	ID         uuid.UUID       `json:"id"`
	Type       string          `json:"type"`
	TenantID   uuid.UUID       `json:"tenant_id"`
	Subject    string          `json:"subject"`
	Version    int64           `json:"version,omitempty"`
	OccurredAt time.Time       `json:"occurred_at"`
	Data       json.RawMessage `json:"data"`
}

// OnEvent turns an outbox event into a delivery for each active
// subscription of its tenant that asks for its type (outbox handler:
// idempotent on the event's ID).
func (s *Service) OnEvent(ctx context.Context, ev events.Event) error {
	if !deliverable(ev.Kind) || ev.Kind == TestEvent {
		return nil
	}
	n, err := s.enqueue(store.WithTenant(ctx, ev.TenantID), ev, uuid.Nil)
	if n > 0 {
		s.Wake()
	}
	return err
}

// enqueue records the deliveries of an event (to one subscription when
// only is set) and returns how many were new.
func (s *Service) enqueue(ctx context.Context, ev events.Event, only uuid.UUID) (int, error) {
	data := ev.Payload
	if len(data) == 0 || !json.Valid(data) {
		data = json.RawMessage("{}")
	}
	body, err := json.Marshal(envelope{ID: ev.ID, Type: ev.Kind, TenantID: ev.TenantID, Subject: ev.SubjectID, Version: ev.Version,
		OccurredAt: ev.CreatedAt.UTC(), Data: data})
	if err != nil {
		return 0, err
	}
	// Most events match no subscription: find out with a read before
	// taking the write lock.
	var targets []uuid.UUID
	err = s.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		targets = targets[:0]
		subs, err := subFilters(ctx, tx, only)
		if err != nil {
			return err
		}
		for _, f := range subs {
			if only != uuid.Nil || matches(f.events, ev.Kind) {
				targets = append(targets, f.id)
			}
		}
		return nil
	})
	if err != nil || len(targets) == 0 {
		return 0, err
	}
	added := 0
	err = s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		added = 0
		now := s.cfg.Now()
		for _, sub := range targets {
			// A subscription deleted meanwhile takes nothing.
			queued, err := queueDelivery(ctx, tx, sub, ev, body, now)
			if err != nil {
				return err
			}
			if queued {
				added++
			}
		}
		return nil
	})
	return added, err
}

// Test queues a test event for one subscription and returns its delivery.
func (s *Service) Test(ctx context.Context, id uuid.UUID) (*Delivery, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return nil, err
	}
	tid, _ := store.TenantFrom(ctx)
	ev := events.Event{ID: uuid.Must(uuid.NewV7()), TenantID: tid, Kind: TestEvent, SubjectID: id.String(), CreatedAt: s.cfg.Now(),
		Payload: json.RawMessage(`{"message":"a test delivery from xavyo"}`)}
	if _, err := s.enqueue(ctx, ev, id); err != nil {
		return nil, err
	}
	s.Wake()
	var d *Delivery
	err := s.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) (err error) {
		d, err = deliveryOfEvent(ctx, tx, id, ev.ID)
		return err
	})
	return d, err
}

// Deliveries lists a subscription's deliveries, newest first, optionally
// of one status.
func (s *Service) Deliveries(ctx context.Context, sub uuid.UUID, status string, limit int, before uuid.UUID) ([]*Delivery, bool, error) {
	if status != "" && status != "pending" && status != "delivered" && status != "dead" {
		return nil, false, apperr.Invalid("status", "must be pending, delivered or dead")
	}
	if _, err := s.Get(ctx, sub); err != nil {
		return nil, false, err
	}
	if before == uuid.Nil {
		before = uuid.Max
	}
	return store.ReadPage(ctx, s.cfg.DB, limit, func(tx *store.Tx) ([]*Delivery, error) { return listDeliveries(ctx, tx, sub, status, before, limit+1) })
}

// Redeliver puts a delivery back in the queue, to be tried now (a dead
// one gets its attempts anew).
func (s *Service) Redeliver(ctx context.Context, sub, id uuid.UUID) (*Delivery, error) {
	var d *Delivery
	err := s.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var err error
		d, err = lockDelivery(ctx, tx, sub, id)
		if store.NoRows(err) {
			return apperr.NotFound("delivery")
		}
		if err != nil {
			return err
		}
		if d.Status == "dead" {
			d.Attempts = 0
		}
		d.Status, d.NextAttemptAt = "pending", s.cfg.Now()
		if err := requeueDelivery(ctx, tx, d); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.cfg.Audit, "webhook.redeliver", "webhook_delivery", id.String(), map[string]any{"webhook_id": sub})
	})
	if err != nil {
		return nil, err
	}
	s.Wake()
	return d, nil
}

// Wake makes the worker look for due deliveries now.
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run delivers due deliveries until ctx ends; several replicas may run it
// (claims are leases taken with FOR UPDATE SKIP LOCKED).
func (s *Service) Run(ctx context.Context) error {
	lastPrune := time.Time{}
	for {
		if time.Since(lastPrune) > time.Hour {
			if err := s.prune(ctx); err != nil && ctx.Err() == nil {
				s.cfg.Logger.Warn("pruning webhook deliveries failed", "error", err)
			}
			lastPrune = time.Now()
		}
		n, err := s.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			s.cfg.Logger.Error("webhook delivery failed", "error", err)
		}
		if n == claimBatch {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-time.After(s.cfg.Poll):
		}
	}
}

const (
	claimBatch = 32
	// lease hides a claimed delivery from other workers while it is tried.
	lease = 2 * time.Minute
	// breakAfter failures in a row pause a subscription.
	breakAfter = 5
)

// retryDelay is the wait after the n-th failed attempt: 5 s, 30 s, 2 min,
// 10 min, 30 min, 1 h, then 2 h.
func retryDelay(n int) time.Duration {
	steps := []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour}
	if n-1 < len(steps) {
		return steps[max(n-1, 0)]
	}
	return 2 * time.Hour
}

// pauseFor is how long a subscription pauses after n failures in a row
// (from breakAfter on): 1 min, doubling, at most 1 h.
func pauseFor(n int) time.Duration {
	return min(time.Minute<<min(n-breakAfter, 6), time.Hour)
}

type claimed struct {
	tenant, id, sub uuid.UUID
	eventID         uuid.UUID
	url             string
	body            string
	attempts        int
	secret          []byte
}

// RunOnce claims due deliveries and tries each once; it returns how many
// it claimed.
func (s *Service) RunOnce(ctx context.Context) (int, error) {
	var batch []claimed
	now := s.cfg.Now()
	err := s.cfg.DB.SystemTx(ctx, func(tx *store.Tx) error {
		var err error
		if batch, err = claimDue(ctx, tx, now, now.Add(lease), claimBatch); err != nil {
			return err
		}
		for i := range batch {
			c := &batch[i]
			url, sealed, err := subTarget(ctx, tx, c.tenant, c.sub)
			if err != nil {
				return err
			}
			c.url = url
			if c.secret, err = s.cfg.Sealer.Open(sealed, secretAAD(c.tenant, c.sub)); err != nil {
				return fmt.Errorf("webhooks: open the secret of %s: %w", c.sub, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("webhooks: claim: %w", err)
	}
	for _, c := range batch {
		status, derr := s.post(ctx, c)
		if err := s.settle(ctx, c, status, derr); err != nil {
			return len(batch), err
		}
	}
	return len(batch), nil
}

// Sign returns the webhook-signature header value of a body: "v1," and
// the base64 HMAC-SHA256, under key, of "{id}.{timestamp}.{body}".
func Sign(key []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// post tries one delivery: 2xx is success.
func (s *Service) post(ctx context.Context, c claimed) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, strings.NewReader(c.body))
	if err != nil {
		return 0, err
	}
	ts := s.cfg.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "xavyo-webhooks/1")
	req.Header.Set("webhook-id", c.eventID.String())
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", Sign(c.secret, c.eventID.String(), ts, []byte(c.body)))
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return 0, egress.Unreachable("the endpoint", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("the endpoint answered HTTP %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// settle records a try: delivered; or failed, to retry after a delay or
// dead after the last attempt; the subscription's breaker counts it.
func (s *Service) settle(ctx context.Context, c claimed, status int, derr error) error {
	ctx = context.WithoutCancel(ctx)
	now := s.cfg.Now()
	var st *int
	if status > 0 {
		st = &status
	}
	err := s.cfg.DB.SystemTx(ctx, func(tx *store.Tx) error {
		if derr == nil {
			return delivered(ctx, tx, c, now, st)
		}
		msg := derr.Error()
		if len(msg) > 500 {
			msg = msg[:500]
		}
		next, state := now.Add(retryDelay(c.attempts)), "pending"
		if c.attempts >= s.cfg.MaxAttempts {
			state = "dead"
		}
		if err := failed(ctx, tx, c, state, next, now, st, msg); err != nil {
			return err
		}
		s.cfg.Logger.Warn("webhook delivery failed", "tenant_id", c.tenant.String(), "webhook_id", c.sub.String(), "delivery_id", c.id.String(),
			"attempts", c.attempts, "state", state, "error", msg)
		return nil
	})
	if err == nil {
		switch {
		case derr == nil:
			s.cfg.Metrics.attempt("delivered")
		case c.attempts >= s.cfg.MaxAttempts:
			s.cfg.Metrics.attempt("dead")
		default:
			s.cfg.Metrics.attempt("retry")
		}
	}
	return err
}

// prune deletes deliveries delivered more than a week ago.
func (s *Service) prune(ctx context.Context) error {
	return s.cfg.DB.SystemTx(ctx, func(tx *store.Tx) error { return pruneDelivered(ctx, tx, s.cfg.Now().Add(-7*24*time.Hour)) })
}
