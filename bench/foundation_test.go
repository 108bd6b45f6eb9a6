// Package bench holds benchmarks of xavyo's hot paths. Results, with date
// and machine, go to docs/benchmarks.md.
package bench

import (
	"context"
	"os"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

var flavors = []store.Flavor{store.SQLite, store.Postgres}

func seedTenant(b *testing.B, db *store.DB) uuid.UUID {
	b.Helper()
	id := uuid.Must(uuid.NewV7())
	ctx := context.Background()
	err := db.SystemTx(ctx, func(tx *store.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO tenants (id, slug, name, status, settings, created_at, updated_at, version)
			VALUES ($1, $2, 'Bench', 'active', '{}', $3, $3, 1)`, id, "b-"+id.String()[24:], store.Now())
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return id
}

// BenchmarkInTenantTx measures one tenant-scoped read transaction: begin,
// set the tenant, one indexed read, commit.
func BenchmarkInTenantTx(b *testing.B) {
	for _, f := range flavors {
		b.Run(f.String(), func(b *testing.B) {
			db := testdb.Open(b, f)
			tid := seedTenant(b, db)
			ctx := store.WithTenant(context.Background(), tid)
			// One event row to find by index.
			if err := db.InTenantTx(ctx, func(tx *store.Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO outbox (id, tenant_id, kind, subject_id, version, payload, created_at, next_attempt_at)
					VALUES ($1, $2, 'bench', 's', 1, '{}', $3, $3)`, uuid.Must(uuid.NewV7()), tid, store.Now())
				return err
			}); err != nil {
				b.Fatal(err)
			}
			for _, mode := range []struct {
				name string
				run  func(context.Context, func(*store.Tx) error) error
			}{{"read", db.InTenantRead}, {"write", db.InTenantTx}} {
				b.Run(mode.name, func(b *testing.B) {
					b.ReportAllocs()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							err := mode.run(ctx, func(tx *store.Tx) error {
								var n int
								return tx.QueryRow(ctx, `SELECT COUNT(*) FROM outbox WHERE tenant_id = $1 AND created_at > $2`, tid, store.Now().AddDate(-1, 0, 0)).Scan(&n)
							})
							if err != nil {
								b.Error(err)
								return
							}
						}
					})
				})
			}
		})
	}
}

// BenchmarkAuditAppend measures durable audit appends: callers wait until
// their record is committed. With many concurrent callers the sequencer
// commits them in groups; "serial" is one caller at a time (a batch of
// one per commit), the baseline the grouping is measured against.
func BenchmarkAuditAppend(b *testing.B) {
	for _, f := range flavors {
		b.Run(f.String(), func(b *testing.B) {
			db := testdb.Open(b, f)
			seq, err := audit.New(audit.Config{DB: db})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { _ = seq.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			tid := uuid.Must(uuid.NewV7())
			entry := audit.Entry{TenantID: tid, ActorKind: "nhi", ActorID: "agent-1", Action: "mcp.tools.call",
				TargetKind: "tool", TargetID: "github__create_issue", Outcome: audit.OutcomeSuccess,
				Details: map[string]any{"latency_ms": 12, "decision": "allow"}}
			b.Run("serial", func(b *testing.B) {
				for b.Loop() {
					if err := seq.AppendSync(ctx, entry); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
			})
			b.Run("parallel-64", func(b *testing.B) {
				b.SetParallelism(32) // 32 × GOMAXPROCS callers
				var n atomic.Int64
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := seq.AppendSync(ctx, entry); err != nil {
							b.Error(err)
							return
						}
						n.Add(1)
					}
				})
				b.ReportMetric(float64(n.Load())/b.Elapsed().Seconds(), "appends/s")
			})
		})
	}
}
