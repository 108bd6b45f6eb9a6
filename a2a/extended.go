package a2a

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"

	"github.com/xavyo/xavyo/gateway"

	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
)

// extendedCard answers a caller allowed to call the agent with the
// agent's extended card as seen through xavyo: what the agent tells
// authenticated callers of itself (its own extended card, asked with
// xavyo's credential), with xavyo's interfaces, ways in and signature —
// or, when the agent offers none, xavyo's card for it.
func (h *Handlers) extendedCard(ctx context.Context, w http.ResponseWriter, t *tenant.Tenant, p *gateway.Caller, a *agentRecord,
	id json.RawMessage, body []byte, translate, rest bool, entry audit.Entry, det callDetails) {
	entry.Outcome, entry.Details = audit.OutcomeSuccess, det
	// The agent is asked for its own extended card only once the record
	// of the call is durable.
	if _, err := h.cfg.Enforcer.Record(ctx, entry); err != nil {
		rpcError(w, http.StatusServiceUnavailable, id, codeInternal, apperr.PublicMessage(err), nil)
		return
	}
	c := cardFor(a, t.Name, h.urls(t))
	c.Capabilities.ExtendedAgentCard = true
	if own := h.ownExtendedCard(ctx, t, p, a, body); own != nil {
		if own.Description != "" {
			c.Description = own.Description
		}
		if len(own.Skills) > 0 {
			c.Skills = own.Skills
		}
		if own.Version != "" {
			c.Version = own.Version
		}
	}
	if err := sign(ctx, h.cfg.Signer, t.ID, h.urls(t).issuer+"/jwks", c); err != nil {
		rpcError(w, http.StatusServiceUnavailable, id, codeInternal, "the card could not be signed", nil)
		return
	}
	if rest {
		writeJSON(w, http.StatusOK, c)
		return
	}
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	writeJSON(w, http.StatusOK, map[string]any{"jsonrpc": "2.0", "id": id, "result": c})
}

// ownExtendedCard asks the agent for its extended card (nil if it has
// none or does not answer well).
func (h *Handlers) ownExtendedCard(ctx context.Context, t *tenant.Tenant, p *gateway.Caller, a *agentRecord, body []byte) *Card {
	cred, err := h.credential(ctx, t, p, a)
	if err != nil {
		return nil
	}
	// The agent's registered endpoint (the request's path only picks the
	// agent), dialed through the egress client, which checks every dial.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.endpoint, bytes.NewReader(body)) //nolint:gosec // G704: see above
	if err != nil {
		return nil
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+cred)
	if !a.version03 {
		req.Header.Set("A2A-Version", ProtocolVersion)
	}
	resp, err := h.cfg.Client.Do(req) //nolint:gosec // G704: the registered endpoint, through the egress client
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil
	}
	var env struct {
		Result *Card `json:"result"`
	}
	if json.Unmarshal(b, &env) != nil {
		return nil
	}
	return env.Result
}
