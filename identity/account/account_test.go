package account_test

import (
	"context"
	"errors"
	"os"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/account"
	"github.com/xavyo/xavyo/identity/auth"
	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/password"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/identity/token"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/mail"
	"github.com/xavyo/xavyo/internal/mail/mailtest"
	"github.com/xavyo/xavyo/internal/principal"
	"github.com/xavyo/xavyo/internal/seal"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

var tokenRE = regexp.MustCompile(`token=([A-Za-z0-9_-]{43})`)

// TestTokens: the handler of an account event mails a token that works
// once, for its kind, at its tenant, until it expires; a retried event
// mails the same token; an event handled too late mails nothing; of two
// concurrent uses one wins.
func TestTokens(t *testing.T) {
	relay := mailtest.Start(t, false)
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		bg := context.Background()
		tenants := &tenant.Service{DB: db, Audit: audit.Discard}
		mk := func(name string) *tenant.Tenant {
			tn, err := tenants.Create(bg, tenant.CreateInput{Slug: name + "-" + uuid.NewString()[:8], Name: name})
			if err != nil {
				t.Fatal(err)
			}
			return tn
		}
		ta, tb := mk("a"), mk("b")
		hasher := password.NewHasher(password.Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 2)
		sealer, _ := seal.New(make([]byte, 32))
		tokens, err := token.New(token.Config{DB: db, Sealer: sealer, Tenants: tenants, IssuerBase: "http://127.0.0.1:8080"})
		if err != nil {
			t.Fatal(err)
		}
		sessions, _ := auth.NewSessions(tokens)
		dir := &directory.Service{DB: db, Audit: audit.Discard, Policies: tenants, Hasher: hasher, Sessions: sessions}
		sender, err := mail.New(mail.Config{Host: relay.Host, Port: relay.Port, From: "no-reply@id.example.test", TLS: mail.TLSNone})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		var mu sync.Mutex
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
		svc, err := account.New(account.Config{DB: db, Directory: dir, Sessions: sessions, Tenants: tenants, Mail: sender,
			TokenKey: sealer.Derive("test"), AdminURL: "http://127.0.0.1:8080", Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		ctx := principal.With(store.WithTenant(bg, ta.ID), &principal.Principal{TenantID: ta.ID, Kind: principal.KindUser, SubjectID: "admin",
			AdminRoles: []string{principal.RoleTenantAdmin}})
		email := "ada-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "@a.test"
		u, err := dir.CreateUser(ctx, directory.CreateUserInput{Email: email, Status: directory.StatusPendingVerification})
		if err != nil {
			t.Fatal(err)
		}
		sent := len(relay.Messages())
		// deliver handles an event as the outbox would, and returns the
		// token of the mail it sent ("" for none).
		deliver := func(e events.Event) string {
			t.Helper()
			if err := svc.OnEvent(bg, e); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			msgs := relay.Messages()
			if len(msgs) == sent {
				return ""
			}
			sent = len(msgs)
			return tokenRE.FindStringSubmatch(msgs[len(msgs)-1].Text)[1]
		}
		verify := events.Event{ID: uuid.Must(uuid.NewV7()), TenantID: ta.ID, Kind: account.EventVerify, SubjectID: u.ID.String(), CreatedAt: clock()}
		raw := deliver(verify)
		if raw == "" || deliver(verify) != raw {
			t.Fatal("a retried event did not mail the same token")
		}
		if _, err := svc.Check(bg, ta, account.KindReset, raw); !errors.Is(err, account.ErrBadToken) {
			t.Fatalf("a verification token as a reset token: %v", err)
		}
		if err := svc.SetPassword(bg, ta, account.KindReset, raw, "Analytical-engine-1843"); !errors.Is(err, account.ErrBadToken) {
			t.Fatalf("a verification token sets a password: %v", err)
		}
		if err := svc.VerifyEmail(bg, tb, raw); !errors.Is(err, account.ErrBadToken) {
			t.Fatalf("at another tenant: %v", err)
		}
		advance(25 * time.Hour)
		if err := svc.VerifyEmail(bg, ta, raw); !errors.Is(err, account.ErrBadToken) {
			t.Fatalf("an expired token: %v", err)
		}
		// A fresh one works, once.
		raw = deliver(events.Event{ID: uuid.Must(uuid.NewV7()), TenantID: ta.ID, Kind: account.EventVerify, SubjectID: u.ID.String(), CreatedAt: clock()})
		if err := svc.VerifyEmail(bg, ta, raw); err != nil {
			t.Fatal(err)
		}
		if got, _ := dir.GetUser(ctx, u.ID); got.Status != directory.StatusActive {
			t.Fatalf("status %s after verifying", got.Status)
		}
		if err := svc.VerifyEmail(bg, ta, raw); !errors.Is(err, account.ErrBadToken) {
			t.Fatalf("a token used twice: %v", err)
		}

		// A reset event handled after its link would have expired mails
		// nothing; an address that is no one's neither.
		late := events.Event{ID: uuid.Must(uuid.NewV7()), TenantID: ta.ID, Kind: account.EventReset, SubjectID: email, CreatedAt: clock().Add(-31 * time.Minute)}
		if deliver(late) != "" {
			t.Fatal("a late reset was mailed")
		}
		if deliver(events.Event{ID: uuid.Must(uuid.NewV7()), TenantID: ta.ID, Kind: account.EventReset, SubjectID: "nobody@a.test", CreatedAt: clock()}) != "" {
			t.Fatal("a reset for nobody was mailed")
		}
		// Two uses of one reset token at once: one wins.
		raw = deliver(events.Event{ID: uuid.Must(uuid.NewV7()), TenantID: ta.ID, Kind: account.EventReset, SubjectID: email, CreatedAt: clock()})
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, pw := range []string{"Difference-engine-1822", "Jacquard-loom-1804!"} {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = svc.SetPassword(bg, ta, account.KindReset, raw, pw) }()
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) || (!errors.Is(errs[0], account.ErrBadToken) && !errors.Is(errs[1], account.ErrBadToken)) {
			t.Fatalf("two uses at once: %v / %v", errs[0], errs[1])
		}
	})
}
