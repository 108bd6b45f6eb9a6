package a2a

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/xavyo/xavyo/gateway"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/governance"
	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
)

// Snapshots gives a tenant's effective-access snapshot.
type Snapshots interface {
	Snapshot(ctx context.Context, tenant uuid.UUID) (*governance.Snapshot, error)
}

// Config wires the A2A handlers.
type Config struct {
	DB     *store.DB
	Signer Signer
	// Enforcer is the agent plane's enforcement point: tenants, callers,
	// decision records.
	Enforcer *gateway.Enforcer
	Access   Snapshots
	Minter   Minter
	Audit    Auditor
	// Client reaches target agents: the egress client (checked dials).
	Client *http.Client
	// Fetch reads agents' own cards and their signers' keys (egress,
	// bounded); NHIs and Gov serve card imports.
	Fetch *http.Client
	NHIs  NHIs
	Gov   Entitlements
	// Bus drops cached agent records when agents change.
	Bus *events.Bus
	// Sealer keeps callers' webhook tokens; Claimer signs notification tokens.
	Sealer  Sealer
	Claimer Claimer
	// AgentURL and AdminURL are agent.public_url and admin.public_url.
	AgentURL string
	AdminURL string
	Version  string
	// Metrics records calls; nil records nothing.
	Metrics *Metrics
	Logger  *slog.Logger
	Now     func() time.Time
}

// Handlers serve A2A on the agent plane.
type Handlers struct {
	cfg    Config
	creds  sync.Map    // caller and target → the credential presented to the target
	agentc *agentCache // nil without a bus to invalidate it
}

// New returns the handlers.
func New(cfg Config) *Handlers {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Handlers{cfg: cfg}
	if cfg.Bus != nil {
		h.agentc = newAgentCache(cfg.Bus)
	}
	return h
}

// Mount registers the routes of docs/design/0000-architecture.md §11 on the agent plane's mux.
func (h *Handlers) Mount(handle func(pattern string, h http.Handler)) {
	handle("GET /.well-known/agent-card.json", http.HandlerFunc(h.gatewayCard))
	handle("GET /t/{slug}/a2a/agents", http.HandlerFunc(h.directory))
	handle("GET /t/{slug}/a2a/agents/{agent}/.well-known/agent-card.json", http.HandlerFunc(h.agentCard))
	handle("POST /t/{slug}/a2a/agents/{agent}", http.HandlerFunc(h.call))
	handle("POST /t/{slug}/a2a/push/{id}", http.HandlerFunc(h.pushed))
	// The HTTP+JSON binding.
	handle("POST /t/{slug}/a2a/agents/{agent}/message:send", h.rest("SendMessage"))
	handle("POST /t/{slug}/a2a/agents/{agent}/message:stream", h.rest("SendStreamingMessage"))
	handle("GET /t/{slug}/a2a/agents/{agent}/tasks", h.rest("ListTasks"))
	handle("GET /t/{slug}/a2a/agents/{agent}/tasks/{rest}", h.rest("task"))
	handle("POST /t/{slug}/a2a/agents/{agent}/tasks/{rest}", h.rest("task"))
	handle("GET /t/{slug}/a2a/agents/{agent}/extendedAgentCard", h.rest("GetExtendedAgentCard"))
	handle("POST /t/{slug}/a2a/agents/{agent}/tasks/{task}/pushNotificationConfigs", h.rest("CreateTaskPushNotificationConfig"))
	handle("GET /t/{slug}/a2a/agents/{agent}/tasks/{task}/pushNotificationConfigs", h.rest("ListTaskPushNotificationConfig"))
	handle("GET /t/{slug}/a2a/agents/{agent}/tasks/{task}/pushNotificationConfigs/{config}", h.rest("GetTaskPushNotificationConfig"))
	handle("DELETE /t/{slug}/a2a/agents/{agent}/tasks/{task}/pushNotificationConfigs/{config}", h.rest("DeleteTaskPushNotificationConfig"))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func problem(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// gatewayCard is xavyo's own card: where the agents of each tenant are
// listed and reached.
func (h *Handlers) gatewayCard(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, &Card{Name: "xavyo", Version: h.cfg.Version,
		Description: "Agent-protocol gateway: each tenant's agents are listed at /t/{tenant}/a2a/agents and reached at /t/{tenant}/a2a/agents/{agent}, " +
			"with an access token from the tenant's issuer or a client certificate from its CA.",
		SupportedInterfaces: []Interface{}, DefaultInputModes: []string{"text/plain"}, DefaultOutputModes: []string{"text/plain"},
		Skills: []Skill{{ID: "agent-directory", Name: "Agent directory", Description: "Lists the agents a caller may reach, by skill, tag or text",
			Tags: []string{"directory"}}}})
}

// scope resolves the tenant of a request.
func (h *Handlers) scope(w http.ResponseWriter, r *http.Request) (*tenant.Tenant, context.Context, bool) {
	t, ctx, err := h.cfg.Enforcer.Tenant(r.Context(), r.PathValue("slug"))
	if err != nil {
		problem(w, apperr.KindOf(err).HTTPStatus(), apperr.PublicMessage(err))
		return nil, nil, false
	}
	return t, ctx, true
}

func (h *Handlers) urls(t *tenant.Tenant) urls {
	return urls{agent: h.cfg.AgentURL, admin: h.cfg.AdminURL, issuer: h.cfg.AdminURL + "/t/" + t.Slug, slug: t.Slug}
}

// agents lists the tenant's active agents that serve A2A (one, by slug,
// when slug is given), from the cache when it has them.
func (h *Handlers) agents(ctx context.Context, slug string) ([]*agentRecord, error) {
	tid, ok := store.TenantFrom(ctx)
	if h.agentc == nil || !ok {
		return h.loadAgents(ctx, slug)
	}
	all, ok, stamp := h.agentc.get(tid)
	if !ok {
		var err error
		if all, err = h.loadAgents(ctx, ""); err != nil {
			return nil, err
		}
		h.agentc.put(tid, stamp, all)
	}
	if slug == "" {
		return all, nil
	}
	for _, a := range all {
		if a.slug == slug {
			return []*agentRecord{a}, nil
		}
	}
	return nil, nil
}

// loadAgents reads the tenant's active agents that serve A2A (from the
// NHI domain) with the cards pinned for them (this package's own table).
func (h *Handlers) loadAgents(ctx context.Context, slug string) ([]*agentRecord, error) {
	agents, err := h.cfg.NHIs.Active(ctx, nhi.KindAgent, slug)
	if err != nil {
		return nil, err
	}
	pinned, err := h.pinnedCards(ctx)
	if err != nil {
		return nil, err
	}
	var out []*agentRecord
	for _, n := range agents {
		p := n.Profile.Agent
		if p == nil || p.A2AEndpoint == "" {
			continue
		}
		a := &agentRecord{id: n.ID, slug: n.Slug, name: n.Name, description: n.Description, version: n.Version,
			skills: p.Skills, endpoint: p.A2AEndpoint, version03: p.A2AVersion == "0.3"}
		if raw := pinned[n.ID]; len(raw) > 0 {
			a.pinned = &Card{}
			_ = json.Unmarshal(raw, a.pinned)
		}
		out = append(out, a)
	}
	return out, nil
}

// signedCard builds and signs an agent's card.
func (h *Handlers) signedCard(ctx context.Context, t *tenant.Tenant, a *agentRecord) (*Card, error) {
	u := h.urls(t)
	c := cardFor(a, t.Name, u)
	if err := sign(ctx, h.cfg.Signer, t.ID, u.issuer+"/jwks", c); err != nil {
		return nil, err
	}
	return c, nil
}

// agentCard serves an agent's public card, signed with the tenant's key.
func (h *Handlers) agentCard(w http.ResponseWriter, r *http.Request) {
	t, ctx, ok := h.scope(w, r)
	if !ok {
		return
	}
	list, err := h.agents(ctx, r.PathValue("agent"))
	if err != nil {
		problem(w, http.StatusServiceUnavailable, "agent cards are unavailable")
		return
	}
	if len(list) == 0 {
		problem(w, http.StatusNotFound, "no such agent")
		return
	}
	c, err := h.signedCard(ctx, t, list[0])
	if err != nil {
		h.cfg.Logger.Error("agent card signature", "error", err)
		problem(w, http.StatusServiceUnavailable, "the card could not be signed")
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// Directory is the directory's answer.
type Directory struct {
	Agents []*Card `json:"agents"`
}

// directory lists the cards of the agents the caller may call (it holds
// their a2a_call entitlement), filtered by skill, tag or text.
func (h *Handlers) directory(w http.ResponseWriter, r *http.Request) {
	t, ctx, ok := h.scope(w, r)
	if !ok {
		return
	}
	p, ok := h.authenticate(w, r.WithContext(ctx), t, h.cfg.AgentURL+"/t/"+t.Slug+"/a2a/agents")
	if !ok {
		return
	}
	list, err := h.agents(ctx, "")
	if err != nil {
		problem(w, http.StatusServiceUnavailable, "the directory is unavailable")
		return
	}
	snap, err := h.cfg.Access.Snapshot(ctx, t.ID)
	if err != nil {
		problem(w, http.StatusServiceUnavailable, "the directory is unavailable")
		return
	}
	now := h.cfg.Now()
	q := r.URL.Query()
	out := &Directory{Agents: []*Card{}}
	for _, a := range list {
		ent, ok := snap.EntitlementID("a2a-"+a.slug, "call")
		if !ok || !p.May(snap, ent, now) {
			continue
		}
		c, err := h.signedCard(ctx, t, a)
		if err != nil {
			problem(w, http.StatusServiceUnavailable, "the cards could not be signed")
			return
		}
		if c.matches(q.Get("skill"), q.Get("tag"), q.Get("q")) {
			out.Agents = append(out.Agents, c)
		}
	}
	sort.Slice(out.Agents, func(i, j int) bool { return out.Agents[i].Name < out.Agents[j].Name })
	writeJSON(w, http.StatusOK, out)
}

// authenticate admits, at the enforcement point, a bearer token for
// exactly this URL with the a2a scope, or an NHI of the tenant by its
// client certificate.
func (h *Handlers) authenticate(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, resource string) (*gateway.Caller, bool) {
	c, refusal := h.cfg.Enforcer.Authenticate(r, t, gateway.Resource{URL: resource, Scope: "a2a"})
	if refusal != nil {
		w.Header().Set("WWW-Authenticate", refusal.Challenge)
		if refusal.Nonce != "" {
			w.Header().Set("DPoP-Nonce", refusal.Nonce)
		}
		problem(w, refusal.Status, refusal.Message)
		return nil, false
	}
	return c, true
}
