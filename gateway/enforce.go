package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/governance"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/identity/token"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/dpop"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/reqid"
	"github.com/xavyo/xavyo/internal/store"
)

// The enforcement point of docs/design/0014-enforcement.md: every agent
// protocol (MCP, A2A, and each one after them) resolves its tenant,
// authenticates its caller, finds the caller's subjects and records its
// decisions here, so the steps are written once and cannot drift apart.
// Protocol packages keep their transport, their translation and their
// upstreams, and render what the Enforcer returns in their own dialect.

// Tenants resolves the tenant a /t/{slug} path names under the one
// status policy (tenant.Service.Resolve).
type Tenants interface {
	Resolve(ctx context.Context, slug string) (*tenant.Tenant, error)
}

// Tokens verifies access tokens and the DPoP proofs that come with
// DPoP-bound ones.
type Tokens interface {
	Verify(ctx context.Context, raw string, want token.Expect) (*token.Claims, error)
	CheckProof(ctx context.Context, tenant uuid.UUID, raw, method, target, accessToken string) (*dpop.Proof, error)
	DPoPNonce() string
}

// Auditor is the audit log: decision records are appended durably
// (AppendDurable), outcome records queued (Append).
type Auditor interface {
	Append(ctx context.Context, e audit.Entry) (*audit.Receipt, error)
	AppendDurable(ctx context.Context, e audit.Entry) (*audit.Receipt, error)
}

// EnforcerConfig configures the enforcement point.
type EnforcerConfig struct {
	Tenants Tenants
	Tokens  Tokens
	Audit   Auditor
	// Approvals hold calls whose grant or risk requires one (nil: such
	// calls are refused); Bus wakes their waits.
	Approvals Approvals
	Bus       *events.Bus
	// NHIs are stamped as used by their calls (nil: not stamped).
	NHIs   Toucher
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Enforcer is the agent plane's policy enforcement point.
type Enforcer struct {
	cfg      EnforcerConfig
	policies sync.Map // tenant → its policy at a version
	limits   rateLimits
}

// NewEnforcer checks the configuration and returns the enforcement point.
func NewEnforcer(cfg EnforcerConfig) (*Enforcer, error) {
	if cfg.Tenants == nil || cfg.Tokens == nil || cfg.Audit == nil {
		return nil, errors.New("gateway: the enforcement point needs Tenants, Tokens and Audit")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Enforcer{cfg: cfg}, nil
}

// Tenant resolves the tenant of a request and scopes the context to it:
// not found for unknown or deleted tenants, tenant.ErrSuspended for
// suspended ones, unavailable when the store cannot answer.
func (e *Enforcer) Tenant(ctx context.Context, slug string) (*tenant.Tenant, context.Context, error) {
	t, err := e.cfg.Tenants.Resolve(ctx, slug)
	if err != nil {
		return nil, ctx, err
	}
	return t, store.WithTenant(ctx, t.ID), nil
}

// Resource is what a caller asks to reach: the exact URL its token must
// name as audience, and the scope the token must carry.
type Resource struct {
	URL   string
	Scope string
	// Metadata is the RFC 9728 protected-resource metadata URL named in
	// challenges ("" names none).
	Metadata string
}

// Caller is an authenticated caller and the subjects its decisions are
// made for.
type Caller struct {
	*principal.Principal
	// Expiry is the token's expiry (zero for client certificates, checked
	// by the agent plane on every request).
	Expiry time.Time
	// Subject and Actor are the governance subjects (Actor for delegated
	// calls); Governed is false when the principal is not a governed
	// subject, whose every call is refused.
	Subject  governance.Subject
	Actor    *governance.Subject
	Governed bool
}

// May reports whether the caller may use an entitlement now, by the
// snapshot (what tools/list and the agent directory show): the caller and,
// for a delegated call, its actor must both hold it.
func (c *Caller) May(snap *governance.Snapshot, ent uuid.UUID, now time.Time) bool {
	return c.Governed && snap.Permits(c.Subject, c.Actor, ent, now)
}

// Refusal is a failed authentication: the status, the WWW-Authenticate
// challenge and a message for the client, which each protocol renders in
// its own error format.
type Refusal struct {
	Status    int
	Challenge string
	Message   string
	// Nonce is a DPoP server nonce to send (DPoP-Nonce) with the refusal.
	Nonce string
}

type provenKey struct{}

// WithProvenKey marks ctx as a request the gateway made itself inside a
// connection whose opening request proved a DPoP key (jkt): a WebSocket's
// messages, authenticated again one by one, carry no proof of their own.
func WithProvenKey(ctx context.Context, jkt string) context.Context {
	return context.WithValue(ctx, provenKey{}, jkt)
}

// origin is scheme://host of an absolute URL.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// Authenticate finds the caller of a request to res in tenant t: a bearer
// token whose audience is exactly res.URL, issued by t, carrying
// res.Scope, and presented with its certificate when it is bound to one
// (RFC 8705); or else an NHI of t by its client certificate (the agent
// plane has verified it and put its principal in the context).
func (e *Enforcer) Authenticate(r *http.Request, t *tenant.Tenant, res Resource) (*Caller, *Refusal) {
	useDPoP := false
	refuse := func(status int, params, msg string) *Refusal {
		parts := []string{}
		if res.Metadata != "" {
			parts = append(parts, `resource_metadata="`+res.Metadata+`"`)
		}
		if res.Scope != "" && status == http.StatusUnauthorized {
			parts = append(parts, `scope="`+res.Scope+`"`)
		}
		if params != "" {
			parts = append(parts, params)
		}
		h := "Bearer"
		if useDPoP {
			// RFC 9449 §7.1: the DPoP scheme's challenge, with the
			// algorithms proofs may use.
			h, parts = "DPoP", append(parts, `algs="`+strings.Join(dpop.AlgorithmNames(), " ")+`"`)
		}
		if len(parts) > 0 {
			h += " " + strings.Join(parts, ", ")
		}
		return &Refusal{Status: status, Challenge: h, Message: msg}
	}
	if authz := r.Header.Get("Authorization"); authz != "" {
		scheme, raw, _ := strings.Cut(authz, " ")
		raw = strings.TrimSpace(raw)
		useDPoP = strings.EqualFold(scheme, "DPoP")
		if (!strings.EqualFold(scheme, "Bearer") && !useDPoP) || raw == "" {
			return nil, refuse(http.StatusUnauthorized, `error="invalid_request", error_description="use a Bearer or DPoP token"`,
				"authentication required: use a Bearer or DPoP token")
		}
		thumb := ""
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			sum := sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
			thumb = base64.RawURLEncoding.EncodeToString(sum[:])
		}
		jkt, _ := r.Context().Value(provenKey{}).(string)
		if useDPoP && jkt == "" {
			proofs := r.Header.Values("DPoP")
			if len(proofs) != 1 {
				return nil, refuse(http.StatusUnauthorized, `error="invalid_dpop_proof", error_description="one DPoP proof is required"`,
					"invalid DPoP proof: one is required")
			}
			p, err := e.cfg.Tokens.CheckProof(r.Context(), t.ID, proofs[0], r.Method, origin(res.URL)+r.URL.EscapedPath(), raw)
			switch {
			case errors.Is(err, token.ErrUseNonce):
				ref := refuse(http.StatusUnauthorized, `error="use_dpop_nonce", error_description="a DPoP proof must carry the server's nonce"`,
					apperr.PublicMessage(err))
				ref.Nonce = e.cfg.Tokens.DPoPNonce()
				return nil, ref
			case err != nil:
				desc := strings.ReplaceAll(apperr.PublicMessage(err), `"`, `'`)
				return nil, refuse(http.StatusUnauthorized, `error="invalid_dpop_proof", error_description="`+desc+`"`, desc)
			}
			jkt = p.JKT
		}
		c, err := e.cfg.Tokens.Verify(r.Context(), raw, token.Expect{Audience: res.URL, Tenant: t.ID, CertThumbprint: thumb, DPoPKey: jkt})
		if err != nil {
			desc := strings.ReplaceAll(apperr.PublicMessage(err), `"`, `'`)
			if errors.Is(err, token.ErrDPoPBound) {
				useDPoP = true // the client must learn to send proofs
			}
			return nil, refuse(http.StatusUnauthorized, `error="invalid_token", error_description="`+desc+`"`, "invalid token: "+desc)
		}
		p := token.Principal(c)
		if res.Scope != "" && !slices.Contains(p.Scopes, res.Scope) {
			return nil, refuse(http.StatusForbidden, `error="insufficient_scope", scope="`+res.Scope+`"`, "the token lacks the "+res.Scope+" scope")
		}
		caller := &Caller{Principal: p}
		if c.Expiry != nil {
			caller.Expiry = c.Expiry.Time()
		}
		caller.Subject, caller.Actor, caller.Governed = governance.SubjectsOf(p)
		return caller, nil
	}
	if p := principal.From(r.Context()); p != nil && p.Kind == principal.KindNHI && p.TenantID == t.ID && p.AuthMethod == principal.MethodMTLS {
		caller := &Caller{Principal: p}
		caller.Subject, caller.Actor, caller.Governed = governance.SubjectsOf(p)
		return caller, nil
	}
	return nil, refuse(http.StatusUnauthorized, "", "authentication required")
}

// ErrNotRecorded refuses a call whose decision record could not be made
// durable: nothing is forwarded that the audit log does not show.
var ErrNotRecorded = apperr.New(apperr.KindUnavailable, "the call could not be audited; it was not forwarded")

// Record appends a decision record and returns once it is durable. When
// it cannot be, the cause is logged with the request id and the call must
// be refused with ErrNotRecorded.
func (e *Enforcer) Record(ctx context.Context, entry audit.Entry) (*audit.Receipt, error) {
	receipt, err := e.cfg.Audit.AppendDurable(context.WithoutCancel(ctx), entry)
	if err != nil {
		e.cfg.Logger.Error("decision not recorded; call refused", "action", entry.Action, "error", err, "request_id", reqid.From(ctx))
		return nil, ErrNotRecorded
	}
	return receipt, nil
}

// Outcome appends the record of a forwarded call's outcome without
// waiting: the decision record is the durable proof of the call.
func (e *Enforcer) Outcome(ctx context.Context, entry audit.Entry) {
	entry.Lazy = true
	if _, err := e.cfg.Audit.Append(context.WithoutCancel(ctx), entry); err != nil {
		e.cfg.Logger.Warn("outcome record not queued", "action", entry.Action, "error", err, "request_id", reqid.From(ctx))
	}
}
