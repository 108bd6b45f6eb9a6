// Package saml is each tenant's SAML 2.0 identity provider (crewjam/saml
// does the protocol): its signing key and certificate, and the registry of
// service providers it answers. A service provider is registered by a
// stable key with its metadata; access to it is an entitlement, decided by
// governance like any other, so only people entitled to it get an
// assertion.
package saml

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"encoding/xml"
	"log/slog"
	"math/big"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	crewjam "github.com/crewjam/saml"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/egress"
	"github.com/xavyo/xavyo/internal/seal"
	"github.com/xavyo/xavyo/internal/store"
)

// NameID formats a service provider may ask for.
const (
	NameIDEmail      = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
	NameIDPersistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
	NameIDUnspecfied = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
)

// ServiceProvider is a SAML service provider a tenant answers.
type ServiceProvider struct {
	ID       uuid.UUID `json:"id"`
	Key      string    `json:"key" doc:"stable, unique in the tenant"`
	Name     string    `json:"name"`
	EntityID string    `json:"entity_id" doc:"from the metadata"`
	// ACS are the assertion consumer service URLs of the metadata.
	ACS []string `json:"acs_urls" doc:"assertion consumer services of the metadata"`
	// EntitlementID guards access: only subjects holding it get an
	// assertion.
	EntitlementID         uuid.UUID          `json:"entitlement_id" doc:"only people holding this entitlement are answered"`
	NameIDFormat          string             `json:"nameid_format" doc:"emailAddress (default) or persistent (the user id)"`
	NameIDSource          string             `json:"nameid_source,omitempty" doc:"what the NameID carries: email (default for emailAddress), id (default for persistent) or username"`
	Attributes            []AttributeMapping `json:"attributes" doc:"the assertion's attributes (empty: email, names, username, uid as the SP's metadata asks)"`
	ClockSkewSeconds      int                `json:"clock_skew_seconds,omitempty" doc:"how old (or early) its requests' IssueInstant may be, in seconds (default 90, at most 600)"`
	RequireSignedRequests bool               `json:"require_signed_requests" doc:"its AuthnRequests must be signed with a key of its metadata"`
	LegacySHA1            bool               `json:"legacy_sha1" doc:"an old SP that only knows SHA-1: its SHA-1 signatures are accepted and xavyo signs for it with RSA-SHA1 (default false: SHA-1 is refused)"`
	// MetadataURL is where the metadata comes from, fetched again daily
	// ("" : given inline).
	MetadataURL string     `json:"metadata_url,omitempty" doc:"where the metadata is fetched from (daily, through the egress checks)"`
	RefreshedAt *time.Time `json:"refreshed_at,omitempty" doc:"when metadata_url was last fetched"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	Version     int64      `json:"version"`

	metadata string
}

// Input registers or changes a service provider.
type Input struct {
	Key                   string     `json:"key,omitempty" doc:"a-z, 0-9 and . _ : -; required on creation, never changes"`
	Name                  string     `json:"name,omitempty"`
	Metadata              string     `json:"metadata,omitempty" doc:"the SP's SAML metadata (an EntityDescriptor), XML"`
	MetadataURL           string     `json:"metadata_url,omitempty" doc:"or where to fetch it (http(s); fetched again daily); one of metadata and metadata_url"`
	EntitlementID         *uuid.UUID `json:"entitlement_id,omitempty" doc:"the entitlement that grants access to it (required on creation)"`
	NameIDFormat          string     `json:"nameid_format,omitempty" doc:"emailAddress (default) or persistent"`
	RequireSignedRequests *bool      `json:"require_signed_requests,omitempty"`
	LegacySHA1            *bool      `json:"legacy_sha1,omitempty"`
	NameIDSource          string     `json:"nameid_source,omitempty" doc:"email, id or username"`
	// Attributes replaces the attribute mappings when given.
	Attributes       *[]AttributeMapping `json:"attributes,omitempty" doc:"replaces the attribute mappings"`
	ClockSkewSeconds *int                `json:"clock_skew_seconds,omitempty" doc:"1 to 600 (0: the default, 90)"`
}

// AttributeMapping is one attribute of the assertions a service provider
// gets.
type AttributeMapping struct {
	Name       string `json:"name" doc:"the SAML attribute name, e.g. urn:oid:0.9.2342.19200300.100.1.3 or email"`
	NameFormat string `json:"name_format,omitempty" doc:"uri, basic or unspecified (default: uri for a URN name, else basic)"`
	Source     string `json:"source" doc:"email, given_name, family_name, display_name, username, id, groups (one value per group) or attributes.<key> (a custom attribute)"`
}

// MaxClockSkew bounds every service provider's clock_skew_seconds.
const MaxClockSkew = 600 * time.Second

var sourceRE = regexp.MustCompile(`^(email|given_name|family_name|display_name|username|id|groups|attributes\.[A-Za-z0-9_.-]{1,64})$`)

// Service keeps the identity providers' keys and service providers.
type Service struct {
	DB     *store.DB
	Sealer *seal.Sealer
	Audit  audit.Recorder
	// Entitlements says whether an entitlement exists in the tenant of ctx.
	Entitlements func(ctx context.Context, id uuid.UUID) error
	// Fetch fetches metadata by URL (the egress-checked client).
	Fetch *http.Client
	Now   func() time.Time

	keys sync.Map // key id → *Key (a key never changes)
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC().Truncate(time.Microsecond)
	}
	return store.Now()
}

var keyRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._:-]{0,127}$`)

// maxMetadata bounds a service provider's metadata.
const maxMetadata = 256 << 10

// ParseMetadata reads a service provider's metadata: one EntityDescriptor
// with an SPSSODescriptor and at least one assertion consumer service. A
// DTD (where entity expansion and external entities live) is refused.
func ParseMetadata(raw string) (*crewjam.EntityDescriptor, error) {
	if raw == "" || len(raw) > maxMetadata {
		return nil, apperr.Invalid("metadata", "the SP's metadata (XML, at most 256 KiB) is required")
	}
	if strings.Contains(raw, "<!DOCTYPE") || strings.Contains(raw, "<!ENTITY") {
		return nil, apperr.Invalid("metadata", "a DTD is not allowed in metadata")
	}
	var ed crewjam.EntityDescriptor
	dec := xml.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.Strict = true
	if err := dec.Decode(&ed); err != nil {
		return nil, apperr.Invalid("metadata", "not SAML metadata: "+err.Error())
	}
	if ed.EntityID == "" || len(ed.EntityID) > 1024 {
		return nil, apperr.Invalid("metadata", "the EntityDescriptor has no entityID")
	}
	n := 0
	for _, sp := range ed.SPSSODescriptors {
		n += len(sp.AssertionConsumerServices)
	}
	if n == 0 {
		return nil, apperr.Invalid("metadata", "no SPSSODescriptor with an AssertionConsumerService")
	}
	return &ed, nil
}

func acsOf(ed *crewjam.EntityDescriptor) []string {
	var out []string
	for _, sp := range ed.SPSSODescriptors {
		for _, a := range sp.AssertionConsumerServices {
			out = append(out, a.Location)
		}
	}
	return out
}

func (in *Input) apply(sp *ServiceProvider) error {
	if in.Name != "" {
		if len(in.Name) > 200 {
			return apperr.Invalid("name", "at most 200 characters")
		}
		sp.Name = in.Name
	}
	if in.Metadata != "" {
		ed, err := ParseMetadata(in.Metadata)
		if err != nil {
			return err
		}
		sp.metadata, sp.EntityID, sp.ACS = in.Metadata, ed.EntityID, acsOf(ed)
	}
	if in.EntitlementID != nil {
		sp.EntitlementID = *in.EntitlementID
	}
	switch in.NameIDFormat {
	case "":
	case "emailAddress", NameIDEmail:
		sp.NameIDFormat = NameIDEmail
	case "persistent", NameIDPersistent:
		sp.NameIDFormat = NameIDPersistent
	default:
		return apperr.Invalid("nameid_format", "emailAddress or persistent")
	}
	if in.RequireSignedRequests != nil {
		sp.RequireSignedRequests = *in.RequireSignedRequests
	}
	if in.LegacySHA1 != nil {
		sp.LegacySHA1 = *in.LegacySHA1
	}
	switch in.NameIDSource {
	case "":
	case "email", "id", "username":
		sp.NameIDSource = in.NameIDSource
	default:
		return apperr.Invalid("nameid_source", "email, id or username")
	}
	if in.Attributes != nil {
		if len(*in.Attributes) > 50 {
			return apperr.Invalid("attributes", "at most 50")
		}
		for _, a := range *in.Attributes {
			if a.Name == "" || len(a.Name) > 256 || strings.ContainsAny(a.Name, "<>&\"'") {
				return apperr.Invalid("attributes", "each needs a name of 1 to 256 characters, without markup")
			}
			if !sourceRE.MatchString(a.Source) {
				return apperr.Invalid("attributes", "source: email, given_name, family_name, display_name, username, id, groups or attributes.<key>")
			}
			switch a.NameFormat {
			case "", "uri", "basic", "unspecified":
			default:
				return apperr.Invalid("attributes", "name_format: uri, basic or unspecified")
			}
		}
		sp.Attributes = *in.Attributes
	}
	if in.ClockSkewSeconds != nil {
		if *in.ClockSkewSeconds < 0 || time.Duration(*in.ClockSkewSeconds)*time.Second > MaxClockSkew {
			return apperr.Invalid("clock_skew_seconds", "0 to 600")
		}
		sp.ClockSkewSeconds = *in.ClockSkewSeconds
	}
	return nil
}

// fetch gets metadata by URL, through the egress checks.
func (s *Service) fetch(ctx context.Context, raw string) (string, error) {
	b, err := egress.FetchDocument(ctx, s.Fetch, raw, "application/samlmetadata+xml, application/xml, text/xml", "metadata_url", maxMetadata)
	return string(b), err
}

// resolve fills an input's metadata from its URL, if it has one.
func (s *Service) resolve(ctx context.Context, in *Input) (bool, error) {
	if in.MetadataURL == "" {
		return false, nil
	}
	if in.Metadata != "" {
		return false, apperr.Invalid("metadata", "give metadata or metadata_url, not both")
	}
	md, err := s.fetch(ctx, in.MetadataURL)
	if err != nil {
		return false, err
	}
	in.Metadata = md
	return true, nil
}

// Create registers a service provider.
func (s *Service) Create(ctx context.Context, in Input) (*ServiceProvider, error) {
	if !keyRE.MatchString(in.Key) {
		return nil, apperr.Invalid("key", "must be 1 to 128 characters of a-z, 0-9 and . _ : -, starting with a letter or digit")
	}
	if (in.Metadata == "" && in.MetadataURL == "") || in.EntitlementID == nil {
		return nil, apperr.Invalid("body", "key, metadata (or metadata_url) and entitlement_id are required")
	}
	fetched, err := s.resolve(ctx, &in)
	if err != nil {
		return nil, err
	}
	now := s.now()
	sp := &ServiceProvider{ID: uuid.Must(uuid.NewV7()), Key: in.Key, Name: in.Key, NameIDFormat: NameIDEmail, Attributes: []AttributeMapping{},
		CreatedAt: now, UpdatedAt: now, Version: 1}
	if err := in.apply(sp); err != nil {
		return nil, err
	}
	if fetched {
		sp.MetadataURL, sp.RefreshedAt = in.MetadataURL, &now
	}
	if err := s.Entitlements(ctx, sp.EntitlementID); err != nil {
		return nil, err
	}
	err = s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if err := insertSPTx(ctx, tx, sp); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.Audit, "saml.sp.create", "saml_sp", sp.ID.String(), map[string]string{"key": sp.Key, "entity_id": sp.EntityID})
	})
	if err != nil {
		return nil, err
	}
	return sp, nil
}

// Update changes a service provider (its key never changes).
func (s *Service) Update(ctx context.Context, id uuid.UUID, in Input, ifVersion int64) (*ServiceProvider, error) {
	if in.Key != "" {
		return nil, apperr.Invalid("key", "cannot change")
	}
	fetched, err := s.resolve(ctx, &in)
	if err != nil {
		return nil, err
	}
	from := ""
	if fetched {
		from = in.MetadataURL
	}
	return s.update(ctx, id, in, ifVersion, from)
}

// update changes a service provider; from is the URL its new metadata
// was just fetched from ("": given inline, if given).
func (s *Service) update(ctx context.Context, id uuid.UUID, in Input, ifVersion int64, from string) (*ServiceProvider, error) {
	var sp *ServiceProvider
	err := s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		var err error
		if sp, err = spTx(ctx, tx, "id", id.String(), true); err != nil {
			return err
		}
		if ifVersion != 0 && sp.Version != ifVersion {
			return apperr.New(apperr.KindPreconditionFailed, "the service provider changed since version %d", ifVersion)
		}
		if err := in.apply(sp); err != nil {
			return err
		}
		now := s.now()
		switch {
		case from != "":
			sp.MetadataURL, sp.RefreshedAt = from, &now
		case in.Metadata != "":
			sp.MetadataURL, sp.RefreshedAt = "", nil
		}
		if in.EntitlementID != nil {
			if err := s.Entitlements(ctx, sp.EntitlementID); err != nil {
				return err
			}
		}
		sp.UpdatedAt, sp.Version = s.now(), sp.Version+1
		if err := updateSPTx(ctx, tx, sp); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.Audit, "saml.sp.update", "saml_sp", sp.ID.String(), map[string]string{"key": sp.Key})
	})
	if err != nil {
		return nil, err
	}
	return sp, nil
}

// Get reads a service provider.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (*ServiceProvider, error) {
	var sp *ServiceProvider
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		sp, err = spTx(ctx, tx, "id", id.String(), false)
		return err
	})
	return sp, err
}

// List lists the tenant's service providers by key.
func (s *Service) List(ctx context.Context) ([]*ServiceProvider, error) {
	var out []*ServiceProvider
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		out, err = listSPTx(ctx, tx)
		return err
	})
	return out, err
}

// Delete removes a service provider.
func (s *Service) Delete(ctx context.Context, id uuid.UUID) error {
	return s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		ok, err := deleteSPTx(ctx, tx, id)
		if err != nil {
			return err
		}
		if !ok {
			return apperr.NotFound("service provider")
		}
		return audit.RecordChangeTx(ctx, tx, s.Audit, "saml.sp.delete", "saml_sp", id.String(), nil)
	})
}

// ByKey finds the service provider of a key in the tenant of ctx (apperr
// not found: none).
func (s *Service) ByKey(ctx context.Context, key string) (*ServiceProvider, error) {
	var sp *ServiceProvider
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		sp, err = spTx(ctx, tx, "key", key, false)
		return err
	})
	return sp, err
}

// ByEntityID finds the service provider of an entity id in the tenant of
// ctx, with its metadata (apperr not found: none).
func (s *Service) ByEntityID(ctx context.Context, entityID string) (*ServiceProvider, *crewjam.EntityDescriptor, error) {
	var sp *ServiceProvider
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		sp, err = spTx(ctx, tx, "entity_id", entityID, false)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	ed, err := ParseMetadata(sp.metadata)
	if err != nil {
		return nil, nil, err
	}
	return sp, ed, nil
}

// Key is a tenant identity provider's signing key and certificate.
type Key struct {
	Private     *rsa.PrivateKey
	Certificate *x509.Certificate
}

// KeyInfo is one of a tenant identity provider's keys, as admins see it.
type KeyInfo struct {
	ID          uuid.UUID  `json:"id"`
	Certificate string     `json:"certificate" doc:"PEM"`
	SHA256      string     `json:"sha256_fingerprint"`
	NotAfter    time.Time  `json:"not_after"`
	CreatedAt   time.Time  `json:"created_at"`
	ActivatedAt *time.Time `json:"activated_at,omitempty" doc:"unset: published in the metadata, not signing yet"`
	Signing     bool       `json:"signing" doc:"the key that signs (the newest activated); the others are only published"`
}

// firstKeyID is the id of a tenant's first key: every replica that makes
// it at once makes the same row, and one wins.
func firstKeyID(tenant uuid.UUID) uuid.UUID {
	return uuid.NewSHA1(tenant, []byte("saml-idp-key-1"))
}

// Keys returns the tenant's signing key and the certificates published
// beside it (a rollover's next or previous one); the first key is made at
// first use.
func (s *Service) Keys(ctx context.Context, tenantName string) (*Key, []*x509.Certificate, error) {
	tid, _ := store.TenantFrom(ctx)
	for attempt := 0; ; attempt++ {
		rows, err := s.readKeys(ctx)
		if err != nil {
			return nil, nil, err
		}
		if len(rows) == 0 || rows[0].activated == nil {
			if attempt > 0 {
				return nil, nil, apperr.New(apperr.KindUnavailable, "saml: no signing key")
			}
			now := s.now()
			if err := s.newKey(ctx, firstKeyID(tid), tenantName, &now); err != nil && apperr.KindOf(err) != apperr.KindAlreadyExists {
				return nil, nil, err
			}
			continue
		}
		signing, err := s.openKey(tid, rows[0])
		if err != nil {
			return nil, nil, err
		}
		var others []*x509.Certificate
		for _, r := range rows[1:] {
			k, err := s.openKey(tid, r)
			if err != nil {
				return nil, nil, err
			}
			others = append(others, k.Certificate)
		}
		return signing, others, nil
	}
}

// readKeys reads the tenant's keys, the signing one first.
func (s *Service) readKeys(ctx context.Context) ([]keyRow, error) {
	var rows []keyRow
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		rows, err = keysTx(ctx, tx)
		return err
	})
	return rows, err
}

// newKey makes a key: RSA 2048 with a self-signed certificate valid ten
// years (SAML trusts the certificate in the metadata, not a chain).
func (s *Service) newKey(ctx context.Context, id uuid.UUID, tenantName string, activated *time.Time) error {
	tid, _ := store.TenantFrom(ctx)
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	now := s.now()
	tmpl := &x509.Certificate{SerialNumber: new(big.Int).SetBytes(id[:]), Subject: pkix.Name{CommonName: tenantName + " SAML signing"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return err
	}
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	sealed := base64.StdEncoding.EncodeToString(s.Sealer.Seal(x509.MarshalPKCS1PrivateKey(priv), keyAAD(tid, id)))
	return s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		if err := insertKeyTx(ctx, tx, id, certPEM, sealed, now, activated); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.Audit, "saml.key.create", "saml_key", id.String(), map[string]bool{"signing": activated != nil})
	})
}

// ListKeys lists the tenant's keys, the signing one first.
func (s *Service) ListKeys(ctx context.Context, tenantName string) ([]KeyInfo, error) {
	if _, _, err := s.Keys(ctx, tenantName); err != nil {
		return nil, err
	}
	tid, _ := store.TenantFrom(ctx)
	rows, err := s.readKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]KeyInfo, 0, len(rows))
	for i, r := range rows {
		k, err := s.openKey(tid, r)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(k.Certificate.Raw)
		out = append(out, KeyInfo{ID: r.id, Certificate: r.cert, SHA256: hex.EncodeToString(sum[:]), NotAfter: k.Certificate.NotAfter,
			CreatedAt: r.created, ActivatedAt: r.activated, Signing: i == 0 && r.activated != nil})
	}
	return out, nil
}

// AddKey makes the next key of a rollover: published in the metadata at
// once (service providers that refresh it learn it), signing only once
// activated.
func (s *Service) AddKey(ctx context.Context, tenantName string) (uuid.UUID, error) {
	if _, _, err := s.Keys(ctx, tenantName); err != nil {
		return uuid.Nil, err
	}
	id := uuid.Must(uuid.NewV7())
	return id, s.newKey(ctx, id, tenantName, nil)
}

// ActivateKey makes a key the signing one (the previous one stays
// published until retired).
func (s *Service) ActivateKey(ctx context.Context, id uuid.UUID) error {
	return s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		ok, err := activateKeyTx(ctx, tx, id, s.now())
		if err != nil {
			return err
		}
		if !ok {
			return apperr.NotFound("key")
		}
		return audit.RecordChangeTx(ctx, tx, s.Audit, "saml.key.activate", "saml_key", id.String(), nil)
	})
}

// RetireKey removes a key that no longer signs from the metadata.
func (s *Service) RetireKey(ctx context.Context, id uuid.UUID) error {
	return s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		rows, err := keysTx(ctx, tx)
		if err != nil {
			return err
		}
		found := false
		for i, r := range rows {
			if r.id == id {
				found = true
				if i == 0 && r.activated != nil {
					return apperr.New(apperr.KindConflict, "this key signs: activate another one first")
				}
			}
		}
		if !found {
			return apperr.NotFound("key")
		}
		if err := deleteKeyTx(ctx, tx, id); err != nil {
			return err
		}
		return audit.RecordChangeTx(ctx, tx, s.Audit, "saml.key.retire", "saml_key", id.String(), nil)
	})
}

func keyAAD(tenant, id uuid.UUID) []byte {
	return []byte("saml-idp-key|" + tenant.String() + "|" + id.String())
}

func (s *Service) openKey(tenant uuid.UUID, r keyRow) (*Key, error) {
	if k, ok := s.keys.Load(r.id); ok {
		return k.(*Key), nil
	}
	block, _ := pem.Decode([]byte(r.cert))
	if block == nil {
		return nil, apperr.New(apperr.KindInternal, "saml: stored certificate unreadable")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(r.sealed)
	if err != nil {
		return nil, err
	}
	der, err := s.Sealer.Open(raw, keyAAD(tenant, r.id))
	if err != nil {
		return nil, err
	}
	priv, err := x509.ParsePKCS1PrivateKey(der)
	if err != nil {
		return nil, err
	}
	k := &Key{Private: priv, Certificate: cert}
	s.keys.Store(r.id, k)
	return k, nil
}

// AddParticipant records that an SSO session signed in to a service
// provider.
func (s *Service) AddParticipant(ctx context.Context, session uuid.UUID, p Participant) error {
	return s.DB.InTenantTx(ctx, func(tx *store.Tx) error { return addParticipantTx(ctx, tx, session, p, s.now()) })
}

// Participants lists the service providers an SSO session signed in to.
func (s *Service) Participants(ctx context.Context, session uuid.UUID) ([]Participant, error) {
	var out []Participant
	err := s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		out, err = participantsTx(ctx, tx, session)
		return err
	})
	return out, err
}

// ForgetParticipants forgets them (the session ended).
func (s *Service) ForgetParticipants(ctx context.Context, session uuid.UUID) error {
	return s.DB.InTenantTx(ctx, func(tx *store.Tx) error { return forgetParticipantsTx(ctx, tx, session) })
}

// Consume records a signed request's id as answered until it expires;
// apperr already exists: it was (a replay).
func (s *Service) Consume(ctx context.Context, id string, expires time.Time) error {
	if id == "" || len(id) > 256 {
		return apperr.Invalid("ID", "a request id of 1 to 256 characters")
	}
	return s.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		ok, err := consumeTx(ctx, tx, id, expires, s.now())
		if err == nil && !ok {
			err = apperr.New(apperr.KindAlreadyExists, "this request was already answered")
		}
		return err
	})
}

// Refresh fetches a service provider's metadata again from its URL; a
// fetch that fails, or metadata of another entity, changes nothing.
func (s *Service) Refresh(ctx context.Context, id uuid.UUID) (*ServiceProvider, error) {
	cur, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if cur.MetadataURL == "" {
		return nil, apperr.New(apperr.KindConflict, "this service provider's metadata was given inline, not by URL")
	}
	md, err := s.fetch(ctx, cur.MetadataURL)
	if err != nil {
		return nil, err
	}
	ed, err := ParseMetadata(md)
	if err != nil {
		return nil, err
	}
	if ed.EntityID != cur.EntityID {
		return nil, apperr.Invalid("metadata_url", "the metadata there is now of another entity ("+ed.EntityID+"): register it anew")
	}
	return s.update(ctx, id, Input{Metadata: md}, 0, cur.MetadataURL)
}

// RunRefresh fetches again, every interval, the metadata of service
// providers registered by URL that was fetched more than a day ago.
func (s *Service) RunRefresh(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		var stale [][2]uuid.UUID
		err := s.DB.SystemRead(ctx, func(tx *store.Tx) error {
			var err error
			stale, err = staleTx(ctx, tx, s.now().Add(-24*time.Hour))
			return err
		})
		if err != nil && ctx.Err() == nil {
			slog.Default().Error("saml metadata refresh failed", "error", err)
		}
		for _, p := range stale {
			if _, err := s.Refresh(store.WithTenant(ctx, p[0]), p[1]); err != nil && ctx.Err() == nil {
				slog.Default().Warn("saml metadata refresh failed", "tenant_id", p[0], "sp", p[1], "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Skew is how far a service provider's request IssueInstant may be from
// now.
func (sp *ServiceProvider) Skew() time.Duration {
	if sp.ClockSkewSeconds == 0 {
		return 90 * time.Second
	}
	return time.Duration(sp.ClockSkewSeconds) * time.Second
}
