package pki_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/identity/password"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/seal"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
	"github.com/xavyo/xavyo/pki"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

var errLogDown = errors.New("the audit log refused the write")

func newCA(t *testing.T, db *store.DB, log audit.Recorder) *pki.CA {
	t.Helper()
	sealer, err := seal.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.New(context.Background(), pki.Config{DB: db, Sealer: sealer, TrustDomain: "xavyo.test",
		CRLURL: "https://127.0.0.1/pki/crl", Audit: log})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// agent makes a tenant, an owner and an active agent NHI.
func agent(t *testing.T, db *store.DB) (context.Context, *nhi.NHI) {
	t.Helper()
	tenants := &tenant.Service{DB: db, Audit: audit.Discard}
	tn, err := tenants.Create(context.Background(), tenant.CreateInput{Slug: "p-" + uuid.NewString()[:8], Name: "P"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := principal.With(store.WithTenant(context.Background(), tn.ID), &principal.Principal{TenantID: tn.ID, Kind: principal.KindUser,
		SubjectID: "admin", AdminRoles: []string{principal.RoleTenantAdmin}})
	dir := &directory.Service{DB: db, Audit: audit.Discard, Policies: tenants,
		Hasher: password.NewHasher(password.Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 1)}
	owner, err := dir.CreateUser(ctx, directory.CreateUserInput{Email: "owner@p.test"})
	if err != nil {
		t.Fatal(err)
	}
	nhis := &nhi.Service{DB: db, Audit: audit.Discard, Policies: tenants, Users: dir}
	c, err := nhis.Create(ctx, nhi.CreateInput{Kind: nhi.KindAgent, Slug: "bot", Name: "Bot", OwnerID: owner.ID})
	if err != nil {
		t.Fatal(err)
	}
	return ctx, &c.NHI
}

// TestCertificateStore: on both backends, an issuance that cannot be
// recorded leaves no certificate; a recorded one is listed, found by
// fingerprint, revoked once; a rotation keeps the previous intermediate
// trusted until it is retired, and a second CA on the same store (a
// replica) loads the same material.
func TestCertificateStore(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx, n := agent(t, db)
		good := newCA(t, db, audit.Discard)
		bad := newCA(t, db, audit.Failing(errLogDown))

		if _, err := bad.Issue(ctx, n, pki.IssueInput{}, time.Hour, ""); !errors.Is(err, errLogDown) {
			t.Fatalf("issue with the audit log down: %v", err)
		}
		if certs, err := good.Certificates(ctx, n.ID); err != nil || len(certs) != 0 {
			t.Fatalf("an issuance that failed left %d certificates: %v", len(certs), err)
		}
		issued, err := good.Issue(ctx, n, pki.IssueInput{}, time.Hour, "")
		if err != nil {
			t.Fatal(err)
		}
		certs, err := good.Certificates(ctx, n.ID)
		if err != nil || len(certs) != 1 || certs[0].Serial != issued.Serial || certs[0].Fingerprint != issued.Fingerprint {
			t.Fatalf("the issued certificate: %v %+v", err, certs)
		}
		if err := bad.Revoke(ctx, n.ID, issued.Serial, pki.RevokeInput{Reason: "test"}); err == nil {
			t.Fatal("a revocation that cannot be recorded succeeded")
		}
		if err := good.Revoke(ctx, n.ID, issued.Serial, pki.RevokeInput{Reason: "key compromise", ReasonCode: 1}); err != nil {
			t.Fatal(err)
		}
		if err := good.Revoke(ctx, n.ID, issued.Serial, pki.RevokeInput{Reason: "again"}); err == nil {
			t.Fatal("a certificate was revoked twice")
		}
		if certs, _ := good.Certificates(ctx, n.ID); len(certs) != 1 || certs[0].RevokedAt == nil {
			t.Fatalf("the revocation is not stored: %+v", certs)
		}

		before := good.Intermediates()
		if err := good.Rotate(ctx, false); err != nil {
			t.Fatal(err)
		}
		after := good.Intermediates()
		if len(after) != len(before)+1 || after[0].Equal(before[0]) {
			t.Fatalf("a rotation: %d intermediates before, %d after", len(before), len(after))
		}
		replica := newCA(t, db, audit.Discard)
		if got := replica.Intermediates(); len(got) != len(after) || !got[0].Equal(after[0]) {
			t.Fatal("a second CA on the store does not load the rotated material")
		}
		if err := good.RetirePrevious(ctx); err != nil {
			t.Fatal(err)
		}
		if got := good.Intermediates(); len(got) != 1 || !got[0].Equal(after[0]) {
			t.Fatalf("after retiring: %d intermediates", len(got))
		}
	})
}
