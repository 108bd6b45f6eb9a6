// Package bootstrap manages the bootstrap token: the platform's
// break-glass super_admin credential, like a root token. It is valid until
// revoked, stored only as a SHA-256 hash, and every use is audited in the
// platform's chain.
package bootstrap

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/reqid"
	"github.com/xavyo/xavyo/internal/store"
)

// Prefix starts every generated bootstrap token.
const Prefix = "xvb_"

const settingKey = "bootstrap_token"

// cacheTTL bounds how long a revocation takes to reach every replica.
const cacheTTL = time.Second

type record struct {
	SHA256    string     `json:"sha256"`
	IssuedAt  time.Time  `json:"issued_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Appender is what the service needs of the audit log.
type Appender interface {
	Append(ctx context.Context, e audit.Entry) (*audit.Receipt, error)
}

// Service verifies and manages the bootstrap token.
type Service struct {
	DB    *store.DB
	Audit Appender

	mu      sync.Mutex
	cached  *record
	expires time.Time
}

// Generate returns a new random token (256 bits).
func Generate() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("bootstrap: no randomness: " + err.Error())
	}
	return Prefix + base64.RawURLEncoding.EncodeToString(b)
}

func hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Ensure applies the configuration at start. configured/set come from
// bootstrap_token: set to a value installs that token; set to empty
// revokes; unset generates one on the very first start only and returns it
// (to be shown once). Idempotent across concurrent replicas.
func (s *Service) Ensure(ctx context.Context, configured string, set bool) (generated string, err error) {
	switch {
	case set && configured != "":
		return "", s.install(ctx, configured, true)
	case set:
		return "", s.Revoke(ctx)
	}
	token := Generate()
	now := store.Now()
	raw, _ := json.Marshal(record{SHA256: hash(token), IssuedAt: now})
	var inserted bool
	err = s.DB.SystemTx(ctx, func(tx *store.Tx) (err error) {
		inserted, err = insertRecord(ctx, tx, raw, now)
		return err
	})
	if err != nil || !inserted {
		return "", err
	}
	s.record(ctx, "bootstrap.issue")
	return token, nil
}

// Issue replaces the bootstrap token with a new one and returns it.
func (s *Service) Issue(ctx context.Context) (string, error) {
	token := Generate()
	if err := s.install(ctx, token, false); err != nil {
		return "", err
	}
	return token, nil
}

func (s *Service) install(ctx context.Context, token string, onlyIfChanged bool) error {
	now := store.Now()
	h := hash(token)
	if onlyIfChanged {
		if r, err := s.load(ctx); err == nil && r != nil && r.RevokedAt == nil && r.SHA256 == h {
			return nil
		}
	}
	raw, _ := json.Marshal(record{SHA256: h, IssuedAt: now})
	err := s.DB.SystemTx(ctx, func(tx *store.Tx) error {
		return saveRecord(ctx, tx, raw, now)
	})
	if err == nil {
		s.invalidate()
		s.record(ctx, "bootstrap.issue")
	}
	return err
}

// Revoke revokes the bootstrap token; it stays revoked across restarts
// until a new one is issued.
func (s *Service) Revoke(ctx context.Context) error {
	now := store.Now()
	r, err := s.load(ctx)
	if err != nil {
		return err
	}
	if r == nil {
		r = &record{IssuedAt: now}
	}
	if r.RevokedAt != nil {
		return nil
	}
	r.RevokedAt = &now
	raw, _ := json.Marshal(r)
	err = s.DB.SystemTx(ctx, func(tx *store.Tx) error {
		return saveRecord(ctx, tx, raw, now)
	})
	if err == nil {
		s.invalidate()
		s.record(ctx, "bootstrap.revoke")
	}
	return err
}

func (s *Service) load(ctx context.Context) (*record, error) {
	var raw []byte
	err := s.DB.SystemRead(ctx, func(tx *store.Tx) (err error) {
		raw, err = readRecord(ctx, tx)
		return err
	})
	if store.NoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func (s *Service) invalidate() {
	s.mu.Lock()
	s.cached, s.expires = nil, time.Time{}
	s.mu.Unlock()
}

func (s *Service) current(ctx context.Context) (*record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Now().Before(s.expires) {
		return s.cached, nil
	}
	r, err := s.load(ctx)
	if err != nil {
		return nil, err
	}
	s.cached, s.expires = r, time.Now().Add(cacheTTL)
	return r, nil
}

// Authenticate implements the admin plane's authenticator: a bearer
// token equal to the live bootstrap token is a super_admin principal.
// Other tokens are not its business (nil, nil).
func (s *Service) Authenticate(ctx context.Context, scheme, token string) (*principal.Principal, error) {
	if !strings.EqualFold(scheme, "Bearer") {
		return nil, nil
	}
	r, err := s.current(ctx)
	if err != nil {
		return nil, apperr.Wrap(err, apperr.KindUnavailable, "cannot verify credentials now")
	}
	if r == nil || r.RevokedAt != nil {
		if strings.HasPrefix(token, Prefix) {
			return nil, apperr.New(apperr.KindUnauthenticated, "bootstrap token is not valid")
		}
		return nil, nil
	}
	if subtle.ConstantTimeCompare([]byte(hash(token)), []byte(r.SHA256)) != 1 {
		if strings.HasPrefix(token, Prefix) {
			return nil, apperr.New(apperr.KindUnauthenticated, "bootstrap token is not valid")
		}
		return nil, nil
	}
	p := &principal.Principal{Kind: principal.KindBootstrap, SubjectID: "bootstrap", AuthMethod: principal.MethodBootstrap,
		AdminRoles: []string{principal.RoleSuperAdmin}}
	s.record(principal.With(ctx, p), "bootstrap.use")
	return p, nil
}

// record audits in the platform chain without waiting: a use must not
// fail or slow because the audit log is busy, and the sequencer keeps
// what it accepted.
func (s *Service) record(ctx context.Context, action string) {
	if s.Audit == nil {
		return
	}
	e := audit.Entry{TenantID: audit.Platform, Action: action, TargetKind: "bootstrap_token", TargetID: "bootstrap",
		RequestID: reqid.From(ctx)}.ActorFrom(principal.From(ctx))
	if principal.From(ctx) == nil {
		e.ActorKind, e.ActorID = "system", "xavyo"
	}
	_, _ = s.Audit.Append(ctx, e)
}
