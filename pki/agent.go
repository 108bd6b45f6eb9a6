package pki

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
)

// TenantsBySlug resolves the tenant of a /t/{slug} path.
type TenantsBySlug interface {
	Resolve(ctx context.Context, slug string) (*tenant.Tenant, error)
}

// AgentHandlers serves the CA on the agent plane: CRL, trust bundles,
// the caller's identity and renewal over mTLS.
type AgentHandlers struct {
	CA       *CA
	Verifier *Verifier
	NHIs     *nhi.Service
	Tenants  TenantsBySlug
}

// Mount registers the handlers on the agent plane's mux.
func (h *AgentHandlers) Mount(handle func(pattern string, hd http.Handler)) {
	handle("GET /pki/crl", http.HandlerFunc(h.crl))
	handle("GET /t/{slug}/pki/crl", h.tenant(h.crl))
	handle("GET /t/{slug}/pki/bundle.pem", h.tenant(h.bundlePEM))
	handle("GET /t/{slug}/pki/bundle.json", h.tenant(h.bundleJSON))
	handle("GET /t/{slug}/pki/identity", h.tenant(h.identity))
	handle("POST /t/{slug}/pki/renew", h.tenant(h.renew))
}

type tenantKey struct{}

// tenant resolves {slug}; unknown and deleted tenants are 404.
func (h *AgentHandlers) tenant(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, err := h.Tenants.Resolve(r.Context(), r.PathValue("slug"))
		if err != nil {
			writeErr(w, err)
			return
		}
		ctx := context.WithValue(store.WithTenant(r.Context(), t.ID), tenantKey{}, t)
		next(w, r.WithContext(ctx))
	})
}

func writeErr(w http.ResponseWriter, err error) {
	status := apperr.KindOf(err).HTTPStatus()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": apperr.KindOf(err).String(), "error_description": apperr.PublicMessage(err)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (h *AgentHandlers) crl(w http.ResponseWriter, _ *http.Request) {
	der, err := h.CA.CRL()
	if err != nil {
		writeErr(w, apperr.Wrap(err, apperr.KindUnavailable, "CRL unavailable"))
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Header().Set("Cache-Control", "max-age=60")
	_, _ = w.Write(der)
}

func (h *AgentHandlers) bundlePEM(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Cache-Control", "max-age=300")
	_, _ = w.Write(h.CA.BundlePEM())
}

// bundleJSON is the SPIFFE trust bundle (JWK set with x509-svid keys).
func (h *AgentHandlers) bundleJSON(w http.ResponseWriter, _ *http.Request) {
	var keys []json.RawMessage
	for _, root := range h.CA.Roots() {
		jwk := jose.JSONWebKey{Key: root.PublicKey, Certificates: []*x509.Certificate{root}}
		raw, err := jwk.MarshalJSON()
		if err != nil {
			writeErr(w, err)
			return
		}
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		m["use"] = "x509-svid"
		raw, _ = json.Marshal(m)
		keys = append(keys, raw)
	}
	w.Header().Set("Cache-Control", "max-age=300")
	writeJSON(w, 200, map[string]any{"keys": keys, "spiffe_sequence": time.Now().Unix() / 300, "spiffe_refresh_hint": 300})
}

// Identity tells an agent who its certificate says it is.
type Identity struct {
	TenantID    uuid.UUID `json:"tenant_id"`
	NHIID       string    `json:"nhi_id"`
	Kind        string    `json:"kind"`
	Slug        string    `json:"slug"`
	Status      string    `json:"status"`
	SPIFFEID    string    `json:"spiffe_id"`
	Serial      string    `json:"serial"`
	Fingerprint string    `json:"fingerprint"`
	NotAfter    time.Time `json:"not_after"`
}

// caller returns the mTLS principal of this tenant, or an error.
func (h *AgentHandlers) caller(r *http.Request) (*principal.Principal, error) {
	p := principal.From(r.Context())
	tid, _ := store.TenantFrom(r.Context())
	if p == nil || p.AuthMethod != principal.MethodMTLS || len(r.TLS.PeerCertificates) == 0 {
		return nil, apperr.New(apperr.KindUnauthenticated, "present a client certificate issued by xavyo")
	}
	if p.TenantID != tid {
		return nil, apperr.New(apperr.KindPermissionDenied, "the certificate belongs to another tenant")
	}
	return p, nil
}

func (h *AgentHandlers) identity(w http.ResponseWriter, r *http.Request) {
	p, err := h.caller(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	leaf := r.TLS.PeerCertificates[0]
	id, _ := uuid.Parse(p.SubjectID)
	n, err := h.NHIs.Lookup(r.Context(), id)
	if err != nil {
		writeErr(w, err)
		return
	}
	serial, _ := h.Verifier.Serial(r.Context(), leaf)
	out := Identity{TenantID: p.TenantID, NHIID: p.SubjectID, Kind: n.Kind, Slug: n.Slug, Status: n.Status, Serial: serial,
		Fingerprint: p.CertThumbprint, NotAfter: leaf.NotAfter.UTC()}
	if len(leaf.URIs) == 1 {
		out.SPIFFEID = leaf.URIs[0].String()
	}
	writeJSON(w, 200, out)
}

// renew issues a fresh certificate to the holder of a valid one, for the
// new key of the CSR in the body (renewal rotates the key).
func (h *AgentHandlers) renew(w http.ResponseWriter, r *http.Request) {
	p, err := h.caller(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	var in IssueInput
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxCSR+1024))
	if err != nil {
		writeErr(w, apperr.Invalid("body", "unreadable"))
		return
	}
	if len(body) > MaxCSR+512 {
		writeErr(w, apperr.New(apperr.KindTooLarge, "request body too large"))
		return
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || in.CSR == "" {
		writeErr(w, apperr.Invalid("body", `must be a JSON object {"csr": "<PEM certificate request for the new key>"}`))
		return
	}
	leaf := r.TLS.PeerCertificates[0]
	id, _ := uuid.Parse(p.SubjectID)
	n, err := h.NHIs.Lookup(r.Context(), id)
	if err != nil {
		writeErr(w, err)
		return
	}
	serial, _ := h.Verifier.Serial(r.Context(), leaf)
	lifetime, err := h.NHIs.CertificateLifetime(r.Context())
	if err != nil {
		writeErr(w, err)
		return
	}
	out, err := h.CA.Issue(r.Context(), n, in, lifetime, serial)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, 201, out)
}
