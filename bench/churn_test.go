package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/governance"
	"github.com/xavyo/xavyo/internal/store"
)

// BenchmarkGovernanceChurn measures decisions while the tenant changes: on
// the generated tenant (500k assignments), D deciders call Engine.Snapshot
// and Decide in a loop for CHURN_DUR (default 15 s) while one writer
// inserts R assignments a second, each followed by the invalidation its
// commit causes on this replica. It reports how many decisions were made
// and their p50, p99 and maximum latency (snapshot wait included): the
// figures of issue #20's first table, for R in 0, 1, 10, 100 and D in 1, 8.
func BenchmarkGovernanceChurn(b *testing.B) {
	db, tid, users := seed(b)
	ents, err := idList(store.WithTenant(context.Background(), tid), db, `SELECT id FROM entitlements WHERE tenant_id = $1 ORDER BY id`, tid)
	if err != nil {
		b.Fatal(err)
	}
	dur := 15 * time.Second
	if v, err := time.ParseDuration(os.Getenv("CHURN_DUR")); err == nil && v > 0 {
		dur = v
	}
	for _, rate := range []int{0, 1, 10, 100} {
		for _, deciders := range []int{1, 8} {
			b.Run(fmt.Sprintf("changes=%d/deciders=%d", rate, deciders), func(b *testing.B) {
				for b.Loop() {
					churn(b, db, tid, users, ents, rate, deciders, dur)
				}
			})
		}
	}
}

func churn(b *testing.B, db *store.DB, tid uuid.UUID, users, ents []uuid.UUID, rate, deciders int, dur time.Duration) {
	e := engine(db)
	ctx := store.WithTenant(context.Background(), tid)
	if _, err := e.Snapshot(ctx, tid); err != nil { // warm, as a serving replica is
		b.Fatal(err)
	}
	stop := make(chan struct{})
	var writes atomic.Int64
	var wg sync.WaitGroup
	if rate > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(7, uint64(rate)))
			t := time.NewTicker(time.Second / time.Duration(rate))
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				err := db.InTenantTx(ctx, func(tx *store.Tx) error {
					_, err := tx.Exec(ctx, `INSERT INTO assignments (tenant_id, id, subject_type, subject_id, target_type, target_id, source, constraints,
						created_at, updated_at, version, dedup_key) VALUES ($1, $2, 'user', $3, 'entitlement', $4, 'direct', '{}', $5, $5, 1, $6)`,
						tid, uuid.Must(uuid.NewV7()), users[r.IntN(len(users))], ents[r.IntN(len(ents))], store.Now(), "churn:"+uuid.NewString())
					return err
				})
				if err != nil {
					b.Error(err)
					return
				}
				e.Invalidate(tid)
				writes.Add(1)
			}
		}()
	}
	took := make([][]time.Duration, deciders)
	for d := range deciders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(11, uint64(d)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				req := governance.Request{Subject: governance.Subject{Type: governance.SubjectUser, ID: users[r.IntN(len(users))]},
					EntitlementID: ents[r.IntN(len(ents))]}
				t0 := time.Now()
				s, err := e.Snapshot(ctx, tid)
				if err != nil {
					b.Error(err)
					return
				}
				_ = s.Decide(&req, t0)
				took[d] = append(took[d], time.Since(t0))
			}
		}()
	}
	time.Sleep(dur)
	close(stop)
	wg.Wait()
	all := slices.Concat(took...)
	if len(all) == 0 {
		b.Fatal("no decision was made")
	}
	slices.Sort(all)
	b.ReportMetric(float64(len(all)), "decisions")
	b.ReportMetric(float64(all[len(all)/2].Nanoseconds())/1000, "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Nanoseconds())/1000, "p99-µs")
	b.ReportMetric(float64(all[len(all)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(writes.Load())/dur.Seconds(), "changes/s")
}
