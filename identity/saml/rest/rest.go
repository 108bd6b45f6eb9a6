// Package rest serves the tenants' SAML identity providers: the service
// provider registry under /api/v1/saml-service-providers, and the
// protocol endpoints /t/{slug}/saml/metadata and /t/{slug}/saml/sso
// (HTTP-Redirect and HTTP-POST bindings; crewjam/saml over net/http). A
// request of a browser without an SSO session goes through the sign-in
// pages (an auth transaction of purpose "saml" keeps it) and is answered
// when the person comes back signed in; only people holding the service
// provider's entitlement get an assertion.
package rest

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	crewjam "github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/google/uuid"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/xavyo/xavyo/identity/auth"
	authrest "github.com/xavyo/xavyo/identity/auth/rest"
	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/saml"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/httpx"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/reqid"
	"github.com/xavyo/xavyo/internal/store"
)

// Requests may be as old as the most lenient service provider allows;
// each one's own allowance is checked before crewjam's.
func init() { crewjam.MaxIssueDelay = saml.MaxClockSkew }

// purpose is the auth transactions of SAML sign-ins.
const purpose = "saml"

// Handler serves the routes.
type Handler struct {
	SAML    *saml.Service
	Tenants *tenant.Service
	Pages   *authrest.Pages
	// Users reads a person (in the tenant of ctx).
	Users func(ctx context.Context, id uuid.UUID) (*directory.User, error)
	// Access decides whether a person holds an entitlement now.
	Access func(ctx context.Context, tenant, user, entitlement uuid.UUID) (bool, error)
	// Issuer is a tenant's issuer URL (…/t/{slug}).
	Issuer func(slug string) string
	Audit  audit.Syncer
	// Groups lists the names of the groups a person is in (for the groups
	// attribute).
	Groups func(ctx context.Context, user uuid.UUID) ([]string, error)
	// End ends an SSO session (single logout).
	End func(ctx context.Context, t *tenant.Tenant, bs *auth.BrowserSession) error
	Log *slog.Logger
}

// Mount registers the REST routes.
func (h *Handler) Mount(api *httpx.API) {
	tags := []string{"saml"}
	admin := []string{principal.RoleTenantAdmin}
	read := []string{principal.RoleTenantAdmin, principal.RoleAuditor}
	api.Handle(httpx.Route{Method: "GET", Path: "/saml-service-providers", OperationID: "listSAMLServiceProviders",
		Summary: "The tenant's SAML service providers", Tags: tags, Roles: read, Response: []saml.ServiceProvider{}, Handler: func(c *fiber.Ctx) error {
			out, err := h.SAML.List(c.UserContext())
			if err != nil {
				return err
			}
			if out == nil {
				out = []*saml.ServiceProvider{}
			}
			return c.JSON(out)
		}})
	api.Handle(httpx.Route{Method: "POST", Path: "/saml-service-providers", OperationID: "createSAMLServiceProvider",
		Summary: "Register a SAML service provider by its metadata; only holders of its entitlement get assertions", Tags: tags, Roles: admin,
		Request: saml.Input{}, Response: saml.ServiceProvider{}, Status: 201, Handler: func(c *fiber.Ctx) error {
			var in saml.Input
			if err := httpx.DecodeJSON(c, &in); err != nil {
				return err
			}
			out, err := h.SAML.Create(c.UserContext(), in)
			if err != nil {
				return err
			}
			return c.Status(201).JSON(out)
		}})
	api.Handle(httpx.Route{Method: "GET", Path: "/saml-service-providers/:id", OperationID: "getSAMLServiceProvider",
		Summary: "A SAML service provider", Tags: tags, Roles: read, Response: saml.ServiceProvider{}, Handler: func(c *fiber.Ctx) error {
			id, err := httpx.PathUUID(c, "id")
			if err != nil {
				return err
			}
			out, err := h.SAML.Get(c.UserContext(), id)
			if err != nil {
				return err
			}
			return c.JSON(out)
		}})
	api.Handle(httpx.Route{Method: "PATCH", Path: "/saml-service-providers/:id", OperationID: "updateSAMLServiceProvider",
		Summary: "Change a SAML service provider (its key stays)", Tags: tags, Roles: admin, Request: saml.Input{}, Response: saml.ServiceProvider{},
		IfMatch: true, Handler: func(c *fiber.Ctx) error {
			id, err := httpx.PathUUID(c, "id")
			if err != nil {
				return err
			}
			var in saml.Input
			if err := httpx.DecodeJSON(c, &in); err != nil {
				return err
			}
			ver, err := httpx.IfMatch(c)
			if err != nil {
				return err
			}
			out, err := h.SAML.Update(c.UserContext(), id, in, ver)
			if err != nil {
				return err
			}
			return c.JSON(out)
		}})
	api.Handle(httpx.Route{Method: "POST", Path: "/saml-service-providers/:id/refresh", OperationID: "refreshSAMLServiceProvider",
		Summary: "Fetch a service provider's metadata again from its metadata_url (done daily anyway)", Tags: tags, Roles: admin,
		Response: saml.ServiceProvider{}, Handler: func(c *fiber.Ctx) error {
			id, err := httpx.PathUUID(c, "id")
			if err != nil {
				return err
			}
			out, err := h.SAML.Refresh(c.UserContext(), id)
			if err != nil {
				return err
			}
			return c.JSON(out)
		}})
	api.Handle(httpx.Route{Method: "GET", Path: "/saml-keys", OperationID: "listSAMLKeys",
		Summary: "The tenant's SAML signing keys: the signing one first, the others published in the metadata for a rollover", Tags: tags,
		Roles: read, Response: []saml.KeyInfo{}, Handler: func(c *fiber.Ctx) error {
			name, err := h.tenantName(c)
			if err != nil {
				return err
			}
			out, err := h.SAML.ListKeys(c.UserContext(), name)
			if err != nil {
				return err
			}
			return c.JSON(out)
		}})
	api.Handle(httpx.Route{Method: "POST", Path: "/saml-keys", OperationID: "addSAMLKey", StepUp: true,
		Summary: "Start a rollover: a new key, published in the metadata at once, signing once activated", Tags: tags, Roles: admin,
		Response: saml.KeyInfo{}, Status: 201, Handler: func(c *fiber.Ctx) error {
			name, err := h.tenantName(c)
			if err != nil {
				return err
			}
			id, err := h.SAML.AddKey(c.UserContext(), name)
			if err != nil {
				return err
			}
			keys, err := h.SAML.ListKeys(c.UserContext(), name)
			if err != nil {
				return err
			}
			for _, k := range keys {
				if k.ID == id {
					return c.Status(201).JSON(k)
				}
			}
			return apperr.NotFound("key")
		}})
	api.Handle(httpx.Route{Method: "POST", Path: "/saml-keys/:id/activate", OperationID: "activateSAMLKey", StepUp: true,
		Summary: "Sign with this key from now on (the previous one stays published until retired)", Tags: tags, Roles: admin, Status: 204,
		Handler: func(c *fiber.Ctx) error {
			id, err := httpx.PathUUID(c, "id")
			if err != nil {
				return err
			}
			if err := h.SAML.ActivateKey(c.UserContext(), id); err != nil {
				return err
			}
			return c.SendStatus(204)
		}})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/saml-keys/:id", OperationID: "retireSAMLKey", StepUp: true,
		Summary: "Retire a key that no longer signs: it leaves the metadata", Tags: tags, Roles: admin, Status: 204,
		Handler: func(c *fiber.Ctx) error {
			id, err := httpx.PathUUID(c, "id")
			if err != nil {
				return err
			}
			if err := h.SAML.RetireKey(c.UserContext(), id); err != nil {
				return err
			}
			return c.SendStatus(204)
		}})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/saml-service-providers/:id", OperationID: "deleteSAMLServiceProvider",
		Summary: "Remove a SAML service provider", Tags: tags, Roles: admin, Status: 204, Handler: func(c *fiber.Ctx) error {
			id, err := httpx.PathUUID(c, "id")
			if err != nil {
				return err
			}
			if err := h.SAML.Delete(c.UserContext(), id); err != nil {
				return err
			}
			return c.SendStatus(204)
		}})
}

// MountPages registers the protocol endpoints and the sign-in flow.
func (h *Handler) MountPages(app *fiber.App) {
	app.Get("/t/:slug/saml/metadata", h.metadata)
	app.Get("/t/:slug/saml/sso", h.sso)
	app.Post("/t/:slug/saml/sso", h.sso)
	app.Get("/t/:slug/saml/slo", h.slo)
	app.Post("/t/:slug/saml/slo", h.slo)
	h.Pages.Register(purpose, flow{h})
}

// tenantName is the name of the request's tenant (its keys' subject).
func (h *Handler) tenantName(c *fiber.Ctx) (string, error) {
	tid, _ := store.TenantFrom(c.UserContext())
	t, err := h.Tenants.Get(c.UserContext(), tid)
	if err != nil {
		return "", err
	}
	return t.Name, nil
}

func (h *Handler) tenantOf(c *fiber.Ctx) (*tenant.Tenant, context.Context, error) {
	t, err := h.Tenants.Resolve(c.UserContext(), c.Params("slug"))
	if err != nil {
		return nil, nil, authrest.TenantPage(c, err)
	}
	return t, store.WithTenant(c.UserContext(), t.ID), nil
}

// idp is a tenant's identity provider for one request.
func (h *Handler) idp(ctx context.Context, t *tenant.Tenant, sessions crewjam.SessionProvider, user uuid.UUID, legacy bool) (*crewjam.IdentityProvider, error) {
	k, others, err := h.SAML.Keys(ctx, t.Name)
	if err != nil {
		return nil, err
	}
	base := h.Issuer(t.Slug) + "/saml"
	meta, _ := url.Parse(base + "/metadata")
	sso, _ := url.Parse(base + "/sso")
	slo, _ := url.Parse(base + "/slo")
	nonce := authrest.Nonce()
	return &crewjam.IdentityProvider{Key: k.Private, Certificate: k.Certificate, ExtraCertificates: others, MetadataURL: *meta, SSOURL: *sso,
		LogoutURL:               *slo,
		LogoutBindings:          []string{crewjam.HTTPRedirectBinding, crewjam.HTTPPostBinding},
		Logger:                  slog.NewLogLogger(h.logger().Handler(), slog.LevelWarn),
		ServiceProviderProvider: providers{h: h, ctx: ctx}, SessionProvider: sessions,
		AssertionMaker: maker{h: h, ctx: ctx, t: t, user: user}, SignatureMethod: signatureMethod(legacy), RejectSHA1Signatures: !legacy,
		ReplayCache: replays{h: h, ctx: ctx}, AssertionEncrypter: encrypter(legacy),
		ResponseFormTemplate: template.Must(template.New("post").Parse(strings.Replace(postForm, "NONCE", nonce, 1))),
		ResponseWriter:       postWriter{nonce: nonce},
		NameIDFormats:        []crewjam.NameIDFormat{crewjam.NameIDFormat(saml.NameIDEmail), crewjam.NameIDFormat(saml.NameIDPersistent)},
		OnError: func(w http.ResponseWriter, _ *http.Request, status int, err error) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(status)
			msg := "this SAML request cannot be answered"
			if status < 500 && err != nil {
				msg += ": " + err.Error()
			}
			_, _ = w.Write([]byte(msg))
		}}, nil
}

func (h *Handler) logger() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.Default()
}

// encrypter encrypts assertions for a service provider whose metadata
// has an encryption key: AES-256-GCM, the key sent with RSA-OAEP (a
// legacy SP: what its metadata lists, else AES-128-CBC).
func encrypter(legacy bool) xmlenc.Encrypter {
	if legacy {
		return nil
	}
	e := xmlenc.OAEP()
	e.BlockCipher = xmlenc.AES256GCM
	e.DigestMethod = &xmlenc.SHA1
	return e
}

func signatureMethod(legacy bool) string {
	if legacy {
		return dsig.RSASHA1SignatureMethod
	}
	return dsig.RSASHA256SignatureMethod
}

// replays records the ids of signed requests answered (crewjam's replay
// cache, in the database: every replica sees them).
type replays struct {
	h   *Handler
	ctx context.Context
}

func (r replays) Consume(id string, expires time.Time) error {
	err := r.h.SAML.Consume(r.ctx, id, expires)
	if apperr.KindOf(err) == apperr.KindAlreadyExists {
		return crewjam.ErrAssertionReplayed
	}
	return err
}

// message is what xavyo reads of a SAML message before crewjam does:
// who sent it, whether it is signed, whether it carries a DTD.
type message struct {
	present, signed, dtd bool
	issuer, sigAlg       string
	issued               time.Time
}

// peek reads a message's issuer and signature from a request (param:
// SAMLRequest or SAMLResponse): deflated in the query (Redirect), plain
// in the form (POST).
func peek(in request, param string) message {
	var m message
	var raw []byte
	if in.Method == http.MethodGet {
		q, _ := url.ParseQuery(in.Query)
		b, err := base64.StdEncoding.DecodeString(q.Get(param))
		if err != nil || len(b) == 0 {
			return m
		}
		m.signed, m.sigAlg = q.Get("Signature") != "", q.Get("SigAlg")
		if raw, err = io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(b)), maxRequest+1)); err != nil {
			raw = nil
		}
	} else {
		f, _ := url.ParseQuery(in.Form)
		b, err := base64.StdEncoding.DecodeString(f.Get(param))
		if err != nil || len(b) == 0 {
			return m
		}
		raw = b
		if f.Get("Signature") != "" {
			m.signed, m.sigAlg = true, f.Get("SigAlg")
		}
	}
	if len(raw) == 0 {
		return m
	}
	m.present = true
	m.dtd = bytes.Contains(raw, []byte("<!DOCTYPE")) || bytes.Contains(raw, []byte("<!ENTITY"))
	var doc struct {
		IssueInstant string `xml:"IssueInstant,attr"`
		Issuer       string `xml:"Issuer"`
		Signature    *struct {
			SignedInfo struct {
				SignatureMethod struct {
					Algorithm string `xml:"Algorithm,attr"`
				} `xml:"SignatureMethod"`
			} `xml:"SignedInfo"`
		} `xml:"Signature"`
	}
	if !m.dtd && xml.Unmarshal(raw, &doc) == nil {
		m.issuer = strings.TrimSpace(doc.Issuer)
		m.issued, _ = time.Parse(time.RFC3339Nano, doc.IssueInstant)
		if doc.Signature != nil {
			m.signed, m.sigAlg = true, doc.Signature.SignedInfo.SignatureMethod.Algorithm
		}
	}
	return m
}

// check applies a service provider's rules to a message it sent (that
// arrived at at): no DTD ever, a signature where it must sign, an
// IssueInstant within its clock skew; it says whether the SP is marked
// legacy (SHA-1 allowed). crewjam judges the age again against the
// largest skew, at the time it answers: a person has the rest of ten
// minutes to sign in.
func (h *Handler) check(ctx context.Context, m message, at time.Time) (bool, error) {
	if m.dtd {
		return false, apperr.Invalid("SAMLRequest", "a DTD is not allowed in SAML messages")
	}
	if m.issuer == "" {
		return false, nil
	}
	sp, _, err := h.SAML.ByEntityID(ctx, m.issuer)
	if err != nil {
		return false, nil // crewjam answers an unknown issuer
	}
	if sp.RequireSignedRequests && !m.signed {
		return false, apperr.Invalid("SAMLRequest", "this service provider's messages must be signed")
	}
	if !m.issued.IsZero() && (at.Sub(m.issued) > sp.Skew() || m.issued.Sub(at) > sp.Skew()) {
		return false, apperr.Invalid("SAMLRequest", "the message's IssueInstant is too far from now (check the service provider's clock)")
	}
	return sp.LegacySHA1, nil
}

// postForm posts the SAML response to the service provider (its one
// script allowed by nonce).
const postForm = `<!doctype html><html><head><meta charset="utf-8"><title>Continue</title></head><body>
<form method="post" action="{{.URL}}" id="saml-response"><input type="hidden" name="SAMLResponse" value="{{.SAMLResponse}}">
<input type="hidden" name="RelayState" value="{{.RelayState}}"><noscript><button type="submit">Continue</button></noscript></form>
<script nonce="NONCE">document.getElementById("saml-response").submit()</script></body></html>`

// postWriter sends the response page with the headers of a sign-in page,
// allowing its form to post to the assertion consumer service.
type postWriter struct{ nonce string }

func (p postWriter) WriteResponse(w http.ResponseWriter, req *crewjam.IdpAuthnRequest) error {
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+p.nonce+"'; form-action "+authrest.Origin(req.ACSEndpoint.Location))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	return req.WriteResponse(w)
}

// providers finds service providers by entity id in the tenant.
type providers struct {
	h   *Handler
	ctx context.Context
}

func (p providers) GetServiceProvider(_ *http.Request, id string) (*crewjam.EntityDescriptor, error) {
	_, ed, err := p.h.SAML.ByEntityID(p.ctx, id)
	if apperr.KindOf(err) == apperr.KindNotFound {
		return nil, os.ErrNotExist
	}
	return ed, err
}

// maker makes the assertion of an entitled person, or refuses.
type maker struct {
	h    *Handler
	ctx  context.Context
	t    *tenant.Tenant
	user uuid.UUID
}

func (m maker) MakeAssertion(req *crewjam.IdpAuthnRequest, s *crewjam.Session) error {
	sp, _, err := m.h.SAML.ByEntityID(m.ctx, req.ServiceProviderMetadata.EntityID)
	if err != nil {
		return err
	}
	ok, err := m.h.Access(m.ctx, m.t.ID, m.user, sp.EntitlementID)
	if err != nil {
		return err
	}
	if !ok {
		m.h.audit(m.ctx, m.t.ID, m.user, sp, audit.OutcomeDenied, "not entitled")
		return &crewjam.StatusError{TopLevel: crewjam.StatusResponder, SecondLevel: crewjam.StatusRequestDenied,
			Message: "you do not have access to this application"}
	}
	u, err := m.h.Users(m.ctx, m.user)
	if err != nil {
		return err
	}
	s.NameIDFormat = sp.NameIDFormat
	source := sp.NameIDSource
	if source == "" {
		source = map[bool]string{true: "id", false: "email"}[sp.NameIDFormat == saml.NameIDPersistent]
	}
	switch source {
	case "id":
		s.NameID = u.ID.String()
	case "username":
		if u.Username == nil || *u.Username == "" {
			return &crewjam.StatusError{TopLevel: crewjam.StatusResponder, SecondLevel: crewjam.StatusInvalidNameIDPolicy,
				Message: "this account has no username for this application"}
		}
		s.NameID = *u.Username
	default:
		s.NameID = u.Email
	}
	if err := (crewjam.DefaultAssertionMaker{}).MakeAssertion(req, s); err != nil {
		return err
	}
	if len(sp.Attributes) > 0 {
		attrs, err := m.h.attributes(m.ctx, u, sp.Attributes)
		if err != nil {
			return err
		}
		req.Assertion.AttributeStatements = []crewjam.AttributeStatement{{Attributes: attrs}}
	}
	m.h.audit(m.ctx, m.t.ID, m.user, sp, audit.OutcomeSuccess, "")
	return nil
}

// Attribute name formats (saml-core §8.2).
const (
	nameFormatURI         = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
	nameFormatBasic       = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
	nameFormatUnspecified = "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified"
)

// attributes are the attributes of a person for a service provider's
// mappings.
func (h *Handler) attributes(ctx context.Context, u *directory.User, mappings []saml.AttributeMapping) ([]crewjam.Attribute, error) {
	var custom map[string]any
	_ = json.Unmarshal(u.Attributes, &custom)
	var groups []string
	out := make([]crewjam.Attribute, 0, len(mappings))
	for _, mp := range mappings {
		var values []string
		switch {
		case mp.Source == "email":
			values = []string{u.Email}
		case mp.Source == "given_name":
			values = []string{u.GivenName}
		case mp.Source == "family_name":
			values = []string{u.FamilyName}
		case mp.Source == "display_name":
			values = []string{u.DisplayName}
		case mp.Source == "username" && u.Username != nil:
			values = []string{*u.Username}
		case mp.Source == "id":
			values = []string{u.ID.String()}
		case mp.Source == "groups":
			if groups == nil && h.Groups != nil {
				var err error
				if groups, err = h.Groups(ctx, u.ID); err != nil {
					return nil, err
				}
			}
			values = groups
		case strings.HasPrefix(mp.Source, "attributes."):
			if v, ok := custom[strings.TrimPrefix(mp.Source, "attributes.")]; ok && v != nil {
				values = []string{fmt.Sprint(v)}
			}
		}
		if len(values) == 0 || (len(values) == 1 && values[0] == "") {
			continue
		}
		format := map[string]string{"uri": nameFormatURI, "basic": nameFormatBasic,
			"unspecified": nameFormatUnspecified}[mp.NameFormat]
		if format == "" {
			format = nameFormatBasic
			if strings.HasPrefix(mp.Name, "urn:") {
				format = nameFormatURI
			}
		}
		a := crewjam.Attribute{Name: mp.Name, NameFormat: format}
		for _, v := range values {
			a.Values = append(a.Values, crewjam.AttributeValue{Type: "xs:string", Value: v})
		}
		out = append(out, a)
	}
	return out, nil
}

func (h *Handler) audit(ctx context.Context, tid, user uuid.UUID, sp *saml.ServiceProvider, outcome, reason string) {
	if h.Audit == nil {
		return
	}
	action, kind, target, details := "saml.slo", "user", user.String(), map[string]string{}
	if sp != nil {
		action, kind, target, details = "saml.sso", "saml_sp", sp.ID.String(), map[string]string{"sp": sp.Key, "entity_id": sp.EntityID}
	}
	if reason != "" {
		details["reason"] = reason
	}
	_ = h.Audit.AppendSync(ctx, audit.Entry{TenantID: tid, Action: action, Outcome: outcome, TargetKind: kind, TargetID: target,
		ActorKind: "user", ActorID: user.String(), RequestID: reqid.From(ctx), Details: details})
}

// metadata serves the tenant's IdP metadata.
func (h *Handler) metadata(c *fiber.Ctx) error {
	t, ctx, err := h.tenantOf(c)
	if t == nil {
		return err
	}
	idp, err := h.idp(ctx, t, nil, uuid.Nil, false)
	if err != nil {
		return authrest.Error(c, 503, "this page is unavailable; try again")
	}
	return adaptor.HTTPHandlerFunc(idp.ServeMetadata)(c)
}

// request is a SAML request kept on its auth transaction while the person
// signs in.
type request struct {
	Method string `json:"m"`
	Query  string `json:"q,omitempty"`
	Form   string `json:"f,omitempty"`
	// At is when it arrived: its age is judged then, not after the
	// sign-in it waited for.
	At time.Time `json:"t"`
}

// sso answers an AuthnRequest: at once for a browser with an SSO session,
// else after the sign-in pages. Without an AuthnRequest, ?sp={key}
// (&RelayState=…) starts an IdP-initiated sign-in to that service provider.
func (h *Handler) sso(c *fiber.Ctx) error {
	t, _, err := h.tenantOf(c)
	if t == nil {
		return err
	}
	bs, err := h.Pages.SessionOf(c, t)
	if err != nil {
		return authrest.Error(c, 503, "the sign-in is unavailable; try again")
	}
	req := request{Method: c.Method(), Query: string(c.Request().URI().QueryString()), At: time.Now()}
	if c.Method() == fiber.MethodPost {
		req.Form = inflatePosted(string(c.Body()))
	}
	return h.serve(c, t, req, bs, false)
}

// maxRequest bounds a SAML request, inflated.
const maxRequest = 256 << 10

// inflatePosted accepts an HTTP-POST AuthnRequest that was deflated as
// for the Redirect binding (some service providers do, against the
// binding's text): the form is given on with the request inflated.
func inflatePosted(form string) string {
	v, err := url.ParseQuery(form)
	if err != nil || v.Get("SAMLRequest") == "" || v.Get("Signature") != "" {
		return form
	}
	raw, err := base64.StdEncoding.DecodeString(v.Get("SAMLRequest"))
	if err != nil || bytes.HasPrefix(bytes.TrimSpace(raw), []byte("<")) {
		return form
	}
	xml, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(raw)), maxRequest+1))
	if err != nil || len(xml) > maxRequest || !bytes.HasPrefix(bytes.TrimSpace(xml), []byte("<")) {
		return form
	}
	v.Set("SAMLRequest", base64.StdEncoding.EncodeToString(xml))
	return v.Encode()
}

// serve runs the identity provider on a request, for a person signed in
// in session bs (nil: none yet; fresh: they signed in for this request).
func (h *Handler) serve(c *fiber.Ctx, t *tenant.Tenant, in request, bs *auth.BrowserSession, fresh bool) error {
	ctx := store.WithTenant(c.UserContext(), t.ID)
	target := h.Issuer(t.Slug) + "/saml/sso"
	if in.Query != "" {
		target += "?" + in.Query
	}
	r, err := http.NewRequestWithContext(ctx, in.Method, target, strings.NewReader(in.Form))
	if err != nil {
		return authrest.Error(c, 400, "this SAML request cannot be read")
	}
	if in.Method == http.MethodPost {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	legacy, err := h.check(ctx, peek(in, "SAMLRequest"), in.At)
	if err != nil {
		return authrest.Error(c, 400, apperr.PublicMessage(err))
	}
	var user uuid.UUID
	sessions := &sessions{h: h, ctx: ctx, t: t, bs: bs, fresh: fresh, user: &user}
	idp, err := h.idp(ctx, t, sessions, uuid.Nil, legacy)
	if err != nil {
		return authrest.Error(c, 503, "the sign-in is unavailable; try again")
	}
	// The assertion is made for the person the session names.
	served := false
	// IdP-initiated: no AuthnRequest, the service provider named by key.
	q, _ := url.ParseQuery(in.Query)
	var initiated *saml.ServiceProvider
	if in.Method == http.MethodGet && q.Get("SAMLRequest") == "" && q.Get("sp") != "" {
		if initiated, err = h.SAML.ByKey(ctx, q.Get("sp")); err != nil {
			if apperr.KindOf(err) == apperr.KindNotFound {
				return authrest.Error(c, 404, "unknown service provider")
			}
			return authrest.Error(c, 503, "the sign-in is unavailable; try again")
		}
	}
	// The response page sets its own headers (its script's nonce, the ACS
	// as form target): a sign-in page's, set on the way here, would add to
	// them and block both.
	c.Response().Header.Del(fiber.HeaderContentSecurityPolicy)
	err = adaptor.HTTPHandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mk := idp.AssertionMaker.(maker)
		idp.AssertionMaker = lazyMaker{m: mk, user: &user}
		if initiated != nil {
			idp.ServeIDPInitiated(w, r, initiated.EntityID, q.Get("RelayState"))
		} else {
			idp.ServeSSO(w, r)
		}
		served = !sessions.signIn
	})(c)
	if err != nil || served {
		return err
	}
	// No session (or a fresh sign-in asked for): the sign-in pages, then
	// this request again.
	raw, _ := json.Marshal(in)
	c.Response().Reset()
	return h.Pages.Begin(c, t, purpose, string(raw))
}

// lazyMaker gives the maker the person known once the session is.
type lazyMaker struct {
	m    maker
	user *uuid.UUID
}

func (l lazyMaker) MakeAssertion(req *crewjam.IdpAuthnRequest, s *crewjam.Session) error {
	l.m.user = *l.user
	return l.m.MakeAssertion(req, s)
}

// sessions is the identity provider's view of the browser's SSO session:
// the person it signs in, the service providers it signed in to (for
// single logout), and its end.
type sessions struct {
	h      *Handler
	ctx    context.Context
	t      *tenant.Tenant
	bs     *auth.BrowserSession
	fresh  bool
	user   *uuid.UUID
	signIn bool // the request needs the sign-in pages
}

func (s *sessions) GetSession(w http.ResponseWriter, _ *http.Request, req *crewjam.IdpAuthnRequest) *crewjam.Session {
	if s.bs == nil || (req.Request.ForceAuthn != nil && *req.Request.ForceAuthn && !s.fresh) {
		if req.Request.IsPassive != nil && *req.Request.IsPassive {
			_ = req.IDP.SendErrorResponse(w, req, &crewjam.StatusError{TopLevel: crewjam.StatusResponder, SecondLevel: crewjam.StatusNoPassive})
			return nil
		}
		s.signIn = true
		return nil
	}
	u, err := s.h.Users(s.ctx, s.bs.UserID)
	if err != nil || u.Status != "active" {
		s.signIn = true
		return nil
	}
	*s.user = u.ID
	out := &crewjam.Session{ID: s.bs.ID.String(), Index: s.bs.ID.String(), CreateTime: s.bs.AuthTime, ExpireTime: time.Now().Add(8 * time.Hour),
		NameID: u.Email, NameIDFormat: saml.NameIDEmail, UserEmail: u.Email, UserGivenName: u.GivenName, UserSurname: u.FamilyName,
		UserCommonName: u.DisplayName, SubjectID: u.ID.String()}
	if u.Username != nil {
		out.UserName = *u.Username
	}
	return out
}

// AddSessionParticipant records a service provider the session signed in
// to.
func (s *sessions) AddSessionParticipant(_ *http.Request, session *crewjam.Session, p crewjam.SessionParticipant) error {
	id, err := uuid.Parse(session.ID)
	if err != nil {
		return err
	}
	return s.h.SAML.AddParticipant(s.ctx, id, saml.Participant{EntityID: p.ServiceProviderID, NameID: p.NameID.Value, NameIDFormat: p.NameID.Format,
		SessionIndex: p.SessionIndex})
}

// named reports whether a logout names the browser's session (by the
// subject one of its service providers was given), with those providers.
func (s *sessions) named(match func(*crewjam.Session) bool) (bool, []saml.Participant, error) {
	if s.bs == nil {
		return false, nil, nil
	}
	parts, err := s.h.SAML.Participants(s.ctx, s.bs.ID)
	if err != nil {
		return false, nil, err
	}
	for _, p := range parts {
		if match(&crewjam.Session{ID: s.bs.ID.String(), Index: p.SessionIndex, NameID: p.NameID}) {
			return true, parts, nil
		}
	}
	return false, parts, nil
}

// SessionParticipants lists the service providers of the browser's
// session, if a logout names it.
func (s *sessions) SessionParticipants(_ *http.Request, match func(*crewjam.Session) bool) ([]crewjam.SessionParticipant, error) {
	named, parts, err := s.named(match)
	if err != nil || !named {
		return nil, err
	}
	out := make([]crewjam.SessionParticipant, 0, len(parts))
	for _, p := range parts {
		out = append(out, crewjam.SessionParticipant{ServiceProviderID: p.EntityID, NameID: crewjam.NameID{Value: p.NameID, Format: p.NameIDFormat},
			SessionIndex: p.SessionIndex})
	}
	return out, nil
}

// InvalidateSession ends the browser's SSO session (and its tokens) and
// clears its cookie, if the LogoutRequest names it: a request naming
// anyone else ends nothing.
func (s *sessions) InvalidateSession(w http.ResponseWriter, _ *http.Request, req *crewjam.IdpLogoutRequest) error {
	named, _, err := s.named(req.MatchesSession)
	if err != nil || !named {
		return err
	}
	if err := s.h.End(s.ctx, s.t, s.bs); err != nil {
		return err
	}
	c := authrest.SSOCookie(s.t, s.h.Issuer(s.t.Slug))
	same := http.SameSiteLaxMode
	if c.Secure {
		same = http.SameSiteNoneMode
	}
	//nolint:gosec // G124: Secure follows the issuer's scheme, as the SSO cookie it clears does
	http.SetCookie(w, &http.Cookie{Name: c.Name, Value: "", Path: c.Path, MaxAge: -1, Expires: time.Unix(1, 0), HttpOnly: true, Secure: c.Secure,
		SameSite: same})
	s.h.audit(s.ctx, s.t.ID, s.bs.UserID, nil, audit.OutcomeSuccess, "single logout from "+req.ServiceProviderMetadata.EntityID)
	return s.h.SAML.ForgetParticipants(s.ctx, s.bs.ID)
}

// SignOut signs a person who signs out at xavyo out of the service
// providers their session signed in to (IdP-initiated single logout): the
// browser is sent to each with a signed LogoutRequest, then to resume. It
// takes the browser only when there is a service provider to sign out of.
func (h *Handler) SignOut(c *fiber.Ctx, t *tenant.Tenant, bs *auth.BrowserSession, resume string) (bool, error) {
	ctx := store.WithTenant(c.UserContext(), t.ID)
	parts, err := h.SAML.Participants(ctx, bs.ID)
	if err != nil || len(parts) == 0 {
		return false, err
	}
	var user uuid.UUID
	idp, err := h.idp(ctx, t, &sessions{h: h, ctx: ctx, t: t, bs: bs, user: &user}, uuid.Nil, false)
	if err != nil {
		return false, err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, h.Issuer(t.Slug)+"/logout", nil)
	if err != nil {
		return false, err
	}
	r.Header.Set("Cookie", c.Get(fiber.HeaderCookie))
	c.Response().Header.Del(fiber.HeaderContentSecurityPolicy)
	if err := adaptor.HTTPHandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		idp.StartLogout(w, r, &crewjam.Session{ID: bs.ID.String(), Index: bs.ID.String()}, resume)
	})(c); err != nil {
		return false, err
	}
	// The logout's progress now travels with the browser.
	h.audit(ctx, t.ID, bs.UserID, nil, audit.OutcomeSuccess, "single logout from xavyo")
	return true, h.SAML.ForgetParticipants(ctx, bs.ID)
}

// slo answers single logout: a service provider's LogoutRequest (the
// browser's session ends, and every other service provider it signed in
// to is sent one, then the first is answered), or a service provider's
// LogoutResponse during that.
func (h *Handler) slo(c *fiber.Ctx) error {
	t, ctx, err := h.tenantOf(c)
	if t == nil {
		return err
	}
	bs, err := h.Pages.SessionOf(c, t)
	if err != nil {
		return authrest.Error(c, 503, "the sign-out is unavailable; try again")
	}
	target := h.Issuer(t.Slug) + "/saml/slo"
	if q := string(c.Request().URI().QueryString()); q != "" {
		target += "?" + q
	}
	r, err := http.NewRequestWithContext(ctx, c.Method(), target, strings.NewReader(string(c.Body())))
	if err != nil {
		return authrest.Error(c, 400, "this SAML request cannot be read")
	}
	r.Header.Set("Content-Type", c.Get(fiber.HeaderContentType))
	r.Header.Set("Cookie", c.Get(fiber.HeaderCookie))
	in := request{Method: c.Method(), Query: string(c.Request().URI().QueryString()), Form: string(c.Body()), At: time.Now()}
	param := "SAMLRequest"
	if m := peek(in, "SAMLResponse"); m.present {
		param = "SAMLResponse"
	}
	legacy, err := h.check(ctx, peek(in, param), in.At)
	if err != nil {
		return authrest.Error(c, 400, apperr.PublicMessage(err))
	}
	var user uuid.UUID
	idp, err := h.idp(ctx, t, &sessions{h: h, ctx: ctx, t: t, bs: bs, user: &user}, uuid.Nil, legacy)
	if err != nil {
		return authrest.Error(c, 503, "the sign-out is unavailable; try again")
	}
	return adaptor.HTTPHandlerFunc(func(w http.ResponseWriter, _ *http.Request) { idp.ServeSLO(w, r) })(c)
}

// flow resumes a SAML request once the person signed in.
type flow struct{ h *Handler }

func (f flow) Describe(ctx context.Context, t *tenant.Tenant, x *auth.Transaction) (authrest.Prompt, error) {
	var in request
	if err := json.Unmarshal([]byte(x.Request), &in); err != nil {
		return authrest.Prompt{}, errors.New("the SAML request is no longer valid")
	}
	return authrest.Prompt{}, nil
}

func (f flow) Resume(c *fiber.Ctx, t *tenant.Tenant, x *auth.Transaction, bs *auth.BrowserSession) error {
	var in request
	if err := json.Unmarshal([]byte(x.Request), &in); err != nil {
		return authrest.Error(c, 400, "the SAML request is no longer valid")
	}
	_ = f.h.Pages.Auth.EndTransaction(store.WithTenant(c.UserContext(), t.ID), t, x)
	return f.h.serve(c, t, in, bs, true)
}
