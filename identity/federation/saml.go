package federation

// xavyo as a SAML service provider to a tenant's upstream SAML identity
// provider (crewjam/saml does the protocol): its entity is
// /t/{slug}/federation/{key}/metadata, its assertion consumer service
// …/acs (HTTP-POST) and its single logout service …/slo (HTTP-Redirect);
// it signs its requests with the tenant's SAML key (RSA-SHA256) and is
// sent assertions encrypted to it. An assertion must answer a request
// this browser sent (InResponseTo; IdP-initiated sign-ins are refused),
// be signed by a key of the provider's metadata, be meant for this
// service provider (audience, recipient, destination), be valid now, and
// be new (its id is recorded until it expires).

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	crewjam "github.com/crewjam/saml"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

const maxMetadata = 256 << 10

// ParseIDPMetadata reads an identity provider's metadata: one
// EntityDescriptor with an IDPSSODescriptor that has a single sign-on
// service and a signing certificate. A DTD is refused.
func ParseIDPMetadata(raw string) (*crewjam.EntityDescriptor, error) {
	if raw == "" || len(raw) > maxMetadata {
		return nil, apperr.Invalid("settings.metadata", "the identity provider's metadata (XML, at most 256 KiB) is required")
	}
	if strings.Contains(raw, "<!DOCTYPE") || strings.Contains(raw, "<!ENTITY") {
		return nil, apperr.Invalid("settings.metadata", "a DTD is not allowed in metadata")
	}
	var ed crewjam.EntityDescriptor
	dec := xml.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.Strict = true
	if err := dec.Decode(&ed); err != nil {
		return nil, apperr.Invalid("settings.metadata", "not SAML metadata: "+err.Error())
	}
	if ed.EntityID == "" || len(ed.IDPSSODescriptors) == 0 {
		return nil, apperr.Invalid("settings.metadata", "an EntityDescriptor with an entityID and an IDPSSODescriptor is required")
	}
	sso, signing := false, false
	for _, d := range ed.IDPSSODescriptors {
		sso = sso || len(d.SingleSignOnServices) > 0
		for _, k := range d.KeyDescriptors {
			signing = signing || ((k.Use == "" || k.Use == "signing") && len(k.KeyInfo.X509Data.X509Certificates) > 0)
		}
	}
	if !sso || !signing {
		return nil, apperr.Invalid("settings.metadata", "the IDPSSODescriptor needs a SingleSignOnService and a signing certificate")
	}
	return &ed, nil
}

// replay is crewjam's replay cache over the tenant's records.
type replay struct {
	ctx context.Context
	s   *Service
}

func (r replay) Consume(id string, until time.Time) error {
	return r.s.Replay(r.ctx, "federation:"+id, until)
}

// serviceProvider is xavyo's service provider to p; base is
// /t/{slug}/federation/{key} as an absolute URL.
func (s *Service) serviceProvider(ctx context.Context, p *Provider, base string) (*crewjam.ServiceProvider, error) {
	if p.Kind != KindSAML {
		return nil, apperr.NotFound("SAML identity provider")
	}
	ed, err := ParseIDPMetadata(p.Metadata)
	if err != nil {
		return nil, err
	}
	key, cert, err := s.SAMLKey(ctx)
	if err != nil {
		return nil, err
	}
	meta, err1 := url.Parse(base + "/metadata")
	acs, err2 := url.Parse(base + "/acs")
	slo, err3 := url.Parse(base + "/slo")
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, apperr.New(apperr.KindInternal, "federation: bad service provider URL")
	}
	return &crewjam.ServiceProvider{EntityID: meta.String(), Key: key, Certificate: cert, EncryptionKey: key, EncryptionCertificate: cert,
		MetadataURL: *meta, AcsURL: *acs, SloURL: *slo, IDPMetadata: ed, AuthnNameIDFormat: crewjam.UnspecifiedNameIDFormat,
		SignatureMethod: "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", LogoutBindings: []string{crewjam.HTTPRedirectBinding},
		AssertionConsumerServiceBindings: []string{crewjam.HTTPPostBinding}, ReplayCache: replay{ctx: ctx, s: s},
		RejectUnknownConditions: true}, nil
}

// SAMLMetadata is xavyo's service provider metadata for p.
func (s *Service) SAMLMetadata(ctx context.Context, p *Provider, base string) ([]byte, error) {
	sp, err := s.serviceProvider(ctx, p, base)
	if err != nil {
		return nil, err
	}
	return xml.MarshalIndent(sp.Metadata(), "", "  ")
}

// BeginSAML sends a sign-in to a SAML provider: a signed AuthnRequest
// by HTTP-Redirect, its RelayState naming the attempt.
func (s *Service) BeginSAML(ctx context.Context, p *Provider, tx, browser, base string) (string, error) {
	if !p.Enabled {
		return "", apperr.NotFound("identity provider")
	}
	sp, err := s.serviceProvider(ctx, p, base)
	if err != nil {
		return "", err
	}
	req, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(crewjam.HTTPRedirectBinding), crewjam.HTTPRedirectBinding, crewjam.HTTPPostBinding)
	if err != nil {
		return "", apperr.New(apperr.KindUnavailable, "the identity provider's metadata has no HTTP-Redirect single sign-on service")
	}
	relay := random(32)
	if err := s.saveAttempt(ctx, p, relay, attempt{Tx: tx, Browser: digest(browser), Request: req.ID}); err != nil {
		return "", err
	}
	u, err := req.Redirect(relay, sp)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// SAMLSession is the upstream session an assertion opened.
type SAMLSession struct {
	NameID, Format, Index string
}

// FinishSAML completes a sign-in back from a SAML provider (the posted
// form of its HTTP-POST binding): the attempt its RelayState names is
// used up, in the browser that started it, and the response verified.
func (s *Service) FinishSAML(ctx context.Context, p *Provider, form url.Values, browser, base string) (*Identity, *SAMLSession, string, error) {
	a, err := s.takeAttempt(ctx, p, form.Get("RelayState"), browser)
	if err != nil {
		return nil, nil, "", err
	}
	sp, err := s.serviceProvider(ctx, p, base)
	if err != nil {
		return nil, nil, "", err
	}
	r := &http.Request{Method: http.MethodPost, URL: &sp.AcsURL, Form: form, PostForm: form, Header: http.Header{}}
	r = r.WithContext(ctx)
	as, err := sp.ParseResponse(r, []string{a.Request})
	if err != nil {
		return nil, nil, "", refused(samlReason(err))
	}
	id := &Identity{Claims: map[string]any{}}
	for _, st := range as.AttributeStatements {
		for _, at := range st.Attributes {
			var vals []any
			for _, v := range at.Values {
				vals = append(vals, v.Value)
			}
			var v any = vals
			if len(vals) == 1 {
				v = vals[0]
			}
			id.Claims[at.Name] = v
			if at.FriendlyName != "" {
				id.Claims[at.FriendlyName] = v
			}
		}
	}
	ss := &SAMLSession{}
	if as.Subject != nil && as.Subject.NameID != nil {
		ss.NameID, ss.Format = as.Subject.NameID.Value, as.Subject.NameID.Format
	}
	for _, st := range as.AuthnStatements {
		ss.Index = st.SessionIndex
		if st.AuthnContext.AuthnContextClassRef != nil {
			id.ACR = st.AuthnContext.AuthnContextClassRef.Value
		}
	}
	id.Subject = ss.NameID
	if p.SubjectAttribute != "" {
		id.Subject = claimText(id.Claims[p.SubjectAttribute])
	} else if ss.Format == string(crewjam.TransientNameIDFormat) {
		return nil, nil, "", refused("a transient NameID identifies nobody: set subject_attribute")
	}
	if id.Subject == "" || len(id.Subject) > 512 {
		return nil, nil, "", refused("no subject")
	}
	id.Claims["sub"] = id.Subject
	if _, ok := id.Claims["email"]; !ok && ss.Format == string(crewjam.EmailAddressNameIDFormat) {
		id.Claims["email"] = ss.NameID
	}
	return id, ss, a.Tx, nil
}

// samlReason is what may be said of a refused response: crewjam keeps
// the detail private (it can tell an attacker what to change).
func samlReason(err error) string {
	var ire *crewjam.InvalidResponseError
	if errors.As(err, &ire) && ire.PrivateErr != nil {
		msg := ire.PrivateErr.Error()
		for _, k := range []string{"signature", "audience", "Destination", "Recipient", "InResponseTo", "expired", "replay", "NotOnOrAfter", "NotBefore", "Issuer"} {
			if strings.Contains(msg, k) {
				return "invalid response (" + strings.ToLower(k) + ")"
			}
		}
	}
	return "invalid response"
}

// RecordSAMLSession keeps the upstream session a sign-in (its auth
// transaction) came from, until the SSO session it opens is known.
func (s *Service) RecordSAMLSession(ctx context.Context, p *Provider, tx string, user uuid.UUID, ss *SAMLSession) error {
	return s.DB.InTenantTx(ctx, func(t *store.Tx) error {
		return insertSessionTx(ctx, t, uuid.Must(uuid.NewV7()), digest(tx), p.ID, user, ss, s.now())
	})
}

// SessionOpened ties the upstream session of a sign-in (transaction tx)
// to the SSO session it opened.
func (s *Service) SessionOpened(ctx context.Context, tx string, session uuid.UUID) error {
	return s.DB.InTenantTx(ctx, func(t *store.Tx) error { return openSessionTx(ctx, t, digest(tx), session) })
}

// SignOutUpstream starts the single logout of the upstream SAML session
// an SSO session came from: the browser goes to the provider with a
// LogoutRequest, and comes back to resume ("" : the session came from no
// SAML provider).
func (s *Service) SignOutUpstream(ctx context.Context, session uuid.UUID, base func(p *Provider) string, resume string) (string, error) {
	var rows []sessionRow
	err := s.DB.InTenantTx(ctx, func(t *store.Tx) error {
		var err error
		rows, err = takeSessionsTx(ctx, t, session)
		return err
	})
	if err != nil || len(rows) == 0 {
		return "", err
	}
	r := rows[0]
	p, err := s.Get(ctx, r.provider)
	if err != nil || !p.Enabled {
		return "", nil //nolint:nilerr // a provider gone or off: nothing upstream to sign out of
	}
	sp, err := s.serviceProvider(ctx, p, base(p))
	if err != nil {
		return "", err
	}
	if sp.GetSLOBindingLocation(crewjam.HTTPRedirectBinding) == "" {
		return "", nil
	}
	relay := random(32)
	var opts []crewjam.LogoutRequestOption
	if r.index != "" {
		opts = append(opts, crewjam.WithSessionIndex(r.index))
	}
	req, err := sp.MakeLogoutRequest(sp.GetSLOBindingLocation(crewjam.HTTPRedirectBinding), r.nameID, opts...)
	if err != nil {
		return "", err
	}
	if r.format != "" && req.NameID != nil {
		req.NameID.Format = r.format
	}
	if err := s.saveAttempt(ctx, p, relay, attempt{Resume: resume, Request: req.ID}); err != nil {
		return "", err
	}
	u, err := sp.RedirectLogoutRequestURL(req, relay)
	if err != nil {
		return "", err
	}
	s.record(ctx, p, "federation.logout", r.user, &Identity{Subject: r.nameID}, nil)
	return u.String(), nil
}

// LogoutAnswer is what the single logout service does with a request.
type LogoutAnswer struct {
	// Redirect is where the browser goes next.
	Redirect string
}

// SingleLogout answers the provider at xavyo's single logout service: a
// LogoutRequest (the person signed out upstream: the SSO sessions that
// upstream session opened end, and the provider gets a LogoutResponse),
// or the LogoutResponse to xavyo's own request (the sign-out it
// interrupted goes on).
func (s *Service) SingleLogout(ctx context.Context, p *Provider, r *http.Request, base string) (*LogoutAnswer, error) {
	sp, err := s.serviceProvider(ctx, p, base)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	if q.Get("SAMLResponse") != "" || r.PostForm.Get("SAMLResponse") != "" {
		relay := q.Get("RelayState")
		if relay == "" {
			relay = r.PostForm.Get("RelayState")
		}
		a, err := s.takeAttempt(ctx, p, relay, "")
		if err != nil || a.Resume == "" {
			return nil, ErrAttempt
		}
		if _, err := sp.ParseLogoutResponse(r, []string{a.Request}); err != nil {
			// The local sign-out goes on: the upstream did not confirm its own.
			s.record(ctx, p, "federation.logout", uuid.Nil, &Identity{}, refused(samlReason(err)))
		}
		return &LogoutAnswer{Redirect: a.Resume}, nil
	}
	req, err := sp.ValidateLogoutRequest(r)
	if err != nil {
		return nil, refused(samlReason(err))
	}
	if req.NameID == nil {
		return nil, refused("no NameID")
	}
	index := ""
	if req.SessionIndex != nil {
		index = req.SessionIndex.Value
	}
	var rows []sessionRow
	err = s.DB.InTenantTx(ctx, func(t *store.Tx) error {
		var err error
		rows, err = takeUpstreamSessionsTx(ctx, t, p.ID, req.NameID.Value, index)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, row := range rows {
		if row.session != uuid.Nil {
			if err := s.EndSession(ctx, row.session, row.user); err != nil {
				return nil, err
			}
		}
		s.record(ctx, p, "federation.logout", row.user, &Identity{Subject: row.nameID}, nil)
	}
	relay := q.Get("RelayState")
	if relay == "" {
		relay = r.PostForm.Get("RelayState")
	}
	u, err := sp.MakeRedirectLogoutResponse(req.ID, relay)
	if err != nil {
		return nil, err
	}
	return &LogoutAnswer{Redirect: u.String()}, nil
}
