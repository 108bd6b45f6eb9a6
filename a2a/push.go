package a2a

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/xavyo/xavyo/gateway"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
)

// Push notifications go through xavyo: when a caller registers a webhook
// (a push-notification config, on its own or with a message), the target
// is given a relay URL of xavyo's and a secret instead; what the target
// posts there is delivered to the caller's webhook through the outbox
// (retried until it is taken), with the caller's own token and a JWT of
// the tenant's issuer that says who relays what: the caller never
// exposes its webhook to the target, the target never sees the caller's
// token, and the caller can check the notification came through xavyo.

// EventPush is the outbox event of one notification to deliver.
const EventPush = "a2a.push"

// Sealer seals the callers' webhook tokens with the KEK.
type Sealer interface {
	Seal(plaintext, aad []byte) []byte
	Open(sealed, aad []byte) ([]byte, error)
}

// Claimer signs notification tokens.
type Claimer interface {
	SignClaims(ctx context.Context, tenant uuid.UUID, claims any) (string, error)
	// TenantIssuer is the issuer URL of the tenant's tokens.
	TenantIssuer(ctx context.Context, tenant uuid.UUID) (string, error)
}

func pushAAD(tenant, id uuid.UUID) []byte {
	return []byte("a2a_push:" + tenant.String() + ":" + id.String())
}

// pushConfigs finds the push-notification configs of a request: where
// they are depends on the method (both versions).
func pushConfigs(req obj) []obj {
	p := asObj(req["params"])
	switch asString(req["method"]) {
	case "CreateTaskPushNotificationConfig":
		return []obj{p}
	case "SendMessage", "SendStreamingMessage":
		if c := asObj(asObj(p["configuration"])["taskPushNotificationConfig"]); c != nil {
			return []obj{c}
		}
	case "tasks/pushNotificationConfig/set":
		if c := asObj(p["pushNotificationConfig"]); c != nil {
			return []obj{c}
		}
	case "message/send", "message/stream":
		if c := asObj(asObj(p["configuration"])["pushNotificationConfig"]); c != nil {
			return []obj{c}
		}
	}
	return nil
}

// relayPush rewrites the push configs of a request toward the target and
// records the relays; body is returned unchanged when it has none.
func (h *Handlers) relayPush(ctx context.Context, t *tenant.Tenant, p *gateway.Caller, a *agentRecord, body []byte) ([]byte, error) {
	var req obj
	if decodeExact(body, &req) != nil {
		return body, nil
	}
	configs := pushConfigs(req)
	if len(configs) == 0 {
		return body, nil
	}
	var relays []relay
	for _, c := range configs {
		target := asString(c["url"])
		u, err := url.Parse(target)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("a push-notification config needs an absolute http(s) url")
		}
		secret := make([]byte, 32)
		_, _ = rand.Read(secret)
		s := base64.RawURLEncoding.EncodeToString(secret)
		sum := sha256.Sum256([]byte(s))
		r := relay{id: uuid.Must(uuid.NewV7()), url: target, token: asString(c["token"]), secretHash: hex.EncodeToString(sum[:])}
		if r.token != "" && h.cfg.Sealer != nil {
			r.sealedToken = h.cfg.Sealer.Seal([]byte(r.token), pushAAD(t.ID, r.id))
		}
		c["url"], c["token"] = h.cfg.AgentURL+"/t/"+t.Slug+"/a2a/push/"+r.id.String(), s
		delete(c, "authentication") // the caller's credentials for its webhook stay with xavyo
		relays = append(relays, r)
	}
	err := h.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		for _, r := range relays {
			if err := insertRelay(ctx, tx, r, a.slug, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return json.Marshal(req)
}

// restorePush shows a caller the push-notification configs in a result as
// it set them: a config pointing at one of xavyo's relays gets back the
// caller's webhook and token when the relay is the caller's, and loses its
// token (the relay's secret) when it is not — nobody learns another's
// relay secret. Configs are where either version puts them: the result
// itself or its pushNotificationConfig (one config), or a list of such
// (0.3) or under configs (1.0).
func (h *Handlers) restorePush(ctx context.Context, t *tenant.Tenant, p *gateway.Caller, body []byte) []byte {
	var resp obj
	if decodeExact(body, &resp) != nil {
		return body
	}
	var found []obj
	add := func(v any) {
		c := asObj(v)
		if inner := asObj(c["pushNotificationConfig"]); inner != nil {
			c = inner
		}
		if c != nil {
			found = append(found, c)
		}
	}
	r := resp["result"]
	if l, ok := r.([]any); ok {
		for _, c := range l {
			add(c)
		}
	} else if l := asList(asObj(r)["configs"]); l != nil {
		for _, c := range l {
			add(c)
		}
	} else {
		add(r)
	}
	prefix := h.cfg.AgentURL + "/t/" + t.Slug + "/a2a/push/"
	changed := false
	for _, c := range found {
		rest, ok := strings.CutPrefix(asString(c["url"]), prefix)
		if !ok {
			continue
		}
		changed = true
		delete(c, "token")
		id, err := uuid.Parse(rest)
		if err != nil {
			continue
		}
		var kind, caller, target string
		var sealed []byte
		err = h.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
			var err error
			_, kind, caller, target, sealed, err = relayOf(ctx, tx, id)
			return err
		})
		if err != nil || kind != string(p.Kind) || caller != p.SubjectID {
			continue
		}
		c["url"] = target
		if len(sealed) > 0 && h.cfg.Sealer != nil {
			if tok, err := h.cfg.Sealer.Open(sealed, pushAAD(t.ID, id)); err == nil {
				c["token"] = string(tok)
			}
		}
	}
	if !changed {
		return body
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return body
	}
	return b
}

// pushed receives a target's notification on a relay URL: the secret the
// target was given must come with it; the notification is queued for the
// caller (201 once it is safely queued).
func (h *Handlers) pushed(w http.ResponseWriter, r *http.Request) {
	t, ctx, ok := h.scope(w, r)
	if !ok {
		return
	}
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		problem(w, http.StatusNotFound, "no such relay")
		return
	}
	var hash string
	err = h.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		hash, err = relaySecretHash(ctx, tx, id)
		return err
	})
	if err != nil {
		problem(w, http.StatusNotFound, "no such relay")
		return
	}
	sum := sha256.Sum256([]byte(r.Header.Get("X-A2A-Notification-Token")))
	if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(hash)) != 1 {
		problem(w, http.StatusUnauthorized, "the notification token does not match")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil || !json.Valid(body) {
		problem(w, http.StatusBadRequest, "a notification is a JSON object of at most 1 MiB")
		return
	}
	err = h.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		return events.Publish(ctx, tx, events.Change{TenantID: t.ID, Kind: EventPush, ID: id.String()}, map[string]any{"body": json.RawMessage(body)})
	})
	if err != nil {
		problem(w, http.StatusServiceUnavailable, "the notification could not be queued")
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// OnPush delivers one queued notification to the caller's webhook (outbox
// handler: an error makes the outbox retry it later).
func (h *Handlers) OnPush(ctx context.Context, ev events.Event) error {
	id, err := uuid.Parse(ev.SubjectID)
	if err != nil {
		return nil
	}
	var payload struct {
		Body json.RawMessage `json:"body"`
	}
	if json.Unmarshal(ev.Payload, &payload) != nil {
		return nil
	}
	ctx = store.WithTenant(ctx, ev.TenantID)
	var agent, callerKind, callerID, target string
	var sealed []byte
	err = h.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		agent, callerKind, callerID, target, sealed, err = relayOf(ctx, tx, id)
		return err
	})
	if store.NoRows(err) {
		return nil // the relay is gone: nothing to deliver to
	}
	if err != nil {
		return err
	}
	now := h.cfg.Now()
	sum := sha256.Sum256(payload.Body)
	iss, err := h.cfg.Claimer.TenantIssuer(ctx, ev.TenantID)
	if err != nil {
		return err
	}
	jwt, err := h.cfg.Claimer.SignClaims(ctx, ev.TenantID, map[string]any{"iss": iss, "aud": target,
		"sub": callerKind + ":" + callerID, "a2a_agent": agent, "body_sha256": hex.EncodeToString(sum[:]), "jti": ev.ID.String(),
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(payload.Body))
	if err != nil {
		return nil // a URL that cannot be requested will not get better
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+jwt)
	if len(sealed) > 0 && h.cfg.Sealer != nil {
		if tok, err := h.cfg.Sealer.Open(sealed, pushAAD(ev.TenantID, id)); err == nil {
			req.Header.Set("X-A2A-Notification-Token", string(tok))
		}
	}
	resp, err := h.cfg.Fetch.Do(req)
	if err != nil {
		return fmt.Errorf("push to the caller's webhook: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("the caller's webhook answered %d", resp.StatusCode)
	}
	return nil
}
