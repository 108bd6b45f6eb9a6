package devtls_test

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"testing"

	"github.com/xavyo/xavyo/internal/devtls"
	"github.com/xavyo/xavyo/internal/seal"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

func TestEnsureIsStableAndReissuesForNewHosts(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		// Each backend's package database is shared: start clean.
		if err := db.SystemTx(ctx, func(tx *store.Tx) error {
			_, err := tx.Exec(ctx, `DELETE FROM system_secrets WHERE name LIKE 'agent_dev_%'`)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		s, _, err := seal.Load("", t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		a, err := devtls.Ensure(ctx, db, s, []string{"127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		b, err := devtls.Ensure(ctx, db, s, []string{"127.0.0.1"})
		if err != nil || !a.Equal(b) {
			t.Fatalf("second start changed the certificate: %v", err)
		}
		leaf, _ := x509.ParseCertificate(b.Server.Certificate[0])
		pool := x509.NewCertPool()
		pool.AddCert(b.CA)
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
			t.Fatal(err)
		}
		c, err := devtls.Ensure(ctx, db, s, []string{"gw.example.test"})
		if err != nil || c.Equal(b) || !c.CA.Equal(b.CA) {
			t.Fatalf("new host: reissued=%v same CA=%v err=%v", !c.Equal(b), c.CA.Equal(b.CA), err)
		}
		leaf, _ = x509.ParseCertificate(c.Server.Certificate[0])
		if err := leaf.VerifyHostname("gw.example.test"); err != nil {
			t.Fatal(err)
		}
		other, _, _ := seal.Load("", t.TempDir())
		if _, err := devtls.Ensure(ctx, db, other, nil); !errors.Is(err, seal.ErrWrongKey) {
			t.Fatalf("wrong KEK: %v", err)
		}
	})
}
