package pki

import (
	"context"
	"crypto/x509"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
)

type certEntry struct {
	tenant   uuid.UUID
	nhi      uuid.UUID
	serial   string
	notAfter time.Time
	revoked  bool
}

type nhiEntry struct {
	status string
	kind   string
}

// Verifier maps verified client certificates to NHI principals on every
// request, refusing revoked or expired certificates and NHIs that are not
// active. It caches what it reads and drops entries when change events
// (from any replica) say they changed.
type Verifier struct {
	DB *store.DB
	// NHIs gives the status and kind of a certificate's NHI (the NHI
	// domain's records are read through it, never from its tables).
	NHIs NHILookup
	Now  func() time.Time

	mu     sync.RWMutex
	certs  map[string]*certEntry // fingerprint → entry
	serial map[string]string     // serial → fingerprint
	nhis   map[uuid.UUID]nhiEntry
}

// NHILookup reads an NHI of the tenant in ctx (nhi.Service.Lookup).
type NHILookup interface {
	Lookup(ctx context.Context, id uuid.UUID) (*nhi.NHI, error)
}

// Errors of Authenticate.
var (
	ErrCertRevoked  = apperr.New(apperr.KindUnauthenticated, "client certificate revoked")
	ErrCertExpired  = apperr.New(apperr.KindUnauthenticated, "client certificate expired")
	ErrNHINotActive = apperr.New(apperr.KindUnauthenticated, "the certificate's NHI is not active")
)

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// Authenticate returns the principal of a verified leaf certificate. It
// returns (nil, nil) for certificates xavyo did not issue.
func (v *Verifier) Authenticate(ctx context.Context, leaf *x509.Certificate) (*principal.Principal, error) {
	fp := Fingerprint(leaf.Raw)
	e, err := v.cert(ctx, fp)
	if err != nil || e == nil {
		return nil, err
	}
	if e.revoked {
		return nil, ErrCertRevoked
	}
	if !v.now().Before(e.notAfter) {
		return nil, ErrCertExpired
	}
	n, err := v.nhi(ctx, e.tenant, e.nhi)
	if err != nil {
		return nil, err
	}
	if n.status != nhi.StatusActive {
		return nil, ErrNHINotActive
	}
	return &principal.Principal{TenantID: e.tenant, Kind: principal.KindNHI, NHIKind: n.kind, SubjectID: e.nhi.String(),
		AuthMethod: principal.MethodMTLS, CertThumbprint: fp}, nil
}

// Serial returns the serial of an issued certificate.
func (v *Verifier) Serial(ctx context.Context, leaf *x509.Certificate) (string, error) {
	e, err := v.cert(ctx, Fingerprint(leaf.Raw))
	if err != nil || e == nil {
		return "", err
	}
	return e.serial, nil
}

func (v *Verifier) cert(ctx context.Context, fp string) (*certEntry, error) {
	v.mu.RLock()
	e, ok := v.certs[fp]
	v.mu.RUnlock()
	if ok {
		return e, nil
	}
	var x certEntry
	var revoked *time.Time
	err := v.DB.SystemRead(ctx, func(tx *store.Tx) error {
		var err error
		revoked, err = certificateByFingerprint(ctx, tx, fp, &x)
		return err
	})
	if store.NoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, apperr.Wrap(err, apperr.KindUnavailable, "cannot verify certificates now")
	}
	x.revoked = revoked != nil
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.certs == nil || len(v.certs) > 200_000 {
		v.certs, v.serial = map[string]*certEntry{}, map[string]string{}
	}
	v.certs[fp] = &x
	v.serial[x.serial] = fp
	return &x, nil
}

func (v *Verifier) nhi(ctx context.Context, tenant, id uuid.UUID) (nhiEntry, error) {
	v.mu.RLock()
	e, ok := v.nhis[id]
	v.mu.RUnlock()
	if ok {
		return e, nil
	}
	n, err := v.NHIs.Lookup(store.WithTenant(ctx, tenant), id)
	if apperr.KindOf(err) == apperr.KindNotFound {
		return nhiEntry{status: "deleted"}, nil
	}
	if err == nil {
		e.status, e.kind = n.Status, n.Kind
	}
	if err != nil {
		return e, apperr.Wrap(err, apperr.KindUnavailable, "cannot verify certificates now")
	}
	v.mu.Lock()
	if v.nhis == nil || len(v.nhis) > 200_000 {
		v.nhis = map[uuid.UUID]nhiEntry{}
	}
	v.nhis[id] = e
	v.mu.Unlock()
	return e, nil
}

// Watch drops cached entries when certificates or NHIs change anywhere.
func (v *Verifier) Watch(bus *events.Bus) (stop func()) {
	return bus.Subscribe(func(m events.Message) {
		v.mu.Lock()
		defer v.mu.Unlock()
		switch {
		case m.Resync:
			v.certs, v.serial, v.nhis = nil, nil, nil
		case m.Change.Kind == CertificateEvent:
			if fp, ok := v.serial[m.Change.ID]; ok {
				delete(v.certs, fp)
				delete(v.serial, m.Change.ID)
			}
		case m.Change.Kind == nhi.EventKind:
			if id, err := uuid.Parse(m.Change.ID); err == nil {
				delete(v.nhis, id)
			}
		}
	})
}
