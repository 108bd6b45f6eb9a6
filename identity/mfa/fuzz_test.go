package mfa

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/mfa/mfatest"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/seal"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

// nopAudit takes audit records and keeps none (the fuzz targets check the
// ceremonies, not the log).
type nopAudit struct{}

func (nopAudit) AppendSync(context.Context, audit.Entry) error      { return nil }
func (nopAudit) InTx(context.Context, *store.Tx, audit.Entry) error { return nil }

func fuzzService(f *testing.F) (*Service, context.Context) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	sealer, err := seal.New(key)
	if err != nil {
		f.Fatal(err)
	}
	s := &Service{DB: testdb.SQLite(f), Sealer: sealer, Audit: nopAudit{},
		RP: RelyingParty{ID: "localhost", Origins: []string{"http://localhost:8080"}}}
	return s, store.WithTenant(context.Background(), uuid.Must(uuid.NewV7()))
}

// FuzzCeremonyState: a ceremony state that is not one sealed here, for
// this tenant and step, never opens.
func FuzzCeremonyState(f *testing.F) {
	s, ctx := fuzzService(f)
	tid, _ := store.TenantFrom(ctx)
	c, err := s.BeginPasskey(ctx, "Example")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(c.State)
	f.Add(c.State[:len(c.State)-1])
	f.Add("")
	f.Fuzz(func(t *testing.T, state string) {
		if _, err := s.open(tid, purposeRegister, state); err == nil {
			t.Fatalf("a passkey ceremony opened as a registration: %q", state)
		}
		if _, err := s.open(uuid.Must(uuid.NewV7()), purposePasskey, state); err == nil {
			t.Fatalf("a ceremony opened at another tenant: %q", state)
		}
		if st, err := s.open(tid, purposePasskey, state); err == nil && state != c.State {
			t.Fatalf("a ceremony we did not seal opened: %q %+v", state, st)
		}
	})
}

// FuzzFinishAssertion: whatever the authenticator's answer to a passkey
// ceremony, FinishAssertion does not panic, names only the credential's
// owner, and accepts at most one answer per challenge.
func FuzzFinishAssertion(f *testing.F) {
	s, ctx := fuzzService(f)
	user := uuid.Must(uuid.NewV7())
	a := &mfatest.Authenticator{Origin: "http://localhost:8080"}
	reg, err := s.BeginRegistration(ctx, user, "ada@example.com", "Ada", "Example", tenant.MFAPolicy{})
	if err != nil {
		f.Fatal(err)
	}
	answer, _, err := a.Create(reg.PublicKey, mfatest.Fault{})
	if err != nil {
		f.Fatal(err)
	}
	if _, _, err := s.FinishRegistration(ctx, user, reg.State, answer, "Laptop", tenant.MFAPolicy{}); err != nil {
		f.Fatal(err)
	}
	c, err := s.BeginPasskey(ctx, "Example")
	if err != nil {
		f.Fatal(err)
	}
	good, err := a.Get(c.PublicKey, mfatest.Fault{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"","rawId":"","type":"public-key","response":{}}`))
	var m map[string]any
	_ = json.Unmarshal(good, &m)
	m["response"].(map[string]any)["signature"] = "AAAA"
	bad, _ := json.Marshal(m)
	f.Add(bad)
	var accepted atomic.Int32
	f.Fuzz(func(t *testing.T, answer []byte) {
		who, _, err := s.FinishAssertion(ctx, uuid.Nil, c.State, answer)
		if err != nil {
			return
		}
		if who != user {
			t.Fatalf("an answer named %s, not the credential's owner", who)
		}
		if accepted.Add(1) > 1 {
			t.Fatalf("a second answer accepted for one challenge: %s", answer)
		}
	})
}
