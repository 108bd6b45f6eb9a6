package a2a

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"
	"github.com/gowebpki/jcs"

	"github.com/xavyo/xavyo/governance"
	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
)

// NHIs checks the caller's right on an NHI.
type NHIs interface {
	Authorize(ctx context.Context, id uuid.UUID, need string) (*nhi.NHI, error)
	// Active lists the tenant's active NHIs of a kind (one slug's, if given).
	Active(ctx context.Context, kind, slug string) ([]*nhi.NHI, error)
}

// Entitlements quarantines an agent's a2a_call entitlement.
type Entitlements interface {
	UpdateEntitlement(ctx context.Context, id uuid.UUID, in governance.EntitlementInput, ifVersion int64) (*governance.Entitlement, error)
	// AgentCallEntitlement is an agent's a2a_call entitlement (uuid.Nil: none).
	AgentCallEntitlement(ctx context.Context, agent uuid.UUID) (uuid.UUID, error)
	// ApprovedCallAgent is the agent of an approved a2a_call entitlement
	// (uuid.Nil when it is not one).
	ApprovedCallAgent(ctx context.Context, entitlement uuid.UUID) (uuid.UUID, error)
}

// CardStatus is what xavyo holds of an agent's own card.
type CardStatus struct {
	NHIID      uuid.UUID       `json:"nhi_id"`
	Signed     bool            `json:"signed" doc:"the last imported card carried a signature that verified"`
	PinnedHash string          `json:"pinned_hash" doc:"the approved card's hash (RFC 8785 form without signatures, SHA-256)"`
	LatestHash string          `json:"latest_hash"`
	Pinned     json.RawMessage `json:"pinned,omitempty"`
	Latest     json.RawMessage `json:"latest"`
	Changes    []string        `json:"changes" doc:"top-level members that differ between the pinned and the latest card"`
	FetchedAt  time.Time       `json:"fetched_at"`
}

// cardDigest is a card's canonical form without signatures and its hash.
func cardDigest(card map[string]json.RawMessage) ([]byte, string, error) {
	unsigned := map[string]json.RawMessage{}
	for k, v := range card {
		if k != "signatures" {
			unsigned[k] = v
		}
	}
	raw, err := json.Marshal(unsigned)
	if err != nil {
		return nil, "", err
	}
	canon, err := jcs.Transform(raw)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(canon)
	return canon, hex.EncodeToString(sum[:]), nil
}

// signedForms are the payloads a card's signature may cover: A2A 1.0
// §8.4.1's form (defaults left out), and the whole card in RFC 8785 form
// (signers that keep every member).
func signedForms(canon []byte) [][]byte {
	forms := [][]byte{canon}
	if spec, err := canonicalJSON(canon); err == nil && !bytes.Equal(spec, canon) {
		forms = append([][]byte{spec}, forms...)
	}
	return forms
}

// verifySignatures checks a card's signatures: false when it has none; an
// error when it has some and none verifies. A signature's key is fetched
// from its header's jku, which must be on the agent endpoint's host.
func (h *Handlers) verifySignatures(ctx context.Context, card map[string]json.RawMessage, canon []byte, endpoint string) (bool, error) {
	raw, ok := card["signatures"]
	if !ok || string(raw) == "null" {
		return false, nil
	}
	var sigs []struct {
		Protected string `json:"protected"`
		Signature string `json:"signature"`
	}
	if err := json.Unmarshal(raw, &sigs); err != nil || len(sigs) == 0 {
		return false, apperr.Invalid("card", "signatures must be a list of JWS signatures")
	}
	ep, _ := url.Parse(endpoint)
	for _, s := range sigs {
		hdrJSON, err := base64.RawURLEncoding.DecodeString(s.Protected)
		if err != nil {
			continue
		}
		var hdr struct {
			KID string `json:"kid"`
			JKU string `json:"jku"`
		}
		if json.Unmarshal(hdrJSON, &hdr) != nil || hdr.JKU == "" {
			continue
		}
		if u, err := url.Parse(hdr.JKU); err != nil || ep == nil || u.Hostname() != ep.Hostname() {
			continue
		}
		set, err := h.jwks(ctx, hdr.JKU)
		if err != nil {
			continue
		}
		for _, payload := range signedForms(canon) {
			jws, err := jose.ParseDetached(s.Protected+".."+s.Signature, payload, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA})
			if err != nil {
				continue
			}
			for _, k := range set.Key(hdr.KID) {
				if _, err := jws.Verify(k); err == nil {
					return true, nil
				}
			}
		}
	}
	return false, apperr.Invalid("card", "the card's signature does not verify (keys are taken from the jku of the agent's own host)")
}

func (h *Handlers) get(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := h.cfg.Fetch.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d", u, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<10))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func (h *Handlers) jwks(ctx context.Context, u string) (*jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	return &set, h.get(ctx, u, &set)
}

// ImportCard fetches an agent's own card from its endpoint, verifies its
// signatures when it has any, and pins it: the first import is the
// approved card; a later one that differs is kept beside it and the
// agent's a2a_call entitlement is quarantined until an admin approves it
// (calls are refused meanwhile). The caller needs manage on the agent.
func (h *Handlers) ImportCard(ctx context.Context, id uuid.UUID) (*CardStatus, error) {
	n, err := h.cfg.NHIs.Authorize(ctx, id, "manage")
	if err != nil {
		return nil, err
	}
	if n.Kind != nhi.KindAgent || n.Profile.Agent == nil || n.Profile.Agent.A2AEndpoint == "" {
		return nil, apperr.Invalid("id", "not an agent with an A2A endpoint")
	}
	endpoint := n.Profile.Agent.A2AEndpoint
	var card map[string]json.RawMessage
	if err := h.get(ctx, endpoint+"/.well-known/agent-card.json", &card); err != nil {
		return nil, apperr.Wrap(err, apperr.KindUnavailable, "the agent's card could not be fetched")
	}
	canon, hash, err := cardDigest(card)
	if err != nil {
		return nil, apperr.Invalid("card", "not a JSON object")
	}
	signed, err := h.verifySignatures(ctx, card, canon, endpoint)
	if err != nil {
		return nil, err
	}
	now := store.Now()
	quarantine := false
	var ent uuid.UUID
	err = h.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		pinned, err := lockCard(ctx, tx, id)
		switch {
		case store.NoRows(err):
			err = insertCard(ctx, tx, id, canon, hash, signed, now)
		case err != nil:
			return err
		default:
			quarantine = pinned != hash
			err = updateCard(ctx, tx, id, canon, hash, signed, now)
		}
		if err != nil {
			return err
		}
		return events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: cardEvent, ID: id.String()}, nil)
	})
	if err != nil {
		return nil, err
	}
	action := "a2a.card.import"
	if quarantine {
		action = "a2a.card.quarantine"
		if ent, err = h.cfg.Gov.AgentCallEntitlement(ctx, id); err != nil {
			return nil, err
		}
		if ent != uuid.Nil {
			// As the system: the owner who imports need not be a governance admin.
			tenantID, _ := store.TenantFrom(ctx)
			sys := principal.With(ctx, &principal.Principal{TenantID: tenantID, Kind: principal.KindBootstrap, SubjectID: "system",
				AdminRoles: []string{principal.RoleSuperAdmin}})
			q := governance.Quarantined
			if _, err := h.cfg.Gov.UpdateEntitlement(sys, ent, governance.EntitlementInput{ApprovalState: &q}, 0); err != nil {
				return nil, err
			}
		}
	}
	st, err := h.CardStatus(ctx, id)
	if err != nil {
		return nil, err
	}
	return st, audit.RecordChange(ctx, h.cfg.Audit, action, "nhi", id.String(), map[string]any{"hash": hash, "signed": signed, "changes": st.Changes})
}

// CardStatus returns the pinned and latest cards of an agent.
func (h *Handlers) CardStatus(ctx context.Context, id uuid.UUID) (*CardStatus, error) {
	if _, err := h.cfg.NHIs.Authorize(ctx, id, "use"); err != nil {
		return nil, err
	}
	st := &CardStatus{NHIID: id}
	var latest, pinned string
	err := h.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		latest, pinned, err = cardOf(ctx, tx, id, st)
		return err
	})
	if store.NoRows(err) {
		return nil, apperr.NotFound("imported card")
	}
	if err != nil {
		return nil, err
	}
	st.Latest, st.Changes = json.RawMessage(latest), []string{}
	if pinned != "" {
		st.Pinned = json.RawMessage(pinned)
	}
	var a, b map[string]json.RawMessage
	_ = json.Unmarshal([]byte(pinned), &a)
	_ = json.Unmarshal([]byte(latest), &b)
	for k, v := range b {
		if string(a[k]) != string(v) {
			st.Changes = append(st.Changes, k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			st.Changes = append(st.Changes, k)
		}
	}
	sort.Strings(st.Changes)
	return st, nil
}

// OnEntitlementEvent pins an agent's latest imported card when an admin
// approves its a2a_call entitlement (outbox handler; idempotent).
func (h *Handlers) OnEntitlementEvent(ctx context.Context, ev events.Event) error {
	id, err := uuid.Parse(ev.SubjectID)
	if err != nil {
		return nil
	}
	ctx = store.WithTenant(ctx, ev.TenantID)
	agent, err := h.cfg.Gov.ApprovedCallAgent(ctx, id)
	if err != nil || agent == uuid.Nil {
		return err
	}
	return h.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		pinned, err := pinLatestCard(ctx, tx, agent)
		if err != nil || !pinned {
			return err
		}
		// The agent's card changed: caches drop it.
		return events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: cardEvent, ID: agent.String()}, nil)
	})
}
