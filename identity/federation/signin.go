package federation

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/store"
)

// Templates: a user field's value is a template over the upstream's
// claims, literal text with {claim} or {claim.member} placeholders, e.g.
// "{given_name} {family_name}". A missing claim is empty; a list is its
// values joined by ", ".

// defaultMapping is used for the fields a provider does not map.
var defaultMapping = map[string]string{"email": "{email}", "given_name": "{given_name}", "family_name": "{family_name}", "display_name": "{name}"}

func checkTemplate(t string) error {
	if len(t) > 256 {
		return errors.New("a template of at most 256 characters")
	}
	rest := t
	for {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			return nil
		}
		if rest[i] == '}' {
			return errors.New("a } without its {")
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return errors.New("a { without its }")
		}
		if !claimRE.MatchString(rest[i+1 : i+j]) {
			return errors.New("{" + rest[i+1:i+j] + "} is not a claim name")
		}
		rest = rest[i+j+1:]
	}
}

// render fills a template from claims.
func render(t string, claims map[string]any) string {
	var b strings.Builder
	rest := t
	for {
		i := strings.IndexByte(rest, '{')
		j := strings.IndexByte(rest, '}')
		if i < 0 || j < i {
			b.WriteString(rest)
			return strings.TrimSpace(b.String())
		}
		b.WriteString(rest[:i])
		b.WriteString(claimText(lookup(claims, rest[i+1:j])))
		rest = rest[j+1:]
	}
}

func lookup(claims map[string]any, path string) any {
	if v, ok := claims[path]; ok {
		return v
	}
	var cur any = claims
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

func claimText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		return x.String()
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			if s := claimText(e); s != "" {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, ", ")
	}
	return ""
}

// profile is what a provider's mapping makes of an identity.
type profile struct {
	fields        map[string]string
	attributes    map[string]string
	emailVerified bool
}

func (p *Provider) profileOf(id *Identity) profile {
	pr := profile{fields: map[string]string{}, attributes: map[string]string{}}
	for f, t := range defaultMapping {
		if _, ok := p.Mapping[f]; !ok {
			pr.fields[f] = render(t, id.Claims)
		}
	}
	for f, t := range p.Mapping {
		v := render(t, id.Claims)
		if k, ok := strings.CutPrefix(f, "attributes."); ok {
			if v != "" {
				pr.attributes[k] = v
			}
			continue
		}
		pr.fields[f] = v
	}
	switch v := id.Claims["email_verified"].(type) {
	case bool:
		pr.emailVerified = v
	case string:
		pr.emailVerified = v == "true" // some providers send a string
	case nil:
		pr.emailVerified = p.TrustEmail
	}
	return pr
}

// Outcome is where an upstream sign-in leads.
type Outcome struct {
	// User signed in (nil when LinkTo is set).
	User *directory.User
	// LinkTo is an existing account whose address the upstream gave: its
	// owner proves it (signs in to it) before it is linked.
	LinkTo *directory.User
	// Created: the user was created just now.
	Created bool
}

// ErrNoAccount answers an upstream identity the tenant does not know,
// where the provider creates nobody.
var ErrNoAccount = apperr.New(apperr.KindPermissionDenied, "there is no account here for this identity; ask an administrator to create one")

// ErrUnverifiedEmail answers a first sign-in whose address the provider
// did not verify: nobody is created with it.
var ErrUnverifiedEmail = apperr.New(apperr.KindPermissionDenied, "the identity provider did not give a verified email address; an account cannot be created with it")

// SignIn finds (or creates) the person of an upstream identity.
func (s *Service) SignIn(ctx context.Context, p *Provider, id *Identity) (*Outcome, error) {
	link, u, err := s.Directory.LinkedUser(ctx, p.Source(), id.Subject)
	if err != nil {
		return nil, err
	}
	pr := p.profileOf(id)
	if u != nil {
		if link.Managed {
			// Kept up to date from its provider (a user linked to an account
			// that existed before is never overwritten).
			if u, err = s.sync(ctx, p, u, pr, id); err != nil {
				return nil, err
			}
		}
		s.record(ctx, p, "federation.signin", u.ID, id, nil)
		return &Outcome{User: u}, nil
	}
	if email := pr.fields["email"]; email != "" {
		other, err := s.Directory.UserByEmail(ctx, email)
		if err != nil {
			return nil, err
		}
		if other != nil {
			s.record(ctx, p, "federation.link_required", other.ID, id, nil)
			return &Outcome{LinkTo: other}, nil
		}
	}
	if !p.JIT {
		s.record(ctx, p, "federation.signin", uuid.Nil, id, ErrNoAccount)
		return nil, ErrNoAccount
	}
	if pr.fields["email"] == "" || !pr.emailVerified {
		s.record(ctx, p, "federation.signin", uuid.Nil, id, ErrUnverifiedEmail)
		return nil, ErrUnverifiedEmail
	}
	in := directory.CreateUserInput{Email: pr.fields["email"], GivenName: pr.fields["given_name"], FamilyName: pr.fields["family_name"],
		DisplayName: pr.fields["display_name"]}
	if un := pr.fields["username"]; un != "" {
		in.Username = &un
	}
	if len(pr.attributes) > 0 {
		in.Attributes, _ = json.Marshal(pr.attributes)
	}
	u, _, err = s.Directory.CreateLinkedUser(ctx, in, p.Source(), id.Subject)
	if err != nil {
		return nil, err
	}
	if err := s.syncGroups(ctx, p, u.ID, id); err != nil {
		return nil, err
	}
	s.record(ctx, p, "federation.jit", u.ID, id, nil)
	return &Outcome{User: u, Created: true}, nil
}

// sync brings a user this provider created up to date: profile,
// attributes, and the memberships of the mapped groups.
func (s *Service) sync(ctx context.Context, p *Provider, u *directory.User, pr profile, id *Identity) (*directory.User, error) {
	var in directory.UpdateUserInput
	changed := false
	set := func(dst **string, cur, v string) {
		if v != cur {
			*dst, changed = &v, true
		}
	}
	if e := pr.fields["email"]; e != "" && pr.emailVerified && !strings.EqualFold(e, u.Email) {
		set(&in.Email, u.Email, e)
	}
	set(&in.GivenName, u.GivenName, pr.fields["given_name"])
	set(&in.FamilyName, u.FamilyName, pr.fields["family_name"])
	set(&in.DisplayName, u.DisplayName, pr.fields["display_name"])
	if un, ok := pr.fields["username"]; ok && un != "" && (u.Username == nil || *u.Username != un) {
		in.Username, changed = &un, true
	}
	if len(pr.attributes) > 0 {
		attrs := map[string]any{}
		_ = json.Unmarshal(u.Attributes, &attrs)
		differ := false
		for k, v := range pr.attributes {
			if attrs[k] != v {
				attrs[k], differ = v, true
			}
		}
		if differ {
			raw, _ := json.Marshal(attrs)
			msg := json.RawMessage(raw)
			in.Attributes, changed = &msg, true
		}
	}
	if changed {
		var err error
		if u, err = s.Directory.UpdateUser(ctx, u.ID, in, 0); err != nil {
			return nil, err
		}
	}
	return u, s.syncGroups(ctx, p, u.ID, id)
}

// syncGroups makes a user's memberships of the provider's mapped groups
// follow the upstream's groups claim.
func (s *Service) syncGroups(ctx context.Context, p *Provider, user uuid.UUID, id *Identity) error {
	if len(p.GroupMappings) == 0 {
		return nil
	}
	claim := p.GroupsClaim
	if claim == "" {
		claim = "groups"
	}
	upstream := map[string]bool{}
	for _, g := range list(lookup(id.Claims, claim)) {
		upstream[g] = true
	}
	want := map[uuid.UUID]bool{}
	for _, m := range p.GroupMappings {
		want[m.GroupID] = want[m.GroupID] || upstream[m.Upstream]
	}
	current, err := s.Directory.GroupsOfUser(ctx, user)
	if err != nil {
		return err
	}
	in := map[uuid.UUID]bool{}
	for _, g := range current {
		in[g.ID] = true
	}
	for g, should := range want {
		switch {
		case should && !in[g]:
			if _, _, err := s.Directory.AddMember(ctx, g, user); err != nil && apperr.KindOf(err) != apperr.KindNotFound {
				return err
			}
		case !should && in[g]:
			if err := s.Directory.RemoveMember(ctx, g, user); err != nil && apperr.KindOf(err) != apperr.KindNotFound {
				return err
			}
		}
	}
	return nil
}

// Link links an upstream identity to the account its owner just proved
// (signed in to).
func (s *Service) Link(ctx context.Context, p *Provider, user uuid.UUID, subject string) error {
	if _, err := s.Directory.LinkUser(ctx, user, p.Source(), subject); err != nil {
		return err
	}
	s.record(ctx, p, "federation.link", user, &Identity{Subject: subject}, nil)
	return nil
}

// record audits an upstream sign-in, naming the provider.
func (s *Service) record(ctx context.Context, p *Provider, action string, user uuid.UUID, id *Identity, failure error) {
	tid, _ := store.TenantFrom(ctx)
	e := audit.Entry{TenantID: tid, Action: action, Outcome: audit.OutcomeSuccess, ActorKind: "user", TargetKind: "user",
		Details: map[string]any{"identity_provider": p.Key, "subject": id.Subject, "amr": id.AMR, "acr": id.ACR}}
	if user != uuid.Nil {
		e.ActorID, e.TargetID = user.String(), user.String()
	}
	if failure != nil {
		e.Outcome = audit.OutcomeDenied
		e.Details.(map[string]any)["reason"] = apperr.PublicMessage(failure)
	}
	_ = s.Audit.AppendSync(ctx, e)
}

// PendingLink is an upstream identity waiting for its owner to prove the
// account it is linked to.
type PendingLink struct {
	Provider string    `json:"p"`
	Subject  string    `json:"s"`
	User     uuid.UUID `json:"u"`
	// Tx is the auth transaction the sign-in was for ("" : none).
	Tx string `json:"t,omitempty"`
}

func linkAAD(tenant uuid.UUID) []byte { return []byte("federation-pending-link|" + tenant.String()) }

// SealLink seals a pending link (it holds a transaction id).
func (s *Service) SealLink(ctx context.Context, l PendingLink) string {
	tid, _ := store.TenantFrom(ctx)
	raw, _ := json.Marshal(l)
	return base64.RawURLEncoding.EncodeToString(s.Sealer.Seal(raw, linkAAD(tid)))
}

// OpenLink opens a pending link SealLink sealed in the same tenant.
func (s *Service) OpenLink(ctx context.Context, sealed string) (*PendingLink, error) {
	tid, _ := store.TenantFrom(ctx)
	ct, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil {
		return nil, ErrAttempt
	}
	raw, err := s.Sealer.Open(ct, linkAAD(tid))
	if err != nil {
		return nil, ErrAttempt
	}
	var l PendingLink
	if json.Unmarshal(raw, &l) != nil {
		return nil, ErrAttempt
	}
	return &l, nil
}
