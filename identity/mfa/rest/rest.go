// Package rest serves a person's own second factors under /api/v1/me/mfa:
// enrol an authenticator app (TOTP), list and remove factors, and make new
// recovery codes.
package rest

import (
	"github.com/gofiber/fiber/v2"

	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/mfa"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/httpx"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
)

// Handler serves the routes.
type Handler struct {
	MFA       *mfa.Service
	Directory *directory.Service
	Tenants   *tenant.Service
}

// EnrollInput names a new authenticator.
type EnrollInput struct {
	Name string `json:"name,omitempty" doc:"a name for it (default: Authenticator app)"`
}

// ConfirmInput confirms an enrolment.
type ConfirmInput struct {
	Code string `json:"code" doc:"the 6-digit code the app shows now"`
}

// RecoveryCodes are shown once.
type RecoveryCodes struct {
	RecoveryCodes []string `json:"recovery_codes,omitempty" doc:"single-use codes for when the app is lost; shown once"`
}

// Factors lists a person's factors.
type Factors struct {
	Factors           []mfa.Factor `json:"factors"`
	RecoveryCodesLeft int          `json:"recovery_codes_left"`
}

// Mount registers the routes.
func (h *Handler) Mount(api *httpx.API) {
	t := []string{"me"}
	api.Handle(httpx.Route{Method: "GET", Path: "/me/mfa", OperationID: "listMyFactors", Summary: "Your second factors", Tags: t,
		Response: Factors{}, Handler: func(c *fiber.Ctx) error {
			id, err := httpx.Self(c.UserContext())
			if err != nil {
				return err
			}
			fs, left, err := h.MFA.Factors(c.UserContext(), id)
			if err != nil {
				return err
			}
			if fs == nil {
				fs = []mfa.Factor{}
			}
			return c.JSON(Factors{Factors: fs, RecoveryCodesLeft: left})
		}})
	api.Handle(httpx.Route{Method: "POST", Path: "/me/mfa/totp", OperationID: "enrollTOTP",
		Summary: "Start enrolling an authenticator app: its secret and otpauth URI (shown once); confirm with a code", Tags: t,
		Request: EnrollInput{}, Response: mfa.Enrollment{}, Status: 201, Handler: func(c *fiber.Ctx) error {
			id, err := httpx.Self(c.UserContext())
			if err != nil {
				return err
			}
			var in EnrollInput
			if err := httpx.DecodeJSON(c, &in); err != nil {
				return err
			}
			u, err := h.Directory.GetUser(c.UserContext(), id)
			if err != nil {
				return err
			}
			tid, _ := store.TenantFrom(c.UserContext())
			issuer := "xavyo"
			if tn, err := h.Tenants.Get(c.UserContext(), tid); err == nil {
				issuer = tn.Name
				if b := tenant.PoliciesOf(tn).Branding; b.DisplayName != "" {
					issuer = b.DisplayName
				}
			}
			out, err := h.MFA.EnrollTOTP(c.UserContext(), id, issuer, u.Email, in.Name)
			if err != nil {
				return err
			}
			c.Set(fiber.HeaderCacheControl, "no-store")
			return c.Status(201).JSON(out)
		}})
	api.Handle(httpx.Route{Method: "POST", Path: "/me/mfa/totp/:id/confirm", OperationID: "confirmTOTP",
		Summary: "Confirm an authenticator app with its current code; your first factor comes with recovery codes (shown once)", Tags: t,
		Request: ConfirmInput{}, Response: RecoveryCodes{}, Handler: func(c *fiber.Ctx) error {
			id, err := httpx.Self(c.UserContext())
			if err != nil {
				return err
			}
			fid, err := httpx.PathUUID(c, "id")
			if err != nil {
				return err
			}
			var in ConfirmInput
			if err := httpx.DecodeJSON(c, &in); err != nil {
				return err
			}
			codes, err := h.MFA.ConfirmTOTP(c.UserContext(), id, fid, in.Code)
			if err != nil {
				return err
			}
			c.Set(fiber.HeaderCacheControl, "no-store")
			return c.JSON(RecoveryCodes{RecoveryCodes: codes})
		}})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/me/mfa/:id", OperationID: "removeMyFactor",
		Summary: "Remove one of your second factors (the recovery codes go with the last one)", Tags: t, Status: 204,
		Handler: func(c *fiber.Ctx) error {
			id, err := httpx.Self(c.UserContext())
			if err != nil {
				return err
			}
			fid, err := httpx.PathUUID(c, "id")
			if err != nil {
				return err
			}
			if err := h.MFA.Remove(c.UserContext(), id, fid); err != nil {
				return err
			}
			return c.SendStatus(204)
		}})
	api.Handle(httpx.Route{Method: "DELETE", Path: "/users/:id/mfa", OperationID: "resetUserFactors",
		Summary: "Remove every second factor of a user who lost them (audited; the user is told by email)", Tags: []string{"users"},
		Roles: []string{principal.RoleTenantAdmin}, Status: 204, Handler: func(c *fiber.Ctx) error {
			id, err := httpx.PathUUID(c, "id")
			if err != nil {
				return err
			}
			if _, err := h.Directory.GetUser(c.UserContext(), id); err != nil {
				return err
			}
			if err := h.MFA.ResetAll(c.UserContext(), id); err != nil {
				return err
			}
			return c.SendStatus(204)
		}})
	api.Handle(httpx.Route{Method: "POST", Path: "/me/mfa/recovery-codes", OperationID: "regenerateRecoveryCodes",
		Summary: "New recovery codes (the old ones stop working), shown once", Tags: t, Response: RecoveryCodes{},
		Handler: func(c *fiber.Ctx) error {
			id, err := httpx.Self(c.UserContext())
			if err != nil {
				return err
			}
			codes, err := h.MFA.RegenerateRecovery(c.UserContext(), id)
			if err != nil {
				return err
			}
			c.Set(fiber.HeaderCacheControl, "no-store")
			return c.JSON(RecoveryCodes{RecoveryCodes: codes})
		}})
}
