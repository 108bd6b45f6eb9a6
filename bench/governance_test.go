package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xavyo/xavyo/identity/directory"
	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/internal/audit"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/governance"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

// The generated tenant of `make bench-governance`.
const (
	genUsers        = 10_000
	genGroups       = 500
	genRoles        = 1_000 // 200 chains of depth 5
	genApps         = 100
	genEntitlements = 50_000
	genAssignments  = 500_000
)

var gov struct {
	once   sync.Once
	db     *store.DB
	tenant uuid.UUID
	users  []uuid.UUID
	err    error
}

// seed generates the tenant on PostgreSQL with set-based SQL as the
// schema owner (the application role then reads it through RLS).
func seed(b *testing.B) (*store.DB, uuid.UUID, []uuid.UUID) {
	b.Helper()
	gov.once.Do(func() {
		ctx := context.Background()
		owner, err := store.Open(ctx, store.Config{URL: testdb.OwnerURL(b)})
		if err != nil {
			gov.err = err
			return
		}
		defer owner.Close()
		tid := uuid.Must(uuid.NewV7())
		start := time.Now()
		stmts := []string{
			`INSERT INTO tenants (id, slug, name, status, settings, created_at, updated_at, version) VALUES ($1::uuid, 'gov-bench-' || substr(CAST($1 AS text), 25), 'Bench', 'active', '{}', now(), now(), 1)`,
			`INSERT INTO users (tenant_id, id, email, email_normalized, status, attributes, admin_roles, created_at, updated_at, version)
			 SELECT $1, gen_random_uuid(), 'u' || i || '@bench.test', 'u' || i || '@bench.test', 'active', '{}', '[]', now(), now(), 1 FROM generate_series(1, ` + fmt.Sprint(genUsers) + `) i`,
			`INSERT INTO groups (tenant_id, id, name, created_at, updated_at, version)
			 SELECT $1, gen_random_uuid(), 'group-' || i, now(), now(), 1 FROM generate_series(1, ` + fmt.Sprint(genGroups) + `) i`,
			`INSERT INTO group_members (tenant_id, group_id, user_id, created_at)
			 SELECT $1, g.id, u.id, now() FROM (SELECT id, row_number() OVER () AS n FROM users WHERE tenant_id = $1) u
			 JOIN (SELECT id, row_number() OVER () - 1 AS n FROM groups WHERE tenant_id = $1) g ON g.n IN (u.n % ` + fmt.Sprint(genGroups) + `, (u.n * 7) % ` + fmt.Sprint(genGroups) + `)`,
			`INSERT INTO applications (tenant_id, id, key, name, type, status, created_at, updated_at, version)
			 SELECT $1, gen_random_uuid(), 'app-' || i, 'App ' || i, 'mcp_server', 'active', now(), now(), 1 FROM generate_series(1, ` + fmt.Sprint(genApps) + `) i`,
			`INSERT INTO entitlements (tenant_id, id, application_id, kind, key, name, risk_level, classification, approval_state, created_at, updated_at, version)
			 SELECT $1, gen_random_uuid(), a.id, 'mcp_tool', 'tool-' || i, 'Tool ' || i, 'medium', 'internal', 'approved', now(), now(), 1
			 FROM (SELECT id, row_number() OVER () - 1 AS n FROM applications WHERE tenant_id = $1) a,
			      generate_series(1, ` + fmt.Sprint(genEntitlements/genApps) + `) i`,
		}
		for _, q := range stmts {
			if err := owner.SystemTx(ctx, func(tx *store.Tx) error { _, err := tx.Exec(ctx, q, tid); return err }); err != nil {
				gov.err = fmt.Errorf("%w in %.80s", err, q)
				return
			}
		}
		// Roles: 200 chains of depth 5 (each role's parent is the previous
		// in its chain), 10 entitlements each, and an inducement from each
		// chain's leaf to the next chain's root within blocks of ten chains
		// (a held role brings at most 50 roles).
		err = owner.SystemTx(ctx, func(tx *store.Tx) error {
			var roles []uuid.UUID
			for c := 0; c < genRoles/5; c++ {
				var parent *uuid.UUID
				for d := 0; d < 5; d++ {
					id := uuid.Must(uuid.NewV7())
					if _, err := tx.Exec(ctx, `INSERT INTO roles (tenant_id, id, key, name, type, parent_id, created_at, updated_at, version)
						VALUES ($1, $2, $3, $3, 'business', $4, now(), now(), 1)`, tid, id, fmt.Sprintf("role-%d-%d", c, d), parent); err != nil {
						return err
					}
					roles = append(roles, id)
					parent = &id
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO role_entitlements (tenant_id, role_id, entitlement_id, created_at)
				SELECT $1, r.id, e.id, now() FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM roles WHERE tenant_id = $1) r
				JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM entitlements WHERE tenant_id = $1) e ON e.n / 10 = r.n`, tid); err != nil {
				return err
			}
			for c := 0; c+1 < genRoles/5; c++ {
				if c%10 == 9 {
					continue
				}
				if _, err := tx.Exec(ctx, `INSERT INTO role_inducements (tenant_id, role_id, induced_role_id, created_at) VALUES ($1, $2, $3, now())`,
					tid, roles[c*5+4], roles[(c+1)*5]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			gov.err = err
			return
		}
		// 500k assignments: 90% entitlements to users, 8% roles to users, 2% roles to groups.
		err = owner.SystemTx(ctx, func(tx *store.Tx) error {
			_, err := tx.Exec(ctx, `
				WITH u AS (SELECT array_agg(id) a FROM users WHERE tenant_id = $1),
				     e AS (SELECT array_agg(id) a FROM entitlements WHERE tenant_id = $1),
				     r AS (SELECT array_agg(id) a FROM roles WHERE tenant_id = $1),
				     g AS (SELECT array_agg(id) a FROM groups WHERE tenant_id = $1)
				INSERT INTO assignments (tenant_id, id, subject_type, subject_id, target_type, target_id, source, constraints, created_at, updated_at, version, dedup_key)
				SELECT $1, gen_random_uuid(),
				       CASE WHEN i % 50 = 0 THEN 'group' ELSE 'user' END,
				       CASE WHEN i % 50 = 0 THEN g.a[1 + i % `+fmt.Sprint(genGroups)+`] ELSE u.a[1 + (i::bigint * 7919) % `+fmt.Sprint(genUsers)+`] END,
				       CASE WHEN i % 10 = 0 THEN 'role' ELSE 'entitlement' END,
				       CASE WHEN i % 10 = 0 THEN r.a[1 + (i::bigint * 31) % `+fmt.Sprint(genRoles)+`] ELSE e.a[1 + (i::bigint * 104729) % `+fmt.Sprint(genEntitlements)+`] END,
				       'direct', '{}', now(), now(), 1, 'generated:' || i
				FROM generate_series(1, `+fmt.Sprint(genAssignments)+`) i, u, e, r, g`, tid)
			return err
		})
		if err != nil {
			gov.err = err
			return
		}
		b.Logf("generated the tenant in %v", time.Since(start))
		// Kept open for the whole process: later benchmarks reuse it.
		if gov.db, err = store.Open(ctx, store.Config{URL: testdb.AppURL(b)}); err != nil {
			gov.err = err
			return
		}
		gov.tenant = tid
		gov.users, gov.err = idList(store.WithTenant(ctx, tid), gov.db, `SELECT id FROM users WHERE tenant_id = $1`, tid)
	})
	if gov.err != nil {
		b.Fatal(gov.err)
	}
	return gov.db, gov.tenant, gov.users
}

// engine is a decision engine on db that reads the directory and the
// NHIs through their stores.
func engine(db *store.DB) *governance.Engine {
	return &governance.Engine{DB: db, People: &directory.Service{DB: db}, Agents: &nhi.Service{DB: db}}
}

// BenchmarkGovernanceSnapshotBuild builds the generated tenant's snapshot.
func BenchmarkGovernanceSnapshotBuild(b *testing.B) {
	db, tid, _ := seed(b)
	var before, after runtime.MemStats
	var keep *governance.Snapshot
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&before)
		e := engine(db)
		s, err := e.Snapshot(context.Background(), tid)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		keep = s
	}
	st := keep.Stats()
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-retained")
	b.ReportMetric(float64(st.Assignments), "assignments")
}

// BenchmarkGovernanceEffectiveCold computes one subject's effective
// access from a cold per-subject cache; it reports the p99.
func BenchmarkGovernanceEffectiveCold(b *testing.B) {
	db, tid, users := seed(b)
	e := engine(db)
	s, err := e.Snapshot(context.Background(), tid)
	if err != nil {
		b.Fatal(err)
	}
	var took []time.Duration
	i := 0
	for b.Loop() {
		if i == len(users) { // every subject is warm: start over on a fresh snapshot
			b.StopTimer()
			s, _ = e.Refresh(context.Background(), tid)
			i = 0
			b.StartTimer()
		}
		t0 := time.Now()
		_ = s.Effective(governance.SubjectUser, users[i])
		took = append(took, time.Since(t0))
		i++
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkGovernanceAuthorize decides from a warm snapshot.
func BenchmarkGovernanceAuthorize(b *testing.B) {
	db, tid, users := seed(b)
	e := engine(db)
	s, err := e.Snapshot(context.Background(), tid)
	if err != nil {
		b.Fatal(err)
	}
	// Questions whose answer is allow, for warm subjects.
	var reqs []governance.Request
	r := rand.New(rand.NewPCG(1, 2))
	for len(reqs) < 1000 {
		u := users[r.IntN(len(users))]
		grants := s.Effective(governance.SubjectUser, u)
		if len(grants) == 0 {
			continue
		}
		reqs = append(reqs, governance.Request{Subject: governance.Subject{Type: governance.SubjectUser, ID: u}, EntitlementID: grants[r.IntN(len(grants))].EntitlementID})
	}
	now := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d := s.Decide(&reqs[i%len(reqs)], now)
		if d.Decision != governance.Allow {
			b.Fatalf("decision %+v", d)
		}
		i++
	}
}

var sodSeed struct {
	once  sync.Once
	rules []uuid.UUID // an entitlement named by some rule, per rule
	err   error
}

// seedSoD adds 1,000 rules to the generated tenant: 800 conflicts (one
// entitlement against one to three) and 200 cardinality rules (at most 2
// of 5), over entitlements drawn at random.
func seedSoD(b *testing.B, db *store.DB, tid uuid.UUID) []uuid.UUID {
	b.Helper()
	sodSeed.once.Do(func() {
		ctx := store.WithTenant(context.Background(), tid)
		var ents []uuid.UUID
		if ents, sodSeed.err = idList(ctx, db, `SELECT id FROM entitlements WHERE tenant_id = $1 ORDER BY id`, tid); sodSeed.err != nil {
			return
		}
		r := rand.New(rand.NewPCG(3, 4))
		pick := func(n int) []uuid.UUID {
			out := make([]uuid.UUID, n)
			for i := range out {
				out[i] = ents[r.IntN(len(ents))]
			}
			return out
		}
		sodSeed.err = db.InTenantTx(ctx, func(tx *store.Tx) error {
			for i := range 1000 {
				kind, left, right, max := "conflict", pick(1), pick(1+r.IntN(3)), 0
				if i%5 == 4 {
					kind, left, right, max = "cardinality", pick(5), nil, 2
				}
				lj, _ := json.Marshal(left)
				rj, _ := json.Marshal(append([]uuid.UUID{}, right...))
				if _, err := tx.Exec(ctx, `INSERT INTO sod_rules (tenant_id, id, key, name, severity, kind, left_ids, right_ids, max_held, enabled, created_at, updated_at, version)
					VALUES ($1, $2, $3, $3, 'high', $4, $5, $6, $7, true, now(), now(), 1)`, tid, uuid.Must(uuid.NewV7()), fmt.Sprintf("rule-%d", i), kind,
					string(lj), string(rj), max); err != nil {
					return err
				}
				sodSeed.rules = append(sodSeed.rules, left[0])
			}
			return nil
		})
	})
	if sodSeed.err != nil {
		b.Fatal(sodSeed.err)
	}
	return sodSeed.rules
}

// BenchmarkGovernanceSoDCheck is the preventive separation-of-duties
// check of one new assignment on the generated tenant with 1,000 rules,
// as an assignment runs it: in a transaction, reading the subject's
// assignments and group memberships from the database, expanding roles
// with the snapshot, evaluating every rule the new target touches. Half
// the targets are an entitlement some rule names, half a role (bringing
// up to 500 entitlements). It reports p50 and p99.
func BenchmarkGovernanceSoDCheck(b *testing.B) {
	db, tid, users := seed(b)
	ruleEnts := seedSoD(b, db, tid)
	e := engine(db)
	ctx := store.WithTenant(context.Background(), tid)
	snap, err := e.Snapshot(ctx, tid)
	if err != nil {
		b.Fatal(err)
	}
	roles, err := idList(ctx, db, `SELECT id FROM roles WHERE tenant_id = $1`, tid)
	if err != nil {
		b.Fatal(err)
	}
	gov := &governance.Service{DB: db, Engine: e, Audit: audit.Discard, People: e.People, Agents: e.Agents}
	r := rand.New(rand.NewPCG(5, 6))
	var took []time.Duration
	refused := 0
	for b.Loop() {
		user := users[r.IntN(len(users))]
		typ, target := "entitlement", ruleEnts[r.IntN(len(ruleEnts))]
		if r.IntN(2) == 1 {
			typ, target = "role", roles[r.IntN(len(roles))]
		}
		t0 := time.Now()
		err := db.InTenantRead(ctx, func(tx *store.Tx) error {
			return gov.CheckSoD(ctx, tx, snap, governance.SubjectUser, user, typ, target)
		})
		took = append(took, time.Since(t0))
		var refusal *governance.SoDRefusal
		if errors.As(err, &refusal) {
			refused++
		} else if err != nil {
			b.Fatal(err)
		}
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(refused)/float64(len(took)), "refused-ratio")
}

// idList reads a column of IDs in the tenant of ctx.
func idList(ctx context.Context, db *store.DB, q string, args ...any) ([]uuid.UUID, error) {
	var out []uuid.UUID
	err := db.InTenantRead(ctx, func(tx *store.Tx) error {
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id uuid.UUID
			if err := rows.Scan(&id); err != nil {
				return err
			}
			out = append(out, id)
		}
		return rows.Err()
	})
	return out, err
}
