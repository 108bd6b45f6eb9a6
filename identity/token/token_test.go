package token_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/token"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/seal"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

type tenants map[uuid.UUID]string

func (t tenants) SlugOf(_ context.Context, id uuid.UUID) (string, error) {
	if s, ok := t[id]; ok {
		return s, nil
	}
	return "", apperr.NotFound("tenant")
}

const base = "http://127.0.0.1:8080"

type fixture struct {
	svc  *token.Service
	db   *store.DB
	a, b uuid.UUID
}

func setup(t *testing.T, db *store.DB) *fixture {
	t.Helper()
	f := &fixture{db: db, a: uuid.Must(uuid.NewV7()), b: uuid.Must(uuid.NewV7())}
	tn := tenants{}
	for _, id := range []uuid.UUID{f.a, f.b} {
		slug := "t" + id.String()[24:]
		tn[id] = slug
		err := db.SystemTx(context.Background(), func(tx *store.Tx) error {
			_, err := tx.Exec(context.Background(), `INSERT INTO tenants (id, slug, name, status, settings, created_at, updated_at, version)
				VALUES ($1, $2, 'T', 'active', '{}', $3, $3, 1)`, id, slug, store.Now())
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	key := make([]byte, 32) // a fixed KEK: PostgreSQL test databases are shared
	sealer, _ := seal.New(key)
	svc, err := token.New(token.Config{DB: db, Sealer: sealer, Tenants: tn, IssuerBase: base, Overlap: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	return f
}

func (f *fixture) claims(tenant uuid.UUID) token.Claims {
	return token.Claims{Claims: jwt.Claims{Subject: "user-1", Audience: jwt.Audience{base + "/api/v1"},
		Expiry: jwt.NewNumericDate(time.Now().Add(10 * time.Minute))}, TenantID: tenant, Scope: "openid", SessionID: uuid.NewString()}
}

func segments(raw string) (hdr, payload map[string]any, sig string) {
	p := strings.Split(raw, ".")
	hb, _ := base64.RawURLEncoding.DecodeString(p[0])
	pb, _ := base64.RawURLEncoding.DecodeString(p[1])
	_ = json.Unmarshal(hb, &hdr)
	_ = json.Unmarshal(pb, &payload)
	return hdr, payload, p[2]
}

func enc(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestVerifyRejectsKnownAttacks(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		want := token.Expect{Audience: base + "/api/v1"}
		good, err := f.svc.Mint(ctx, f.claims(f.a))
		if err != nil {
			t.Fatal(err)
		}
		c, err := f.svc.Verify(ctx, good, want)
		if err != nil || c.Subject != "user-1" || c.TenantID != f.a || c.Issuer != base+"/t/"+"t"+f.a.String()[24:] {
			t.Fatalf("good token: %+v %v", c, err)
		}
		hdr, payload, sig := segments(good)
		jwks, _ := f.svc.JWKS(ctx, f.a)
		pubJSON, _ := jwks.Keys[0].MarshalJSON()

		hs256 := func() string {
			h := map[string]any{"alg": "HS256", "kid": hdr["kid"], "typ": "JWT"}
			signing := enc(h) + "." + enc(payload)
			mac := hmac.New(sha256.New, pubJSON)
			mac.Write([]byte(signing))
			return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
		}
		foreignKey := func(mut func(*token.Claims)) string {
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k, KeyID: hdr["kid"].(string)}}, nil)
			c := f.claims(f.a)
			c.Issuer = base + "/t/t" + f.a.String()[24:]
			c.ID = "x"
			if mut != nil {
				mut(&c)
			}
			raw, _ := jwt.Signed(s).Claims(c).Serialize()
			return raw
		}
		mint := func(mut func(*token.Claims)) string {
			c := f.claims(f.a)
			mut(&c)
			raw, err := f.svc.Mint(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			return raw
		}
		tampered := map[string]any{}
		for k, v := range payload {
			tampered[k] = v
		}
		tampered["sub"] = "admin"
		otherTenantKey := func() string {
			// B's key signing a token that claims tenant A.
			c := f.claims(f.b)
			raw, _ := f.svc.Mint(ctx, c)
			h, p, s := segments(raw)
			p["tid"] = f.a.String()
			return enc(h) + "." + enc(p) + "." + s
		}
		cases := map[string]struct {
			raw  string
			want token.Expect
		}{
			"alg none":              {enc(map[string]any{"alg": "none", "typ": "JWT"}) + "." + enc(payload) + ".", want},
			"alg none, kid kept":    {enc(map[string]any{"alg": "none", "kid": hdr["kid"]}) + "." + enc(payload) + ".", want},
			"HS256 with public key": {hs256(), want},
			"unknown kid":           {enc(map[string]any{"alg": "ES256", "kid": uuid.NewString(), "typ": "JWT"}) + "." + enc(payload) + "." + sig, want},
			"no kid":                {enc(map[string]any{"alg": "ES256", "typ": "JWT"}) + "." + enc(payload) + "." + sig, want},
			"alg/key mismatch":      {enc(map[string]any{"alg": "RS256", "kid": hdr["kid"], "typ": "JWT"}) + "." + enc(payload) + "." + sig, want},
			"signed by a stranger":  {foreignKey(nil), want},
			"tampered payload":      {enc(hdr) + "." + enc(tampered) + "." + sig, want},
			"another tenant's key":  {otherTenantKey(), want},
			"wrong audience":        {good, token.Expect{Audience: base + "/t/x/mcp"}},
			"wrong tenant":          {good, token.Expect{Audience: base + "/api/v1", Tenant: f.b}},
			"wrong issuer":          {mintWrongIssuer(t, f, hdr), want},
			"expired":               {mint(func(c *token.Claims) { c.Expiry = jwt.NewNumericDate(time.Now().Add(-time.Hour)) }), want},
			"not yet valid":         {futureToken(t, f), want},
			"garbage":               {"not.a.jwt", want},
			"empty":                 {"", want},
			"oversize":              {strings.Repeat("a", 20000), want},
			"two signatures (JSON)": {`{"payload":"` + enc(payload) + `","signatures":[]}`, want},
		}
		for name, tc := range cases {
			t.Run(name, func(t *testing.T) {
				c, err := f.svc.Verify(ctx, tc.raw, tc.want)
				if err == nil || apperr.KindOf(err) != apperr.KindUnauthenticated {
					t.Fatalf("accepted (%+v) or wrong error: %v", c, err)
				}
				reason := map[string]string{"expired": "expired", "not yet valid": "not valid yet", "wrong audience": "audience",
					"wrong tenant": "another tenant", "unknown kid": "unknown key", "wrong issuer": "invalid token"}[name]
				if !strings.Contains(apperr.PublicMessage(err), reason) {
					t.Fatalf("rejected for the wrong reason: %v", err)
				}
			})
		}
	})
}

func mintWrongIssuer(t *testing.T, f *fixture, _ map[string]any) string {
	t.Helper()
	// Re-sign A's payload with A's key but a foreign issuer: only the
	// service has the key, so mint through a second service whose issuer
	// base differs but which shares the database and KEK.
	sealer, _ := seal.New(make([]byte, 32))
	other, err := token.New(token.Config{DB: f.db, Sealer: sealer, Tenants: tenants{f.a: "t" + f.a.String()[24:]}, IssuerBase: "https://evil.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := other.Mint(context.Background(), f.claims(f.a))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// futureToken is a genuinely signed token whose nbf and iat lie an hour
// ahead of the verifier's clock (a signer with a fast clock).
func futureToken(t *testing.T, f *fixture) string {
	t.Helper()
	sealer, _ := seal.New(make([]byte, 32))
	ahead, err := token.New(token.Config{DB: f.db, Sealer: sealer, IssuerBase: base, Tenants: tenants{f.a: "t" + f.a.String()[24:]},
		Now: func() time.Time { return time.Now().Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	c := f.claims(f.a)
	c.Expiry = jwt.NewNumericDate(time.Now().Add(2 * time.Hour))
	raw, err := ahead.Mint(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestRotationKeepsOldTokensUntilRetired(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		want := token.Expect{Audience: base + "/api/v1"}
		old, err := f.svc.Mint(ctx, f.claims(f.a))
		if err != nil {
			t.Fatal(err)
		}
		oldHdr, _, _ := segments(old)
		if _, err := f.svc.Rotate(ctx, f.a, token.RS256); err != nil {
			t.Fatal(err)
		}
		fresh, err := f.svc.Mint(ctx, f.claims(f.a))
		if err != nil {
			t.Fatal(err)
		}
		newHdr, _, _ := segments(fresh)
		if newHdr["kid"] == oldHdr["kid"] || newHdr["alg"] != "RS256" {
			t.Fatalf("rotation did not switch keys: %v %v", oldHdr, newHdr)
		}
		for name, raw := range map[string]string{"old": old, "new": fresh} {
			if _, err := f.svc.Verify(ctx, raw, want); err != nil {
				t.Fatalf("%s token after rotation: %v", name, err)
			}
		}
		set, _ := f.svc.JWKS(ctx, f.a)
		if len(set.Keys) != 2 {
			t.Fatalf("JWKS during overlap has %d keys", len(set.Keys))
		}
		// Retire the old key (its overlap ends): a fresh verifier (another
		// replica, no cache) refuses the old token, accepts the new one.
		if err := db.SystemTx(ctx, func(tx *store.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE signing_keys SET retire_at = $1 WHERE id = $2`, store.Now().Add(-time.Second), oldHdr["kid"])
			return err
		}); err != nil {
			t.Fatal(err)
		}
		replica := setupReplica(t, f)
		if _, err := replica.Verify(ctx, old, want); err == nil {
			t.Fatal("a token of a retired key verified")
		}
		if _, err := replica.Verify(ctx, fresh, want); err != nil {
			t.Fatal(err)
		}
		set, _ = replica.JWKS(ctx, f.a)
		if len(set.Keys) != 1 {
			t.Fatalf("JWKS after retirement has %d keys", len(set.Keys))
		}
	})
}

func setupReplica(t *testing.T, f *fixture) *token.Service {
	t.Helper()
	sealer, _ := seal.New(make([]byte, 32))
	r, err := token.New(token.Config{DB: f.db, Sealer: sealer, IssuerBase: base,
		Tenants: tenants{f.a: "t" + f.a.String()[24:], f.b: "t" + f.b.String()[24:]}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRevocation(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		want := token.Expect{Audience: base + "/api/v1"}
		c := f.claims(f.a)
		raw, _ := f.svc.Mint(ctx, c)
		cl, err := f.svc.Verify(ctx, raw, want)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.svc.Revoke(ctx, f.a, "jti", cl.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Verify(ctx, raw, want); err == nil {
			t.Fatal("revoked jti still verifies (cache not consulted for revocation)")
		}
		other, _ := f.svc.Mint(ctx, c) // same session
		if err := f.svc.Revoke(ctx, f.a, "sid", c.SessionID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Verify(ctx, other, want); err == nil {
			t.Fatal("token of a revoked session still verifies")
		}
		// Another replica learns revocations from the store.
		replica := setupReplica(t, f)
		if err := replica.LoadRevocations(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := replica.Verify(ctx, other, want); err == nil {
			t.Fatal("replica accepted a revoked session's token")
		}
	})
}

// TestRevocationsReloadAfterLostFeed: a replica that lost its change feed
// reads the revocation list again through its owned reload worker, so a
// token revoked elsewhere meanwhile is refused.
func TestRevocationsReloadAfterLostFeed(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- f.svc.RunRevocationReloads(ctx) }()
		want := token.Expect{Audience: base + "/api/v1"}
		raw, _ := f.svc.Mint(ctx, f.claims(f.a))
		cl, err := f.svc.Verify(ctx, raw, want)
		if err != nil {
			t.Fatal(err)
		}
		// Another replica revokes it; this one hears nothing (no feed).
		if err := setupReplica(t, f).Revoke(ctx, f.a, "jti", cl.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Verify(ctx, raw, want); err != nil {
			t.Fatalf("without the feed the revocation cannot be known yet: %v", err)
		}
		f.svc.Resync()
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, err := f.svc.Verify(ctx, raw, want); err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("a token revoked elsewhere still verifies after the resync")
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestRefreshRotationAndReuse(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := store.WithTenant(context.Background(), f.a)
		sid := uuid.New()
		var first string
		err := db.InTenantTx(ctx, func(tx *store.Tx) error {
			var err error
			first, err = f.svc.NewRefreshInTx(ctx, tx, &token.RefreshGrant{TenantID: f.a, SessionID: sid, Subject: "user-1",
				Audience: []string{"a"}, ExpiresAt: time.Now().Add(time.Hour)})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		g, second, err := f.svc.Refresh(context.Background(), first)
		if err != nil || g.Subject != "user-1" || g.SessionID != sid || second == first {
			t.Fatalf("%+v %v", g, err)
		}
		_, third, err := f.svc.Refresh(context.Background(), second)
		if err != nil {
			t.Fatal(err)
		}
		// Presenting a rotated-out token: the family dies, the newest too.
		if _, _, err := f.svc.Refresh(context.Background(), first); !errors.Is(err, token.ErrRefreshReused) {
			t.Fatalf("reuse: %v", err)
		}
		if _, _, err := f.svc.Refresh(context.Background(), third); !errors.Is(err, token.ErrRefreshInvalid) {
			t.Fatalf("family member after reuse: %v", err)
		}
		access, _ := f.svc.Mint(context.Background(), token.Claims{Claims: jwt.Claims{Subject: "user-1", Audience: jwt.Audience{"a"},
			Expiry: jwt.NewNumericDate(time.Now().Add(time.Minute))}, TenantID: f.a, SessionID: sid.String()})
		if _, err := f.svc.Verify(context.Background(), access, token.Expect{Audience: "a"}); err == nil {
			t.Fatal("the session's access tokens survived reuse detection")
		}
		for _, bad := range []string{"", "xvr_", "xvr_" + strings.Repeat("A", 64), first + "x", "Bearer " + first} {
			if _, _, err := f.svc.Refresh(context.Background(), bad); !errors.Is(err, token.ErrRefreshInvalid) {
				t.Errorf("%q: %v", bad, err)
			}
		}
	})
}

func FuzzRefreshTenant(f *testing.F) {
	f.Add("xvr_" + strings.Repeat("A", 64))
	f.Add("xvr_")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := token.RefreshTenant(s)
		if err == nil && id == uuid.Nil {
			t.Fatal("nil tenant accepted")
		}
	})
}

// FuzzVerify: arbitrary bearer strings never verify and never panic.
func FuzzVerify(f *testing.F) {
	db := testdb.SQLite(f)
	fx := &fixture{db: db, a: uuid.Must(uuid.NewV7())}
	slug := "t" + fx.a.String()[24:]
	if err := db.SystemTx(context.Background(), func(tx *store.Tx) error {
		_, err := tx.Exec(context.Background(), `INSERT INTO tenants (id, slug, name, status, settings, created_at, updated_at, version)
			VALUES ($1, $2, 'T', 'active', '{}', $3, $3, 1)`, fx.a, slug, store.Now())
		return err
	}); err != nil {
		f.Fatal(err)
	}
	sealer, _ := seal.New(make([]byte, 32))
	svc, err := token.New(token.Config{DB: db, Sealer: sealer, Tenants: tenants{fx.a: slug}, IssuerBase: base})
	if err != nil {
		f.Fatal(err)
	}
	good, err := svc.Mint(context.Background(), fx.claims(fx.a))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-2] + "AA")
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := svc.Verify(context.Background(), raw, token.Expect{Audience: base + "/api/v1"})
		if err == nil && raw != good {
			t.Fatalf("a string other than the minted token verified: %q → %+v", raw, c)
		}
	})
}

// TestDPoPBinding: in a request that proved a DPoP key, access tokens
// are minted bound to it (cnf.jkt, beside a certificate binding) and a
// new refresh family too; the bound access token verifies only with a
// proof of its key, the bound refresh token rotates only with one, and
// refusing it spends nothing. A proof is recorded once per tenant.
func TestDPoPBinding(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := token.WithDPoPKey(store.WithTenant(context.Background(), f.a), "jkt-1")
		c := f.claims(f.a)
		c.Cnf = &token.Confirmation{X5tS256: "cert-1"}
		raw, err := f.svc.Mint(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		want := token.Expect{Audience: base + "/api/v1", CertThumbprint: "cert-1"}
		if _, err := f.svc.Verify(ctx, raw, want); !errors.Is(err, token.ErrDPoPBound) {
			t.Fatalf("as a bearer token: %v", err)
		}
		want.DPoPKey = "jkt-2"
		if _, err := f.svc.Verify(ctx, raw, want); !errors.Is(err, token.ErrDPoPBound) {
			t.Fatalf("with another key: %v", err)
		}
		want.DPoPKey = "jkt-1"
		if got, err := f.svc.Verify(ctx, raw, want); err != nil || got.Cnf.JKT != "jkt-1" || got.Cnf.X5tS256 != "cert-1" {
			t.Fatalf("with its key: %+v %v", got, err)
		}
		unbound, _ := f.svc.Mint(store.WithTenant(context.Background(), f.a), f.claims(f.a))
		if _, err := f.svc.Verify(ctx, unbound, token.Expect{Audience: base + "/api/v1", DPoPKey: "jkt-1"}); err == nil {
			t.Fatal("a proof with an unbound token")
		}

		var first string
		err = db.InTenantTx(ctx, func(tx *store.Tx) error {
			var err error
			first, err = f.svc.NewRefreshInTx(ctx, tx, &token.RefreshGrant{TenantID: f.a, Subject: "user-1", ExpiresAt: time.Now().Add(time.Hour)})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.svc.Refresh(context.Background(), first); !errors.Is(err, token.ErrRefreshKey) {
			t.Fatalf("a bound refresh token without a proof: %v", err)
		}
		if _, _, err := f.svc.Refresh(token.WithDPoPKey(context.Background(), "jkt-2"), first); !errors.Is(err, token.ErrRefreshKey) {
			t.Fatalf("with another key: %v", err)
		}
		g, next, err := f.svc.Refresh(token.WithDPoPKey(context.Background(), "jkt-1"), first)
		if err != nil || g.JKT != "jkt-1" {
			t.Fatalf("with its key (and not spent by the refusals): %+v %v", g, err)
		}
		if _, _, err := f.svc.Refresh(context.Background(), next); !errors.Is(err, token.ErrRefreshKey) {
			t.Fatalf("the rotated token stays bound: %v", err)
		}

		until := time.Now().Add(time.Minute)
		if err := f.svc.UseProof(ctx, f.a, "jkt-1", "jti-1", until); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.UseProof(ctx, f.a, "jkt-1", "jti-1", until); !errors.Is(err, token.ErrProofReplayed) {
			t.Fatalf("replay: %v", err)
		}
		if err := f.svc.UseProof(ctx, f.b, "jkt-1", "jti-1", until); err != nil {
			t.Fatalf("another tenant's record: %v", err)
		}
	})
}
