package password_test

import (
	"context"
	"strings"
	"testing"

	"github.com/xavyo/xavyo/identity/password"
	"github.com/xavyo/xavyo/internal/apperr"
)

// fast keeps unit tests quick; production uses password.Default.
var fast = password.Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestHashVerify(t *testing.T) {
	ctx := context.Background()
	h := password.NewHasher(fast, 2)
	enc, err := h.Hash(ctx, "correct horse")
	if err != nil || !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("%q %v", enc, err)
	}
	again, _ := h.Hash(ctx, "correct horse")
	if again == enc {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	for pw, want := range map[string]bool{"correct horse": true, "correct hors": false, "Correct horse": false, "": false} {
		ok, rehash, err := h.Verify(ctx, pw, enc)
		if err != nil || ok != want || rehash {
			t.Errorf("%q: ok=%v rehash=%v err=%v", pw, ok, rehash, err)
		}
	}
	stronger := password.NewHasher(password.Params{MemoryKiB: 128, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}, 1)
	if ok, rehash, _ := stronger.Verify(ctx, "correct horse", enc); !ok || !rehash {
		t.Fatal("an old-parameter hash must verify and ask for a rehash")
	}
	if _, err := h.Hash(ctx, strings.Repeat("x", password.MaxLength+1)); err == nil {
		t.Fatal("an oversize password was hashed")
	}
}

func TestUnknownUserAndCorruptHashCostAVerification(t *testing.T) {
	ctx := context.Background()
	h := password.NewHasher(fast, 1)
	before := h.Verifications()
	for _, stored := range []string{"", "$argon2id$v=19$m=1,t=1,p=1$AAAA$AAAA", "$2a$10$bcrypt", "plain", "$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5"} {
		ok, _, err := h.Verify(ctx, "anything", stored)
		if ok || err != nil {
			t.Fatalf("%q verified: %v %v", stored, ok, err)
		}
	}
	if h.Verifications()-before != 5 {
		t.Fatal("verifications not counted")
	}
}

func TestPolicy(t *testing.T) {
	p := password.Policy{MinLength: 12, RequireUpper: true, RequireLower: true, RequireDigit: true, RequireSymbol: true, History: 3}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := map[string]bool{
		"Sh0rt!":                    false,
		"alllowercase123!":          false,
		"ALLUPPERCASE123!":          false,
		"NoDigitsHere!!":            false,
		"NoSymbols12345":            false,
		"Good-Passw0rd!":            true,
		"Ünïcödé-Pässw0rd":          true,
		"Contains-Lovelace-1":       false,
		strings.Repeat("Aa1!", 300): false,
		"twelve-chars-but-1-Upper":  true,
	}
	for pw, ok := range cases {
		err := p.Check(pw, "ada@example.com", "Ada", "Lovelace")
		if (err == nil) != ok {
			t.Errorf("%q: err=%v, want ok=%v", pw, err, ok)
		}
		if err != nil && apperr.KindOf(err) != apperr.KindInvalidArgument {
			t.Errorf("%q: kind %v", pw, apperr.KindOf(err))
		}
	}
	for _, bad := range []password.Policy{{MinLength: 4}, {MinLength: 12, History: 99}, {MinLength: 12, MaxAgeDays: -1}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// FuzzVerifyStoredHash: whatever a stored hash holds, verification never
// panics, never matches a corrupt hash, and never takes absurd parameters.
func FuzzVerifyStoredHash(f *testing.F) {
	h := password.NewHasher(fast, 1)
	enc, _ := h.Hash(context.Background(), "pw")
	f.Add(enc)
	f.Add("$argon2id$v=19$m=4294967295,t=4294967295,p=255$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5")
	f.Add("$argon2id$v=19$m=,t=,p=$$")
	f.Fuzz(func(t *testing.T, stored string) {
		ok, _, err := h.Verify(context.Background(), "pw", stored)
		if err != nil {
			t.Fatal(err)
		}
		if ok && stored != enc && !strings.HasPrefix(stored, "$argon2id$v=19$m=64,t=1,p=1$") {
			t.Fatalf("matched %q", stored)
		}
	})
}
