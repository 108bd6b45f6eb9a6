package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/apikey"
	"github.com/xavyo/xavyo/identity/password"
	"github.com/xavyo/xavyo/identity/token"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/dpop"
	"github.com/xavyo/xavyo/internal/dpop/dpoptest"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/seal"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

// BenchmarkArgon2idVerify is one password verification with the
// production parameters (m=19 MiB, t=2, p=1).
func BenchmarkArgon2idVerify(b *testing.B) {
	h := password.NewHasher(password.Default, 0)
	enc, err := h.Hash(context.Background(), "Correct-horse-battery")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, _ := h.Verify(context.Background(), "Correct-horse-battery", enc); !ok {
			b.Fatal("no match")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/verify")
}

type oneTenant map[uuid.UUID]string

func (t oneTenant) SlugOf(_ context.Context, id uuid.UUID) (string, error) {
	if s, ok := t[id]; ok {
		return s, nil
	}
	return "", apperr.NotFound("tenant")
}

func tokenService(b *testing.B, cacheSize int) (*token.Service, uuid.UUID) {
	b.Helper()
	db := testdb.SQLite(b)
	tid := seedTenant(b, db)
	sealer, _ := seal.New(make([]byte, 32))
	svc, err := token.New(token.Config{DB: db, Sealer: sealer, Tenants: oneTenant{tid: "bench"}, IssuerBase: "http://127.0.0.1:8080", CacheSize: cacheSize})
	if err != nil {
		b.Fatal(err)
	}
	return svc, tid
}

func claims(tid uuid.UUID) token.Claims {
	return token.Claims{Claims: jwt.Claims{Subject: uuid.NewString(), Audience: jwt.Audience{"http://127.0.0.1:8080/api/v1"},
		Expiry: jwt.NewNumericDate(time.Now().Add(time.Hour))}, TenantID: tid, Scope: "openid profile", SessionID: uuid.NewString(),
		Roles: []string{"tenant_admin"}}
}

// BenchmarkToken measures signing, verification without the cache (every
// token new to the verifier) and a verified-token cache hit, for ES256
// and RS256 keys.
func BenchmarkToken(b *testing.B) {
	for _, alg := range []string{token.ES256, token.RS256} {
		b.Run(alg, func(b *testing.B) {
			svc, tid := tokenService(b, 1)
			ctx := context.Background()
			if _, err := svc.Rotate(ctx, tid, alg); err != nil {
				b.Fatal(err)
			}
			b.Run("sign", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := svc.Mint(ctx, claims(tid)); err != nil {
						b.Fatal(err)
					}
				}
			})
			raws := make([]string, 512)
			for i := range raws {
				raws[i], _ = svc.Mint(ctx, claims(tid))
			}
			want := token.Expect{Audience: "http://127.0.0.1:8080/api/v1"}
			b.Run("verify-uncached", func(b *testing.B) {
				// A one-entry cache is cleared at every insert, and the
				// tokens alternate: every verification is a miss.
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, err := svc.Verify(ctx, raws[i%len(raws)], want); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		})
	}
	b.Run("verify-cache-hit", func(b *testing.B) {
		svc, tid := tokenService(b, 0)
		ctx := context.Background()
		raw, _ := svc.Mint(ctx, claims(tid))
		want := token.Expect{Audience: "http://127.0.0.1:8080/api/v1"}
		if _, err := svc.Verify(ctx, raw, want); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := svc.Verify(ctx, raw, want); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkLoginEndToEnd drives POST /api/v1/auth/login of a real xavyo
// process (embedded store) over loopback HTTP with concurrent clients.
func BenchmarkLoginEndToEnd(b *testing.B) {
	x := startBinary(b)
	// A user with a settled password in the default tenant.
	body := `{"email":"bench@example.com","password":"Correct-horse-battery-42"}`
	req, _ := http.NewRequest("POST", x.admin+"/api/v1/users", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+x.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Tenant-ID", x.tenantID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 201 {
		b.Fatalf("create user: %v %v", resp, err)
	}
	resp.Body.Close()
	login := []byte(`{"tenant":"default","login":"bench@example.com","password":"Correct-horse-battery-42"}`)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(x.admin+"/api/v1/auth/login", "application/json", bytes.NewReader(login))
			if err != nil {
				b.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("login: %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
}

// binary is a running xavyo process on the embedded store.
type binary struct {
	admin, agent, token, tenantID, dataDir string
}

// startBinary builds and starts xavyo serve; it stops with the benchmark.
func startBinary(b *testing.B) *binary {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "xavyo")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/xavyo").CombinedOutput(); err != nil {
		b.Fatalf("build: %v %s", err, out)
	}
	x := &binary{admin: freeAddr(b), agent: freeAddr(b), dataDir: filepath.Join(dir, "data")}
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "XAVYO_DATA_DIR="+x.dataDir, "XAVYO_ADMIN_ADDR="+x.admin,
		"XAVYO_AGENT_ADDR="+x.agent, "XAVYO_DEFAULT_ADMIN_PASSWORD=Initial-passphrase-1", "XAVYO_LOG_LEVEL=error")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() })
	x.admin, x.agent = "http://"+x.admin, "https://"+x.agent
	for i := 0; ; i++ {
		if resp, err := http.Get(x.admin + "/readyz"); err == nil {
			resp.Body.Close()
			break
		}
		if i > 200 {
			b.Fatal("server did not start")
		}
		time.Sleep(25 * time.Millisecond)
	}
	x.token = regexp.MustCompile(`xvb_[A-Za-z0-9_-]+`).FindString(out.String())
	tenants := mustJSON(b, x.admin+"/api/v1/tenants", x.token)
	x.tenantID = tenants["items"].([]any)[0].(map[string]any)["id"].(string)
	return x
}

func mustJSON(b *testing.B, url, bearer string) map[string]any {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		b.Fatal(err)
	}
	return v
}

func freeAddr(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// BenchmarkAPIKey measures checking an API key on the admin plane from
// the key cache (its public id found, its secret hashed and compared, its
// expiry and addresses checked, its use counted), beside a bearer token's
// verified-token cache hit in the same run.
func BenchmarkAPIKey(b *testing.B) {
	db := testdb.SQLite(b)
	tid := seedTenant(b, db)
	keys := &apikey.Service{DB: db, Audit: audit.Discard}
	ctx := principal.With(store.WithTenant(context.Background(), tid), &principal.Principal{TenantID: tid, Kind: principal.KindUser,
		SubjectID: uuid.NewString(), AuthMethod: principal.MethodPassword, AdminRoles: []string{principal.RoleTenantAdmin}})
	k, err := keys.Create(ctx, apikey.CreateInput{Name: "bench", Scopes: []string{"viewer"}, AllowedIPs: []string{"127.0.0.0/8"}})
	if err != nil {
		b.Fatal(err)
	}
	bg := context.Background()
	if _, _, err := keys.Check(bg, k.Secret, "127.0.0.1"); err != nil {
		b.Fatal(err)
	}
	b.Run("key-cache-hit", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := keys.Check(bg, k.Secret, "127.0.0.1"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("bearer-cache-hit", func(b *testing.B) {
		svc, tid := tokenService(b, 0)
		raw, _ := svc.Mint(bg, claims(tid))
		want := token.Expect{Audience: "http://127.0.0.1:8080/api/v1"}
		if _, err := svc.Verify(bg, raw, want); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := svc.Verify(bg, raw, want); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkDPoP measures what a DPoP-bound call adds at the gateway: the
// proof's check (parse, ES256 verification, thumbprint) alone, and with
// its jti recorded in the embedded store (CheckProof, one transaction),
// beside a bearer token's cached verification (BenchmarkToken).
func BenchmarkDPoP(b *testing.B) {
	svc, tid := tokenService(b, 0)
	key := dpoptest.New()
	const target = "https://127.0.0.1:8443/t/bench/mcp"
	proofs := make([]string, 4096)
	for i := range proofs {
		proofs[i] = key.Proof("POST", target, "tok", "", nil)
	}
	b.Run("check", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := dpop.Check(proofs[i%len(proofs)], "POST", target, "tok", time.Now()); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("check-and-record", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			// A fresh proof each time (a replay is refused).
			if _, err := svc.CheckProof(ctx, tid, key.Proof("POST", target, "tok", "", nil), "POST", target, "tok"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sign-proof", func(b *testing.B) {
		// The client's side, for scale (not the gateway's cost).
		b.ReportAllocs()
		for b.Loop() {
			_ = key.Proof("POST", target, "tok", "", nil)
		}
	})
}
