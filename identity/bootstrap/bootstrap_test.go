package bootstrap_test

import (
	"context"
	"os"
	"testing"

	"github.com/xavyo/xavyo/identity/bootstrap"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

func TestAuthenticate(t *testing.T) {
	db := testdb.SQLite(t)
	seq, _ := audit.New(audit.Config{DB: db})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = seq.Run(ctx); close(done) }()
	s := &bootstrap.Service{DB: db, Audit: seq}

	token, err := s.Ensure(context.Background(), "", false)
	if err != nil || len(token) < 40 {
		t.Fatalf("%q %v", token, err)
	}
	if again, err := s.Ensure(context.Background(), "", false); err != nil || again != "" {
		t.Fatalf("second Ensure generated %q", again)
	}
	p, err := s.Authenticate(context.Background(), "Bearer", token)
	if err != nil || p == nil || !p.IsSuperAdmin() || p.Kind != principal.KindBootstrap || p.AuthMethod != principal.MethodBootstrap {
		t.Fatalf("%+v %v", p, err)
	}
	if p, err := s.Authenticate(context.Background(), "bearer", token); err != nil || p == nil {
		t.Fatal("scheme is case-insensitive")
	}
	if p, err := s.Authenticate(context.Background(), "Basic", token); p != nil || err != nil {
		t.Fatal("Basic scheme accepted")
	}
	if _, err := s.Authenticate(context.Background(), "Bearer", bootstrap.Generate()); apperr.KindOf(err) != apperr.KindUnauthenticated {
		t.Fatalf("wrong bootstrap token: %v", err)
	}
	if p, err := s.Authenticate(context.Background(), "Bearer", "eyJhbGciOi.some.jwt"); p != nil || err != nil {
		t.Fatal("a token of another kind must be left to other authenticators")
	}
	if err := s.Revoke(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(context.Background(), "Bearer", token); apperr.KindOf(err) != apperr.KindUnauthenticated {
		t.Fatalf("revoked token: %v", err)
	}
	fresh, err := s.Issue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Authenticate(context.Background(), "Bearer", fresh); p == nil {
		t.Fatal("issued token refused")
	}
	cancel()
	<-done

	var uses int
	_ = db.SystemRead(context.Background(), func(tx *store.Tx) error {
		return tx.QueryRow(context.Background(), `SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1 AND action = 'bootstrap.use'`, audit.Platform).Scan(&uses)
	})
	if uses != 3 {
		t.Fatalf("%d uses audited, want 3", uses)
	}
}
