package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// An auth transaction is the server-side state of the sign-in page flow
// (docs/design/0000-architecture.md §12): the flow a person signs in for
// (an authorization request, a device code, …: its purpose and request)
// and, once they did, the SSO session they signed in with. Its id (256
// random bits, kept as SHA-256) travels in URLs and in state or
// RelayState, so a cross-site return finds it without cookies; what it
// lets a browser do after the sign-in is bound to that session.

// TransactionLifetime is how long a person has to complete a sign-in.
const TransactionLifetime = 15 * time.Minute

// Transaction is a sign-in in progress.
type Transaction struct {
	// ID is the bearer id (known only from the URL that carries it).
	ID      string
	Purpose string
	Request string
	// SessionID is the SSO session the person signed in with (uuid.Nil:
	// not yet).
	SessionID uuid.UUID
	ExpiresAt time.Time
	// PendingUser passed the first step (their password) and owes the
	// second (uuid.Nil: none); pendingHash binds that to the browser or
	// client that passed the first.
	PendingUser uuid.UUID
	// PendingAMR says how the first step was passed (pwd, or fed and
	// the upstream's methods).
	PendingAMR  []string
	pendingHash string
}

// TransactionPending records that user passed the first step of the
// sign-in (as amr says) and owes a second factor; it returns the secret
// that must come back with the second (a cookie, or the JSON API's
// mfa_token part).
func (s *Service) TransactionPending(ctx context.Context, t *tenant.Tenant, x *Transaction, user uuid.UUID, amr []string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	secret := base64.RawURLEncoding.EncodeToString(b)
	err := s.DB.InTenantTx(store.WithTenant(ctx, t.ID), func(tx *store.Tx) error {
		ok, err := setTransactionPendingTx(ctx, tx, hashSecret([]byte(x.ID)), user, hashSecret([]byte(secret)), amr, s.now())
		if err == nil && !ok {
			return ErrNoTransaction
		}
		return err
	})
	if err != nil {
		return "", err
	}
	x.PendingUser, x.pendingHash, x.PendingAMR = user, hashSecret([]byte(secret)), amr
	return secret, nil
}

// Pending returns the person who owes the second step of x, when secret
// is the one TransactionPending gave (uuid.Nil otherwise).
func (x *Transaction) Pending(secret string) uuid.UUID {
	if x.PendingUser == uuid.Nil || x.pendingHash == "" || subtle.ConstantTimeCompare([]byte(x.pendingHash), []byte(hashSecret([]byte(secret)))) != 1 {
		return uuid.Nil
	}
	return x.PendingUser
}

// ErrNoTransaction answers every id that names no live transaction of
// the tenant: unknown, expired, ended, or another tenant's.
var ErrNoTransaction = apperr.New(apperr.KindNotFound, "this sign-in has expired or is unknown; start again from the application")

// StartTransaction records a sign-in for purpose with its request (at
// most 16 KiB), already signed in when session is not uuid.Nil.
func (s *Service) StartTransaction(ctx context.Context, t *tenant.Tenant, purpose, request string, session uuid.UUID) (*Transaction, error) {
	if purpose == "" || len(purpose) > 40 || len(request) > 16<<10 {
		return nil, apperr.Invalid("request", "a sign-in request must be at most 16 KiB")
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	now := s.now()
	x := &Transaction{ID: base64.RawURLEncoding.EncodeToString(b), Purpose: purpose, Request: request, SessionID: session,
		ExpiresAt: now.Add(TransactionLifetime)}
	err := s.DB.InTenantTx(store.WithTenant(ctx, t.ID), func(tx *store.Tx) error {
		return insertTransactionTx(ctx, tx, hashSecret([]byte(x.ID)), x, now)
	})
	if err != nil {
		return nil, err
	}
	return x, nil
}

// Transaction returns the live transaction id names.
func (s *Service) Transaction(ctx context.Context, t *tenant.Tenant, id string) (*Transaction, error) {
	if id == "" || len(id) > 100 {
		return nil, ErrNoTransaction
	}
	var x *Transaction
	err := s.DB.InTenantRead(store.WithTenant(ctx, t.ID), func(tx *store.Tx) error {
		var err error
		x, err = transactionTx(ctx, tx, hashSecret([]byte(id)))
		return err
	})
	if err != nil {
		return nil, err
	}
	if x == nil || !s.now().Before(x.ExpiresAt) {
		return nil, ErrNoTransaction
	}
	x.ID = id
	return x, nil
}

// TransactionSignedIn records the SSO session the person signed in with.
func (s *Service) TransactionSignedIn(ctx context.Context, t *tenant.Tenant, x *Transaction, session uuid.UUID) error {
	err := s.DB.InTenantTx(store.WithTenant(ctx, t.ID), func(tx *store.Tx) error {
		ok, err := setTransactionSessionTx(ctx, tx, hashSecret([]byte(x.ID)), session, s.now())
		if err == nil && !ok {
			return ErrNoTransaction
		}
		return err
	})
	if err == nil {
		x.SessionID = session
	}
	return err
}

// EndTransaction ends a transaction (its flow completed or gave up); an
// ended one is left as it is.
func (s *Service) EndTransaction(ctx context.Context, t *tenant.Tenant, x *Transaction) error {
	return s.DB.InTenantTx(store.WithTenant(ctx, t.ID), func(tx *store.Tx) error {
		return deleteTransactionTx(ctx, tx, hashSecret([]byte(x.ID)))
	})
}
