// Package federation brokers sign-ins through upstream identity
// providers: each tenant registers providers by stable key (generic
// OpenID Connect, or a preset for Google, Microsoft Entra ID or GitHub),
// and a person signs in there instead of with a password. The upstream's
// answer is verified here (OIDC: discovery, code + PKCE, state, nonce,
// the ID token's signature, algorithm, issuer, audience, azp, expiry and
// at_hash), its subject found in the directory's external identities
// (user_links), and the person signed in to xavyo's own session. A
// person the tenant does not know yet is created just in time when the
// provider allows it; an existing account is linked only after its owner
// proves it (signs in to it), never because an email address matches.
package federation

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/egress"
	"github.com/xavyo/xavyo/internal/seal"
	"github.com/xavyo/xavyo/internal/secretref"
	"github.com/xavyo/xavyo/internal/store"
)

// Provider kinds.
const (
	KindOIDC   = "oidc"
	KindGitHub = "github"
	KindSAML   = "saml"
)

// Presets: well-known providers whose endpoints and quirks xavyo knows.
const (
	PresetGoogle    = "google"
	PresetMicrosoft = "microsoft"
	PresetGitHub    = "github"
)

// Provider is an upstream identity provider of a tenant.
type Provider struct {
	ID      uuid.UUID `json:"id"`
	Key     string    `json:"key" doc:"stable, unique in the tenant; names the provider in its URLs"`
	Name    string    `json:"name" doc:"shown on the sign-in page (Continue with …)"`
	Kind    string    `json:"kind" doc:"oidc, github or saml"`
	Enabled bool      `json:"enabled"`
	// Settings (promoted: p.Issuer is p.Settings.Issuer).
	Settings `json:"settings"`
	// ClientSecretSet says a client secret is held (sealed, never shown).
	ClientSecretSet bool `json:"client_secret_set"`
	// ClientSecretRef is the reference the secret is read from, when it
	// is one (env:, file:, vault:).
	ClientSecretRef string    `json:"client_secret_ref,omitempty" doc:"where the client secret is read from, when given as a reference"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
	Version         int64     `json:"version"`

	secret string // a reference, or sealed:<base64>
}

// Settings are a provider's settings, kept as JSON.
type Settings struct {
	Preset string `json:"preset,omitempty" doc:"google, microsoft, github or apple: the provider's known endpoints and claims"`
	// Issuer is the OIDC issuer (discovery at issuer/.well-known/openid-configuration).
	Issuer   string `json:"issuer,omitempty" doc:"OIDC issuer URL (presets fill it; microsoft: https://login.microsoftonline.com/<tenant id or organizations>/v2.0)"`
	ClientID string `json:"client_id,omitempty" doc:"oidc and github: the client id xavyo has at the provider"`
	// Metadata is a SAML identity provider's metadata (an
	// EntityDescriptor with an IDPSSODescriptor).
	Metadata string `json:"metadata,omitempty" doc:"saml: the identity provider's metadata (XML); xavyo's own, as its service provider, is at /t/{slug}/federation/{key}/metadata"`
	// MetadataURL is where the metadata is fetched from (at each save,
	// and daily).
	MetadataURL string `json:"metadata_url,omitempty" doc:"saml: or where to fetch the metadata (http(s), through the egress checks; fetched again daily)"`
	// MetadataFetchedAt is when MetadataURL was last fetched.
	MetadataFetchedAt *time.Time `json:"metadata_fetched_at,omitempty" doc:"saml: when metadata_url was last fetched (set by xavyo)"`
	// SubjectAttribute names the SAML attribute identifying the person
	// (default: the NameID, which must then be persistent or an address).
	SubjectAttribute string `json:"subject_attribute,omitempty" doc:"saml: the attribute whose value identifies the person (default the NameID)"`
	// AuthMethod is how xavyo authenticates at the token endpoint.
	AuthMethod string   `json:"token_auth_method,omitempty" doc:"client_secret_basic (default) or client_secret_post"`
	Scopes     []string `json:"scopes,omitempty" doc:"scopes asked for (default openid email profile; github: read:user user:email)"`
	Algorithms []string `json:"id_token_algorithms,omitempty" doc:"ID token signature algorithms accepted (default RS256, PS256, ES256); none is never accepted"`
	// TeamID and KeyID name an Apple developer team and its key (the
	// client_secret is then that key, PEM).
	TeamID string `json:"team_id,omitempty" doc:"apple: the developer team id (the client_secret is the team's private key, the .p8 file)"`
	KeyID  string `json:"key_id,omitempty" doc:"apple: the id of that key"`
	// BaseURL is GitHub's web address (GitHub Enterprise Server: its own).
	BaseURL string `json:"base_url,omitempty" doc:"github: https://github.com (default) or a GitHub Enterprise Server URL"`
	// Userinfo: claims are completed from the userinfo endpoint.
	Userinfo bool `json:"userinfo,omitempty" doc:"complete the ID token's claims from the userinfo endpoint"`
	// AllowedTenants are the Entra ID tenants a multi-tenant Microsoft
	// provider accepts (tid claim).
	AllowedTenants []string `json:"allowed_tenants,omitempty" doc:"microsoft with organizations/common: the Entra tenant ids (tid) accepted (required)"`
	// HostedDomains are the Google Workspace domains accepted (hd claim).
	HostedDomains []string `json:"hosted_domains,omitempty" doc:"google: only accounts of these Workspace domains (hd claim)"`
	// Domains route people to this provider by the domain of the address
	// they type on the sign-in page (or a flow's login_hint).
	Domains []string `json:"domains,omitempty" doc:"email domains whose people sign in here (the sign-in page sends them)"`
	// Mapping maps user fields to templates over the upstream's claims.
	Mapping map[string]string `json:"mapping,omitempty" doc:"user field → template over claims, e.g. display_name: '{given_name} {family_name}'; fields: email, given_name, family_name, display_name, username, attributes.<key>"`
	// GroupsClaim names the claim listing the person's upstream groups.
	GroupsClaim   string         `json:"groups_claim,omitempty" doc:"the claim with the person's upstream groups (default groups)"`
	GroupMappings []GroupMapping `json:"group_mappings,omitempty" doc:"upstream group → xavyo group; memberships of these groups follow the upstream at each sign-in of a user this provider created"`
	// JIT creates a person the tenant does not know at their first
	// sign-in (with a verified email address).
	JIT bool `json:"jit,omitempty" doc:"create people at their first sign-in"`
	// TrustEmail treats the upstream's addresses as verified when it
	// says nothing of them (an enterprise directory whose addresses
	// admins assign).
	TrustEmail bool `json:"trust_email,omitempty" doc:"take addresses as verified when the provider sends no email_verified"`
	// TrustMFA counts an upstream sign-in that says it used several
	// factors (amr mfa) as both of the tenant's.
	TrustMFA bool `json:"trust_mfa,omitempty" doc:"an upstream sign-in with amr mfa satisfies the tenant's second-factor policy"`
	// IDJAG accepts the provider's identity assertion authorization
	// grants (ID-JAG) at the tenant's token endpoint.
	IDJAG bool `json:"id_jag,omitempty" doc:"oidc: accept this provider's identity assertion grants (ID-JAG, typ oauth-id-jag+jwt) at the token endpoint, for the person they assert"`
	// DisableLocalPasswords: people linked to this provider sign in only
	// through it.
	DisableLocalPasswords bool `json:"disable_local_passwords,omitempty" doc:"people linked to this provider cannot sign in with a password"`
}

// GroupMapping maps an upstream group to a xavyo group.
type GroupMapping struct {
	Upstream string    `json:"upstream" doc:"the group's value in the groups claim"`
	GroupID  uuid.UUID `json:"group_id"`
}

// Input registers or changes a provider.
type Input struct {
	Key     string `json:"key,omitempty" doc:"a-z, 0-9 and . _ -; required on creation, never changes"`
	Name    string `json:"name,omitempty"`
	Kind    string `json:"kind,omitempty" doc:"oidc (default), github or saml; a preset sets it"`
	Enabled *bool  `json:"enabled,omitempty" doc:"default true"`
	// ClientSecret is the secret or a reference to it (env:NAME,
	// file:/path[#key], vault:…); a plain value is sealed with the KEK.
	ClientSecret *string `json:"client_secret,omitempty" doc:"the client secret, or a reference (env:NAME, file:/path[#json.key]); a plain value is sealed and never shown again"`
	// Settings replaces all settings when given.
	Settings *Settings `json:"settings,omitempty" doc:"replaces all settings"`
}

// Service keeps the tenants' identity providers and signs people in
// through them.
type Service struct {
	DB        *store.DB
	Sealer    *seal.Sealer
	Audit     audit.Recorder
	Directory *directory.Service
	// Client reaches the providers (the egress-checked client).
	Client *http.Client
	// Groups says whether a group exists in the tenant of ctx.
	Groups func(ctx context.Context, id uuid.UUID) error
	// SAMLKey is the tenant's SAML key and certificate (xavyo signs its
	// requests and is sent encrypted assertions with it).
	SAMLKey func(ctx context.Context) (*rsa.PrivateKey, *x509.Certificate, error)
	// Replay records a SAML message id as used until it expires (apperr
	// already exists: it was).
	Replay func(ctx context.Context, id string, until time.Time) error
	// EndSession ends an SSO session (the upstream signed its person out).
	EndSession func(ctx context.Context, session, user uuid.UUID) error
	Now        func() time.Time

	discovered sync.Map // provider id + version → *upstream
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC().Truncate(time.Microsecond)
	}
	return store.Now()
}

var (
	keyRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	domainRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)
	fieldRE  = regexp.MustCompile(`^(email|given_name|family_name|display_name|username|attributes\.[A-Za-z0-9_.-]{1,64})$`)
	claimRE  = regexp.MustCompile(`^[A-Za-z0-9_:./-]{1,128}$`)
)

// The algorithms an ID token may be signed with (never none, never HMAC
// with the client secret: xavyo verifies with the provider's keys).
var algorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// validURL checks an http(s) URL.
func validURL(field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(raw) > 1024 || u.RawQuery != "" || u.Fragment != "" {
		return apperr.Invalid(field, "an absolute http(s) URL without query or fragment")
	}
	return nil
}

// normalize fills a provider's defaults from its preset and checks it.
func (p *Provider) normalize() error {
	st := &p.Settings
	switch st.Preset {
	case "":
	case PresetGoogle:
		p.Kind = KindOIDC
		if st.Issuer == "" {
			st.Issuer = "https://accounts.google.com"
		}
	case PresetMicrosoft:
		p.Kind = KindOIDC
		if st.Issuer == "" {
			st.Issuer = "https://login.microsoftonline.com/organizations/v2.0"
		}
		if st.GroupsClaim == "" {
			st.GroupsClaim = "groups"
		}
	case PresetGitHub:
		p.Kind = KindGitHub
	case PresetApple:
		p.Kind = KindOIDC
		if st.Issuer == "" {
			st.Issuer = "https://appleid.apple.com"
		}
		if len(st.Scopes) == 0 {
			st.Scopes = []string{"openid", "name", "email"}
		}
		if st.AuthMethod == "" {
			st.AuthMethod = "client_secret_post"
		}
		if !appleIDRE.MatchString(st.TeamID) || !appleIDRE.MatchString(st.KeyID) {
			return apperr.Invalid("settings.team_id", "apple: team_id and key_id (10 characters each, A-Z and 0-9) are required")
		}
	default:
		return apperr.Invalid("settings.preset", "google, microsoft, github or apple")
	}
	if st.Preset != PresetApple && (st.TeamID != "" || st.KeyID != "") {
		return apperr.Invalid("settings.team_id", "only for apple")
	}
	if p.Kind == "" {
		p.Kind = KindOIDC
	}
	switch p.Kind {
	case KindOIDC:
		if err := validURL("settings.issuer", st.Issuer); err != nil {
			return err
		}
		if st.BaseURL != "" {
			return apperr.Invalid("settings.base_url", "only for github")
		}
		if len(st.Scopes) == 0 {
			st.Scopes = []string{"openid", "email", "profile"}
		}
		if !slices.Contains(st.Scopes, "openid") {
			return apperr.Invalid("settings.scopes", "an OpenID Connect provider is asked for openid")
		}
	case KindGitHub:
		if st.Issuer != "" {
			return apperr.Invalid("settings.issuer", "github has no issuer: give base_url for GitHub Enterprise Server")
		}
		if st.BaseURL == "" {
			st.BaseURL = "https://github.com"
		}
		st.BaseURL = strings.TrimSuffix(st.BaseURL, "/")
		if err := validURL("settings.base_url", st.BaseURL); err != nil {
			return err
		}
		if len(st.Scopes) == 0 {
			st.Scopes = []string{"read:user", "user:email"}
		}
		if st.AuthMethod == "" {
			st.AuthMethod = "client_secret_post" // as GitHub documents it
		}
	case KindSAML:
		if st.MetadataURL == "" {
			st.MetadataFetchedAt = nil
		}
		if st.Issuer != "" || st.BaseURL != "" || st.ClientID != "" || len(st.Scopes) > 0 {
			return apperr.Invalid("settings", "a SAML provider is described by its metadata (no issuer, base_url, client_id or scopes)")
		}
		if _, err := ParseIDPMetadata(st.Metadata); err != nil {
			return err
		}
		if st.SubjectAttribute != "" && (len(st.SubjectAttribute) > 256 || strings.ContainsAny(st.SubjectAttribute, "<>&\"'")) {
			return apperr.Invalid("settings.subject_attribute", "an attribute name of at most 256 characters, without markup")
		}
		if st.GroupsClaim == "" {
			st.GroupsClaim = "groups"
		}
	default:
		return apperr.Invalid("kind", "oidc, github or saml")
	}
	if p.Kind != KindSAML && (st.Metadata != "" || st.MetadataURL != "" || st.SubjectAttribute != "") {
		return apperr.Invalid("settings.metadata", "only for saml")
	}
	if st.IDJAG && p.Kind != KindOIDC {
		return apperr.Invalid("settings.id_jag", "only an OpenID Connect provider issues ID-JAGs")
	}
	if p.Kind != KindSAML && (st.ClientID == "" || len(st.ClientID) > 256) {
		return apperr.Invalid("settings.client_id", "the client id xavyo has at the provider is required (at most 256 characters)")
	}
	switch st.AuthMethod {
	case "", "client_secret_basic", "client_secret_post":
	default:
		return apperr.Invalid("settings.token_auth_method", "client_secret_basic or client_secret_post")
	}
	if len(st.Scopes) > 20 {
		return apperr.Invalid("settings.scopes", "at most 20")
	}
	for _, sc := range st.Scopes {
		if sc == "" || len(sc) > 200 || strings.ContainsAny(sc, " \"\\") {
			return apperr.Invalid("settings.scopes", "scope tokens without spaces or quotes")
		}
	}
	if len(st.Algorithms) == 0 && p.Kind != KindSAML {
		st.Algorithms = []string{"RS256", "PS256", "ES256"}
	}
	for _, a := range st.Algorithms {
		if !slices.Contains(algorithms, a) {
			return apperr.Invalid("settings.id_token_algorithms", "among "+strings.Join(algorithms, ", ")+" (none and HS* are never accepted)")
		}
	}
	if st.Preset == PresetMicrosoft && microsoftTemplate(st.Issuer) != "" && len(st.AllowedTenants) == 0 {
		return apperr.Invalid("settings.allowed_tenants", "a multi-tenant Microsoft provider (organizations or common) needs the Entra tenant ids it accepts")
	}
	for _, list := range [][]string{st.AllowedTenants, st.HostedDomains, st.Domains} {
		if len(list) > 100 {
			return apperr.Invalid("settings", "at most 100 tenants, hosted domains or domains")
		}
	}
	for i, d := range st.Domains {
		st.Domains[i] = strings.ToLower(strings.TrimSpace(d))
		if !domainRE.MatchString(st.Domains[i]) {
			return apperr.Invalid("settings.domains", "domain names such as example.com")
		}
	}
	for i, d := range st.HostedDomains {
		st.HostedDomains[i] = strings.ToLower(strings.TrimSpace(d))
		if !domainRE.MatchString(st.HostedDomains[i]) {
			return apperr.Invalid("settings.hosted_domains", "domain names such as example.com")
		}
	}
	for _, tid := range st.AllowedTenants {
		if _, err := uuid.Parse(tid); err != nil {
			return apperr.Invalid("settings.allowed_tenants", "Entra tenant ids (UUIDs)")
		}
	}
	if len(st.Mapping) > 50 {
		return apperr.Invalid("settings.mapping", "at most 50 fields")
	}
	for f, tmpl := range st.Mapping {
		if !fieldRE.MatchString(f) {
			return apperr.Invalid("settings.mapping", "fields: email, given_name, family_name, display_name, username, attributes.<key>")
		}
		if err := checkTemplate(tmpl); err != nil {
			return apperr.Invalid("settings.mapping", f+": "+err.Error())
		}
	}
	if st.GroupsClaim != "" && !claimRE.MatchString(st.GroupsClaim) {
		return apperr.Invalid("settings.groups_claim", "a claim name")
	}
	if len(st.GroupMappings) > 200 {
		return apperr.Invalid("settings.group_mappings", "at most 200")
	}
	for _, g := range st.GroupMappings {
		if g.Upstream == "" || len(g.Upstream) > 256 || g.GroupID == uuid.Nil {
			return apperr.Invalid("settings.group_mappings", "each maps an upstream value (1 to 256 characters) to a group_id")
		}
	}
	return nil
}

// Source is the directory source of a provider's identities.
func (p *Provider) Source() string { return "idp:" + p.Key }

// Routes reports whether people of an email address sign in here.
func (p *Provider) Routes(email string) bool {
	_, domain, ok := strings.Cut(strings.ToLower(strings.TrimSpace(email)), "@")
	return ok && p.Enabled && slices.Contains(p.Domains, domain)
}

func secretAAD(tenant, id uuid.UUID) []byte {
	return []byte("idp-client-secret|" + tenant.String() + "|" + id.String())
}

// setSecret keeps a client secret: a reference as it is, a plain value
// sealed.
func (s *Service) setSecret(ctx context.Context, p *Provider, v string) error {
	tid, _ := store.TenantFrom(ctx)
	switch {
	case v == "":
		p.secret, p.ClientSecretRef = "", ""
	case strings.HasPrefix(v, secretref.Sealed):
		return apperr.Invalid("client_secret", "give the secret itself or a reference to where it lives (env:, file:)")
	case secretref.IsReference(v):
		if len(v) > 1024 {
			return apperr.Invalid("client_secret", "a reference of at most 1024 characters")
		}
		p.secret, p.ClientSecretRef = v, v
	default:
		if len(v) > 4096 {
			return apperr.Invalid("client_secret", "at most 4096 characters")
		}
		p.secret = secretref.Seal(s.Sealer, v, secretAAD(tid, p.ID))
		p.ClientSecretRef = ""
	}
	p.ClientSecretSet = p.secret != ""
	return nil
}

// clientSecret resolves a provider's client secret ("" : none).
func (s *Service) clientSecret(ctx context.Context, p *Provider) (string, error) {
	if p.secret == "" {
		return "", nil
	}
	tid, _ := store.TenantFrom(ctx)
	v, err := secretref.Resolver{Sealer: s.Sealer}.Resolve(p.secret, secretAAD(tid, p.ID))
	if err != nil {
		return "", apperr.New(apperr.KindUnavailable, "the identity provider's client secret cannot be read: %v", err)
	}
	if p.Preset == PresetApple {
		return s.appleSecret(p, v)
	}
	return v, nil
}

// checkGroups checks that a provider's mapped groups exist.
func (s *Service) checkGroups(ctx context.Context, p *Provider) error {
	for _, g := range p.GroupMappings {
		if err := s.Groups(ctx, g.GroupID); err != nil {
			if apperr.KindOf(err) == apperr.KindNotFound {
				return apperr.Invalid("settings.group_mappings", "no group "+g.GroupID.String()+" in this tenant")
			}
			return err
		}
	}
	return nil
}

func (in *Input) apply(ctx context.Context, s *Service, p *Provider) error {
	if in.Name != "" {
		if len(in.Name) > 100 {
			return apperr.Invalid("name", "at most 100 characters")
		}
		p.Name = in.Name
	}
	if in.Kind != "" {
		p.Kind = in.Kind
	}
	if in.Enabled != nil {
		p.Enabled = *in.Enabled
	}
	if in.Settings != nil {
		st := *in.Settings
		st.Scopes, st.Algorithms = slices.Clone(st.Scopes), slices.Clone(st.Algorithms)
		p.Settings = st
	}
	if err := p.normalize(); err != nil {
		return err
	}
	if in.ClientSecret != nil {
		if err := s.setSecret(ctx, p, *in.ClientSecret); err != nil {
			return err
		}
	}
	return s.checkGroups(ctx, p)
}

// fetchMetadata fills a SAML provider's metadata from its URL when the
// input gives one (before any transaction: it is a call out).
func (s *Service) fetchMetadata(ctx context.Context, in *Input) error {
	if in.Settings == nil || in.Settings.MetadataURL == "" {
		return nil
	}
	if in.Settings.Metadata != "" {
		return apperr.Invalid("settings.metadata", "give metadata or metadata_url, not both")
	}
	body, err := egress.FetchDocument(ctx, s.Client, in.Settings.MetadataURL, "application/samlmetadata+xml, application/xml, text/xml",
		"settings.metadata_url", maxMetadata)
	if err != nil {
		return err
	}
	now := s.now()
	in.Settings.Metadata, in.Settings.MetadataFetchedAt = string(body), &now
	return nil
}

// Create registers a provider.
func (s *Service) Create(ctx context.Context, in Input) (*Provider, error) {
	if !keyRE.MatchString(in.Key) {
		return nil, apperr.Invalid("key", "1 to 63 characters of a-z, 0-9 and . _ -, starting with a letter or digit")
	}
	if in.Settings == nil {
		return nil, apperr.Invalid("settings", "required (at least client_id, and issuer or a preset)")
	}
	if err := s.fetchMetadata(ctx, &in); err != nil {
		return nil, err
	}
	now := s.now()
	p := &Provider{ID: uuid.Must(uuid.NewV7()), Key: in.Key, Name: in.Key, Enabled: true, CreatedAt: now, UpdatedAt: now, Version: 1}
	if err := in.apply(ctx, s, p); err != nil {
		return nil, err
	}
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if err := insertProviderTx(ctx, tx, p); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.Audit, "idp.create", "identity_provider", p.ID.String(), map[string]string{"key": p.Key, "kind": p.Kind})
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Update changes a provider (its key never changes).
func (s *Service) Update(ctx context.Context, id uuid.UUID, in Input, ifVersion int64) (*Provider, error) {
	if in.Key != "" {
		return nil, apperr.Invalid("key", "cannot change")
	}
	if err := s.fetchMetadata(ctx, &in); err != nil {
		return nil, err
	}
	return s.update(ctx, id, in, ifVersion)
}

// update changes a provider with its metadata already fetched.
func (s *Service) update(ctx context.Context, id uuid.UUID, in Input, ifVersion int64) (*Provider, error) {
	var p *Provider
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var err error
		if p, err = providerTx(ctx, tx, "id", id.String(), true); err != nil {
			return err
		}
		if ifVersion != 0 && p.Version != ifVersion {
			return apperr.New(apperr.KindPreconditionFailed, "the identity provider changed since version %d", ifVersion)
		}
		if err := in.apply(ctx, s, p); err != nil {
			return err
		}
		p.UpdatedAt, p.Version = s.now(), p.Version+1
		if err := updateProviderTx(ctx, tx, p); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.Audit, "idp.update", "identity_provider", p.ID.String(), map[string]string{"key": p.Key})
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Refresh fetches a SAML provider's metadata again from its URL; a fetch
// that fails, or metadata of another entity, changes nothing.
func (s *Service) Refresh(ctx context.Context, id uuid.UUID) (*Provider, error) {
	cur, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if cur.Kind != KindSAML || cur.MetadataURL == "" {
		return nil, apperr.New(apperr.KindConflict, "this provider's metadata is not fetched from a URL")
	}
	st := cur.Settings
	st.Metadata = ""
	in := Input{Settings: &st}
	if err := s.fetchMetadata(ctx, &in); err != nil {
		return nil, err
	}
	was, _ := ParseIDPMetadata(cur.Metadata)
	now, err := ParseIDPMetadata(st.Metadata)
	if err != nil {
		return nil, err
	}
	if was != nil && now.EntityID != was.EntityID {
		return nil, apperr.Invalid("settings.metadata_url", "the metadata there is now of another entity ("+now.EntityID+"): register it anew")
	}
	return s.update(ctx, id, Input{Settings: &st}, cur.Version)
}

// RunRefresh fetches again, every interval, the metadata of SAML
// providers registered by URL and fetched more than a day ago.
func (s *Service) RunRefresh(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		var stale [][2]uuid.UUID
		err := s.DB.SystemRead(ctx, func(tx *store.Tx) error {
			var err error
			stale, err = samlProvidersTx(ctx, tx)
			return err
		})
		if err != nil && ctx.Err() == nil {
			slog.Default().Error("identity provider metadata refresh failed", "error", err)
		}
		for _, p := range stale {
			tctx := store.WithTenant(ctx, p[0])
			cur, err := s.Get(tctx, p[1])
			if err != nil || cur.MetadataURL == "" || (cur.MetadataFetchedAt != nil && s.now().Sub(*cur.MetadataFetchedAt) < 24*time.Hour) {
				continue
			}
			if _, err := s.Refresh(tctx, p[1]); err != nil && ctx.Err() == nil {
				slog.Default().Warn("identity provider metadata refresh failed", "tenant_id", p[0], "provider", p[1], "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Get reads a provider.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (*Provider, error) {
	return s.read(ctx, "id", id.String())
}

// ByKey reads the provider of a key in the tenant of ctx.
func (s *Service) ByKey(ctx context.Context, key string) (*Provider, error) {
	if !keyRE.MatchString(key) {
		return nil, apperr.NotFound("identity provider")
	}
	return s.read(ctx, "key", key)
}

func (s *Service) read(ctx context.Context, by, v string) (*Provider, error) {
	var p *Provider
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		p, err = providerTx(ctx, tx, by, v, false)
		return err
	})
	return p, err
}

// List lists the tenant's providers by key.
func (s *Service) List(ctx context.Context) ([]*Provider, error) {
	var out []*Provider
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		out, err = listProvidersTx(ctx, tx)
		return err
	})
	return out, err
}

// Delete removes a provider; the identities linked through it stay
// (their people sign in otherwise, or through a provider of the same key
// registered again).
func (s *Service) Delete(ctx context.Context, id uuid.UUID) error {
	return s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		ok, err := deleteProviderTx(ctx, tx, id)
		if err != nil {
			return err
		}
		if !ok {
			return apperr.NotFound("identity provider")
		}
		return audit.RecordChangeTx(ctx, tx, s.Audit, "idp.delete", "identity_provider", id.String(), nil)
	})
}

// PasswordOff names the enabled provider, among those a user is linked
// to, that turned local passwords off ("" : none).
func (s *Service) PasswordOff(ctx context.Context, user uuid.UUID) (string, error) {
	links, err := s.Directory.Links(ctx, user)
	if err != nil || len(links) == 0 {
		return "", err
	}
	ps, err := s.List(ctx)
	if err != nil {
		return "", err
	}
	for _, l := range links {
		for _, p := range ps {
			if p.Enabled && p.DisableLocalPasswords && l.Source == p.Source() {
				return p.Key, nil
			}
		}
	}
	return "", nil
}

// Button is a provider as the sign-in page offers it.
type Button struct {
	Key, Name string
}

// Buttons lists the tenant's enabled providers for the sign-in page, and
// whether any routes people by their email domain.
func (s *Service) Buttons(ctx context.Context) ([]Button, bool, error) {
	ps, err := s.List(ctx)
	if err != nil {
		return nil, false, err
	}
	var out []Button
	routed := false
	for _, p := range ps {
		if p.Enabled {
			out = append(out, Button{Key: p.Key, Name: p.Name})
			routed = routed || len(p.Domains) > 0
		}
	}
	return out, routed, nil
}

// Route returns the key of the enabled provider whose domains hold an
// email address ("" : none).
func (s *Service) Route(ctx context.Context, email string) (string, error) {
	if !strings.Contains(email, "@") {
		return "", nil
	}
	ps, err := s.List(ctx)
	if err != nil {
		return "", err
	}
	for _, p := range ps {
		if p.Routes(email) {
			return p.Key, nil
		}
	}
	return "", nil
}

func marshalSettings(st Settings) string {
	b, _ := json.Marshal(st)
	return string(b)
}
