// Package rest serves certificate issuance and revocation under
// /api/v1/nhis/{id}/certificates and the CA's administration under
// /api/v1/pki.
package rest

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/httpx"
	"github.com/xavyo/xavyo/pki"
)

// Handler serves the CA's admin routes.
type Handler struct {
	CA   *pki.CA
	NHIs *nhi.Service
}

// Authority describes a CA certificate.
type Authority struct {
	Subject   string    `json:"subject"`
	NotAfter  time.Time `json:"not_after"`
	PEM       string    `json:"pem"`
	IsRoot    bool      `json:"is_root"`
	IsCurrent bool      `json:"is_current"`
}

// RotateInput rotates the CA.
type RotateInput struct {
	// Root also replaces the root (the previous root stays trusted until retired).
	Root bool `json:"root,omitempty"`
}

// Mount registers the routes.
func (h *Handler) Mount(api *httpx.API) {
	t := []string{"certificates"}
	api.Handle(httpx.Route{Method: "POST", Path: "/nhis/:id/certificates", OperationID: "issueCertificate", StepUp: true,
		Summary: "Issue an mTLS certificate with the NHI's SPIFFE ID, from a CSR or with a generated key (manage)", Tags: t,
		Request: pki.IssueInput{}, Response: pki.Issued{}, Status: 201, Example: map[string]any{}, Handler: h.issue})
	api.Handle(httpx.Route{Method: "GET", Path: "/nhis/:id/certificates", OperationID: "listCertificates",
		Summary: "The NHI's certificates (use)", Tags: t, Response: []pki.Certificate{}, Handler: h.list})
	api.Handle(httpx.Route{Method: "POST", Path: "/nhis/:id/certificates/:serial/revoke", OperationID: "revokeCertificate",
		Summary: "Revoke a certificate (manage); every replica refuses it within a second", Tags: t, Request: pki.RevokeInput{},
		Example: map[string]any{"reason": "key exposed in a log"}, Status: 204, Handler: h.revoke})
	ca := []string{"certificate authority"}
	api.Handle(httpx.Route{Method: "GET", Path: "/pki/authorities", OperationID: "listAuthorities", Summary: "The CA's roots and intermediates",
		Tags: ca, Scope: httpx.ScopePlatform, Response: []Authority{}, Handler: h.authorities})
	api.Handle(httpx.Route{Method: "POST", Path: "/pki/rotate", OperationID: "rotateCA",
		Summary: "Replace the intermediate (and optionally the root); previous ones stay trusted until retired", Tags: ca,
		Scope: httpx.ScopePlatform, Request: RotateInput{}, Response: []Authority{}, Handler: h.rotate})
	api.Handle(httpx.Route{Method: "POST", Path: "/pki/retire-previous", OperationID: "retirePreviousCA",
		Summary: "Stop trusting previous roots and intermediates", Tags: ca, Scope: httpx.ScopePlatform, Response: []Authority{},
		Handler: h.retire})
}

func (h *Handler) issue(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	var in pki.IssueInput
	if err := httpx.DecodeJSON(c, &in); err != nil {
		return err
	}
	n, err := h.NHIs.Authorize(c.UserContext(), id, nhi.PermManage)
	if err != nil {
		return err
	}
	lifetime, err := h.NHIs.CertificateLifetime(c.UserContext())
	if err != nil {
		return err
	}
	out, err := h.CA.Issue(c.UserContext(), n, in, lifetime, "")
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("X-Certificate-Serial", out.Serial)
	if c.Get(fiber.HeaderAccept) == "application/x-pem-file" {
		// For shell clients: the chain, then the generated key if any.
		c.Set(fiber.HeaderContentType, "application/x-pem-file")
		return c.Status(201).SendString(out.ChainPEM + out.PrivateKeyPEM)
	}
	return c.Status(201).JSON(out)
}

func (h *Handler) list(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	if _, err := h.NHIs.Get(c.UserContext(), id); err != nil {
		return err
	}
	out, err := h.CA.Certificates(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (h *Handler) revoke(c *fiber.Ctx) error {
	id, err := httpx.PathUUID(c, "id")
	if err != nil {
		return err
	}
	serial := c.Params("serial")
	if len(serial) == 0 || len(serial) > 60 || !digits(serial) {
		return apperr.Invalid("serial", "must be the certificate's decimal serial number")
	}
	var in pki.RevokeInput
	if err := httpx.DecodeJSON(c, &in); err != nil {
		return err
	}
	if _, err := h.NHIs.Authorize(c.UserContext(), id, nhi.PermManage); err != nil {
		return err
	}
	if err := h.CA.Revoke(c.UserContext(), id, serial, in); err != nil {
		return err
	}
	return c.SendStatus(204)
}

func digits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func (h *Handler) authorityList() []Authority {
	var out []Authority
	for i, r := range h.CA.Roots() {
		out = append(out, Authority{Subject: r.Subject.String(), NotAfter: r.NotAfter, PEM: pki.PEM(r.Raw), IsRoot: true, IsCurrent: i == 0})
	}
	for i, r := range h.CA.Intermediates() {
		out = append(out, Authority{Subject: r.Subject.String(), NotAfter: r.NotAfter, PEM: pki.PEM(r.Raw), IsCurrent: i == 0})
	}
	return out
}

func (h *Handler) authorities(c *fiber.Ctx) error { return c.JSON(h.authorityList()) }

func (h *Handler) rotate(c *fiber.Ctx) error {
	var in RotateInput
	if err := httpx.DecodeJSON(c, &in); err != nil {
		return err
	}
	if err := h.CA.Rotate(c.UserContext(), in.Root); err != nil {
		return err
	}
	return c.JSON(h.authorityList())
}

func (h *Handler) retire(c *fiber.Ctx) error {
	if err := h.CA.RetirePrevious(c.UserContext()); err != nil {
		return err
	}
	return c.JSON(h.authorityList())
}
