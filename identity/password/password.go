// Package password hashes and checks passwords with argon2id and
// evaluates per-tenant password policies.
//
// Parameters: m = 19 MiB, t = 2, p = 1 — one of OWASP's equivalent
// argon2id configurations (Password Storage Cheat Sheet), the one that
// trades memory for a second pass: a hash holds 19 MiB rather than the
// 46 MiB of m = 46 MiB, t = 1, which keeps the server's peak small and
// lets more sign-ins hash at once. Hashes are PHC strings, so other
// parameters can be set later and old hashes upgrade at the next login. Hashing is memory-hard: a semaphore bounds how many run at
// once so a login burst cannot exhaust memory.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id parameters.
type Params struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
	SaltLen   int
	KeyLen    uint32
}

// Default is OWASP's second argon2id configuration (m = 19 MiB, t = 2).
var Default = Params{MemoryKiB: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// MaxLength bounds a password in bytes; longer input is refused before
// hashing so it cannot be used to burn CPU.
const MaxLength = 1024

// Hasher hashes and verifies passwords.
type Hasher struct {
	params Params
	sem    chan struct{}
	dummy  string
	// verifications counts Verify calls, dummy ones included (a metric,
	// and the proof that unknown users cost a verification too).
	verifications atomic.Int64
	garbage       atomic.Bool // a hash ended since the last collection
}

// NewHasher returns a Hasher with params, running at most concurrency
// hashes at once (default: GOMAXPROCS).
func NewHasher(params Params, concurrency int) *Hasher {
	if concurrency <= 0 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	h := &Hasher{params: params, sem: make(chan struct{}, concurrency)}
	// The dummy is verified against at full cost but never matches: a
	// random key in the current parameters does, without hashing anything
	// at start-up (one hash is the parameters' memory: 19 MiB by default).
	salt, key := make([]byte, params.SaltLen), make([]byte, params.KeyLen)
	if _, err := rand.Read(salt); err != nil {
		panic(err)
	}
	if _, err := rand.Read(key); err != nil {
		panic(err)
	}
	h.dummy = encode(params, salt, key)
	return h
}

func encode(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// ErrTooLong is returned for passwords over MaxLength bytes.
var ErrTooLong = errors.New("password: too long")

// acquire starts a hash. A hash's memory (19 MiB) is garbage once it
// ends, and until the next collection a new hash takes fresh memory
// rather than reuse it: sign-in then password change, or a change's
// verification then its new hash, would hold two or three hashes' memory
// at once. So while the heap is small next to a hash (a few of them: a
// server that just started, a small tenant), a hash that starts alone
// after another ended has the collector run first (about a millisecond
// beside the hash's tens), and the last hash to end has one run beside,
// so that the collector's next target is not set by a heap that held a
// hash. A large heap (a big decision snapshot) is left to the pacer: a
// hash is small next to it, and a full collection of it is not cheap.
func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if len(h.sem) == 1 && h.garbage.CompareAndSwap(true, false) && h.smallHeap() {
		runtime.GC()
	}
	return nil
}

func (h *Hasher) release() {
	h.garbage.Store(true)
	<-h.sem
	if len(h.sem) == 0 && h.smallHeap() {
		go runtime.GC()
	}
}

// smallHeap reports whether the live heap is under four hashes' memory.
func (h *Hasher) smallHeap() bool {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return false
	}
	return sample[0].Value.Uint64() < 4*uint64(h.params.MemoryKiB)*1024
}

// Hash returns the PHC string of pw.
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	if len(pw) > MaxLength {
		return "", ErrTooLong
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	return h.hash([]byte(pw))
}

func (h *Hasher) hash(pw []byte) (string, error) {
	p := h.params
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return encode(p, salt, argon2.IDKey(pw, salt, p.Time, p.MemoryKiB, p.Threads, p.KeyLen)), nil
}

// Verify reports whether pw matches encoded, and whether encoded should be
// rehashed because its parameters are not the current ones. An empty
// encoded (unknown user, no password set) verifies against a dummy hash
// at the same cost and returns false.
func (h *Hasher) Verify(ctx context.Context, pw, encoded string) (ok, rehash bool, err error) {
	h.verifications.Add(1)
	if len(pw) > MaxLength {
		pw = pw[:MaxLength] // same cost as a refusal-worthy guess; never matches a real hash of a longer input
	}
	target, real := encoded, encoded != ""
	if !real {
		target = h.dummy
	}
	p, salt, key, perr := decode(target)
	if perr != nil {
		// A corrupt stored hash must not be distinguishable by timing either.
		p, salt, key, _ = decode(h.dummy)
		real = false
	}
	if err := h.acquire(ctx); err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(key)))
	h.release()
	match := subtle.ConstantTimeCompare(got, key) == 1 && real
	return match, match && p != h.params, nil
}

// Verifications returns how many verifications ran.
func (h *Hasher) Verifications() int64 { return h.verifications.Load() }

func decode(s string) (Params, []byte, []byte, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return Params{}, nil, nil, errors.New("password: not an argon2id hash")
	}
	var p Params
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return Params{}, nil, nil, errors.New("password: bad parameters")
		}
		switch k {
		case "m":
			p.MemoryKiB = uint32(n)
		case "t":
			p.Time = uint32(n)
		case "p":
			p.Threads = uint8(n)
		}
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(key) < 16 || p.Time == 0 || p.Threads == 0 ||
		p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > 1<<21 || p.Time > 16 {
		return Params{}, nil, nil, errors.New("password: bad hash")
	}
	p.SaltLen, p.KeyLen = len(salt), uint32(len(key))
	return p, salt, key, nil
}
