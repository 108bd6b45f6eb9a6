// Package a2a serves the Agent2Agent protocol on the agent plane: agent
// cards generated from each agent's NHI record and signed with the
// tenant's key, the gateway's own card, and the directory of the cards a
// caller may reach (docs/design/0000-architecture.md §6, §11 routes).
package a2a

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/gowebpki/jcs"
)

// ProtocolVersion is the A2A version the cards describe.
const ProtocolVersion = "1.0"

// Card is an A2A agent card (v1.0 member names).
type Card struct {
	Name                string                    `json:"name"`
	Description         string                    `json:"description"`
	Version             string                    `json:"version"`
	Provider            *Provider                 `json:"provider,omitempty"`
	SupportedInterfaces []Interface               `json:"supportedInterfaces"`
	Capabilities        Capabilities              `json:"capabilities"`
	DefaultInputModes   []string                  `json:"defaultInputModes"`
	DefaultOutputModes  []string                  `json:"defaultOutputModes"`
	Skills              []Skill                   `json:"skills"`
	SecuritySchemes     map[string]map[string]any `json:"securitySchemes,omitempty"`
	// SecurityRequirements: xavyo's own cards leave it out. Its normative
	// JSON (a2a.proto's map<string, StringList>: {"list": [...]}) is not
	// what every SDK reads (a2a-go reads bare lists), so a card with it
	// cannot be read by all; securitySchemes declare the ways in. Cards
	// read from agents may have it in either form.
	SecurityRequirements []Requirement `json:"securityRequirements,omitempty"`
	Signatures           []Signature   `json:"signatures,omitempty"`
}

// Provider is who runs the agent.
type Provider struct {
	Organization string `json:"organization"`
	URL          string `json:"url"`
}

// Interface is one way to reach the agent.
type Interface struct {
	URL             string `json:"url"`
	ProtocolBinding string `json:"protocolBinding" doc:"JSONRPC"`
	ProtocolVersion string `json:"protocolVersion"`
}

// Capabilities are the optional protocol features the agent supports.
type Capabilities struct {
	Streaming         bool `json:"streaming,omitempty"`
	PushNotifications bool `json:"pushNotifications,omitempty"`
	ExtendedAgentCard bool `json:"extendedAgentCard,omitempty"`
}

// Skill is one thing the agent can do.
type Skill struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Tags        []string `json:"tags"`
}

// Requirement is one acceptable set of security schemes with their scopes.
type Requirement struct {
	Schemes map[string]Scopes `json:"schemes"`
}

// Scopes are a security requirement's scopes: written as a2a.proto's
// StringList ({"list": [...]}), read in that form or as a bare list.
type Scopes []string

// MarshalJSON writes the normative form.
func (s Scopes) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		List []string `json:"list,omitempty"`
	}{s})
}

// UnmarshalJSON reads {"list": [...]} or [...].
func (s *Scopes) UnmarshalJSON(b []byte) error {
	var list []string
	if err := json.Unmarshal(b, &list); err == nil {
		*s = list
		return nil
	}
	var sl struct {
		List []string `json:"list"`
	}
	if err := json.Unmarshal(b, &sl); err != nil {
		return errors.New("a2a: scopes must be a list or {\"list\": [...]}")
	}
	*s = sl.List
	return nil
}

// Signature is a JWS over the card's RFC 8785 canonical form without its
// signatures, the payload detached.
type Signature struct {
	Protected string `json:"protected"`
	Signature string `json:"signature"`
}

// Canonical returns what a card's signature covers (A2A 1.0 §8.4.1): the
// card without its signatures, members holding default values left out —
// empty strings, nulls, and arrays and objects left empty, recursively —
// in RFC 8785 (JCS) form. Verifiers compute the same (the A2A JS SDK's
// verifyAgentCardSignature does).
func Canonical(c *Card) ([]byte, error) {
	unsigned := *c
	unsigned.Signatures = nil
	raw, err := json.Marshal(&unsigned)
	if err != nil {
		return nil, err
	}
	return canonicalJSON(raw)
}

// canonicalJSON is §8.4.1's canonical form of a JSON object.
func canonicalJSON(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	v = dropEmpty(v)
	if v == nil {
		v = map[string]any{}
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jcs.Transform(out)
}

// dropEmpty removes empty strings, nulls and empty arrays and objects
// (after their own members were removed); nil when v is itself empty.
func dropEmpty(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		if x == "" {
			return nil
		}
	case []any:
		out := make([]any, 0, len(x))
		for _, e := range x {
			if e = dropEmpty(e); e != nil {
				out = append(out, e)
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case map[string]any:
		for k, e := range x {
			if e = dropEmpty(e); e == nil {
				delete(x, k)
			} else {
				x[k] = e
			}
		}
		if len(x) == 0 {
			return nil
		}
	}
	return v
}

// Signer signs a card's canonical form for a tenant (detached JWS).
type Signer interface {
	SignDetached(ctx context.Context, tenant uuid.UUID, payload []byte, jku string) (protected, signature string, err error)
}

// sign adds the tenant's signature to a card.
func sign(ctx context.Context, s Signer, tenant uuid.UUID, jku string, c *Card) error {
	payload, err := Canonical(c)
	if err != nil {
		return fmt.Errorf("a2a: canonical card: %w", err)
	}
	p, sig, err := s.SignDetached(ctx, tenant, payload, jku)
	if err != nil {
		return err
	}
	c.Signatures = []Signature{{Protected: p, Signature: sig}}
	return nil
}

// agentRecord is what a card is made from: an agent NHI that serves A2A.
type agentRecord struct {
	id          uuid.UUID
	slug        string
	name        string
	description string
	version     int64
	skills      []string
	endpoint    string
	version03   bool  // the endpoint speaks A2A 0.3
	pinned      *Card // the agent's own card as approved, if imported
}

// urls are the public URLs a tenant's cards name.
type urls struct {
	agent  string // agent.public_url
	issuer string // {admin.public_url}/t/{slug}
	admin  string
	slug   string
}

func (u urls) agentEndpoint(agent string) string {
	return u.agent + "/t/" + u.slug + "/a2a/agents/" + agent
}

// cardFor builds an agent's card: its gateway endpoint, xavyo's OAuth
// issuer and mTLS as the ways in.
func cardFor(a *agentRecord, org string, u urls) *Card {
	c := &Card{Name: a.name, Description: a.description, Version: fmt.Sprint(a.version),
		Provider: &Provider{Organization: org, URL: u.issuer},
		SupportedInterfaces: []Interface{{URL: u.agentEndpoint(a.slug), ProtocolBinding: "JSONRPC", ProtocolVersion: ProtocolVersion},
			{URL: u.agentEndpoint(a.slug), ProtocolBinding: "HTTP+JSON", ProtocolVersion: ProtocolVersion}},
		Capabilities:      Capabilities{Streaming: true, ExtendedAgentCard: true},
		DefaultInputModes: []string{"text/plain"}, DefaultOutputModes: []string{"text/plain"}, Skills: []Skill{},
		SecuritySchemes: map[string]map[string]any{
			"xavyo_oauth": {"oauth2SecurityScheme": map[string]any{
				"description":       "an access token from xavyo for this endpoint (resource), scope a2a",
				"oauth2MetadataUrl": u.admin + "/.well-known/oauth-authorization-server/t/" + u.slug,
				"flows": map[string]any{"clientCredentials": map[string]any{"tokenUrl": u.issuer + "/token",
					"scopes": map[string]string{"a2a": "call agents through the gateway"}}}}},
			"xavyo_mtls": {"mtlsSecurityScheme": map[string]any{"description": "a client certificate issued by xavyo's CA to an NHI of this tenant"}},
		},
	}
	if a.version03 {
		// Requests pass to the agent as sent: its interface is the
		// version it speaks, and clients of 1.0 switch to 0.3 for it.
		// (The HTTP+JSON binding, made by xavyo, stays 1.0: translated.)
		c.SupportedInterfaces[0].ProtocolVersion = "0.3"
	}
	if c.Description == "" {
		c.Description = a.name
	}
	for _, s := range a.skills {
		c.Skills = append(c.Skills, Skill{ID: s, Name: s, Description: s, Tags: []string{s}})
	}
	if p := a.pinned; p != nil {
		// What the agent says of itself, as approved: its description,
		// skills, modes and capabilities; the name, the interfaces and the
		// ways in stay xavyo's.
		if p.Description != "" {
			c.Description = p.Description
		}
		if len(p.Skills) > 0 {
			c.Skills = slices.Clone(p.Skills)
		}
		if len(p.DefaultInputModes) > 0 {
			c.DefaultInputModes = slices.Clone(p.DefaultInputModes)
		}
		if len(p.DefaultOutputModes) > 0 {
			c.DefaultOutputModes = slices.Clone(p.DefaultOutputModes)
		}
		c.Capabilities.Streaming, c.Capabilities.PushNotifications = p.Capabilities.Streaming, p.Capabilities.PushNotifications
	}
	return c
}

// matches applies the directory's filters: a skill ID, a tag, and text in
// the name, description or skills (case-insensitive).
func (c *Card) matches(skill, tag, text string) bool {
	has := func(f func(Skill) bool) bool {
		for _, s := range c.Skills {
			if f(s) {
				return true
			}
		}
		return false
	}
	if skill != "" && !has(func(s Skill) bool { return strings.EqualFold(s.ID, skill) }) {
		return false
	}
	if tag != "" && !has(func(s Skill) bool {
		for _, t := range s.Tags {
			if strings.EqualFold(t, tag) {
				return true
			}
		}
		return false
	}) {
		return false
	}
	if text == "" {
		return true
	}
	text = strings.ToLower(text)
	return strings.Contains(strings.ToLower(c.Name), text) || strings.Contains(strings.ToLower(c.Description), text) ||
		has(func(s Skill) bool { return strings.Contains(strings.ToLower(s.Name+" "+s.Description), text) })
}
