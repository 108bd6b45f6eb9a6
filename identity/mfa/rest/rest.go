// Package rest serves a person's own second factors under /api/v1/me/mfa:
// enrol an authenticator app (TOTP), register passkeys and security keys
// (WebAuthn), list and remove factors, and make new recovery codes.
package rest

import (
	"encoding/json"

	"github.com/gofiber/fiber/v2"

	"github.com/xavyo/xavyo/identity/auth"
	"github.com/xavyo/xavyo/internal/apperr"

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

// RegisterInput finishes registering a passkey or security key.
type RegisterInput struct {
	Ceremony   string          `json:"ceremony" doc:"the ceremony of POST /api/v1/me/mfa/webauthn"`
	Credential json.RawMessage `json:"credential" doc:"the authenticator's answer (PublicKeyCredential.toJSON())"`
	Name       string          `json:"name,omitempty" doc:"a name for it (default: Passkey)"`
}

// Registered is a passkey or security key registered.
type Registered struct {
	Factor        *mfa.Factor `json:"factor"`
	RecoveryCodes []string    `json:"recovery_codes,omitempty" doc:"with your first factor: single-use codes for when it is lost; shown once"`
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
			issuer, _, err := h.tenantOf(c)
			if err != nil {
				return err
			}
			out, err := h.MFA.EnrollTOTP(c.UserContext(), id, issuer, u.Email, in.Name)
			if err != nil {
				return err
			}
			c.Set(fiber.HeaderCacheControl, "no-store")
			return c.Status(201).JSON(out)
		}})
	api.Handle(httpx.Route{Method: "POST", Path: "/me/mfa/webauthn", OperationID: "beginWebAuthnRegistration",
		Summary: "Start registering a passkey or security key: the options for navigator.credentials.create, and the ceremony to send back", Tags: t,
		Response: mfa.Ceremony{}, Handler: func(c *fiber.Ctx) error {
			id, err := httpx.Self(c.UserContext())
			if err != nil {
				return err
			}
			u, err := h.Directory.GetUser(c.UserContext(), id)
			if err != nil {
				return err
			}
			tn, pol, err := h.tenantOf(c)
			if err != nil {
				return err
			}
			display := u.DisplayName
			if display == "" {
				display = u.Email
			}
			out, err := h.MFA.BeginRegistration(c.UserContext(), id, u.Email, display, tn, pol)
			if err != nil {
				return err
			}
			c.Set(fiber.HeaderCacheControl, "no-store")
			return c.JSON(out)
		}})
	api.Handle(httpx.Route{Method: "POST", Path: "/me/mfa/webauthn/finish", OperationID: "finishWebAuthnRegistration",
		Summary: "Register a passkey or security key with the authenticator's answer; your first factor comes with recovery codes (shown once)", Tags: t,
		Request: RegisterInput{}, Response: Registered{}, Status: 201, Handler: func(c *fiber.Ctx) error {
			id, err := httpx.Self(c.UserContext())
			if err != nil {
				return err
			}
			var in RegisterInput
			if err := httpx.DecodeJSON(c, &in); err != nil {
				return err
			}
			if in.Ceremony == "" || len(in.Credential) == 0 {
				return apperr.Invalid("body", "ceremony and credential are required")
			}
			if err := mfa.CheckAnswer("credential", in.Credential); err != nil {
				return err
			}
			_, pol, err := h.tenantOf(c)
			if err != nil {
				return err
			}
			f, codes, err := h.MFA.FinishRegistration(c.UserContext(), id, in.Ceremony, in.Credential, in.Name, pol)
			if err != nil {
				return err
			}
			c.Set(fiber.HeaderCacheControl, "no-store")
			return c.Status(201).JSON(Registered{Factor: f, RecoveryCodes: codes})
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

// tenantOf is the name the request's tenant is shown by under
// authenticators, and its MFA policy.
func (h *Handler) tenantOf(c *fiber.Ctx) (string, tenant.MFAPolicy, error) {
	tid, _ := store.TenantFrom(c.UserContext())
	tn, err := h.Tenants.Get(c.UserContext(), tid)
	if err != nil {
		return "", tenant.MFAPolicy{}, err
	}
	return auth.RPName(tn), tenant.PoliciesOf(tn).MFA, nil
}
