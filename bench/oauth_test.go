package bench

import (
	"testing"

	"github.com/xavyo/xavyo/identity/oauth"
	"github.com/xavyo/xavyo/identity/token"
	"github.com/xavyo/xavyo/internal/seal"
)

// BenchmarkClientCredentialsInProcess is the token endpoint's work
// without HTTP: authenticate the client (secret hash lookup) and mint.
func BenchmarkClientCredentialsInProcess(b *testing.B) {
	f := newAgentFixture(b, "oauth-bench")
	db, ctx, tenants, nhis, a := f.db, f.ctx, f.tenants, f.nhis, f.agent
	sealer, _ := seal.New(make([]byte, 32))
	tokens, _ := token.New(token.Config{DB: db, Sealer: sealer, Tenants: tenants, IssuerBase: "http://127.0.0.1:8080"})
	srv := oauth.New(oauth.Config{Tokens: tokens, NHIs: nhis, Tenants: tenants, DB: db, AdminURL: "http://127.0.0.1:8080", AgentURL: "https://127.0.0.1:8443"})
	b.Run("authenticate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := srv.Authenticate(ctx, a.ClientID, a.ClientSecret, "127.0.0.1"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("authenticate+mint", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, err := srv.Authenticate(ctx, a.ClientID, a.ClientSecret, "127.0.0.1")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := srv.ClientCredentials(ctx, "oauth-bench", c, nil, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
