package bench

import (
	"context"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/governance"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
	"github.com/xavyo/xavyo/internal/testdb"
)

// BenchmarkGovernanceChurn measures decisions while the tenant changes: on
// the generated tenant (500k assignments), D deciders call Engine.Snapshot
// and Decide in a loop for CHURN_DUR (default 15 s) while one writer
// commits R assignments a second, each with the change event the
// governance service publishes. The engine follows the changes as a
// server does: this replica's at their commit, through its bus. A second
// replica (its own database handle, bus and engine) hears them through
// PostgreSQL's notifications. It reports how many decisions were made,
// their p50, p99, p99.9 and maximum latency (snapshot wait included), and
// how long after its commit began a new assignment decided "allow" on
// this replica and on the other (p99 and max): the figures of issue #20's
// first table and targets, for R in 0, 1, 10, 100 and D in 1, 8.
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
	other, err := store.Open(context.Background(), store.Config{URL: testdb.AppURL(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer other.Close()
	for _, rate := range []int{0, 1, 10, 100} {
		for _, deciders := range []int{1, 8} {
			b.Run(fmt.Sprintf("changes=%d/deciders=%d", rate, deciders), func(b *testing.B) {
				for b.Loop() {
					churn(b, db, other, tid, users, ents, rate, deciders, dur)
				}
			})
		}
	}
}

// replica is an engine following changes through its own bus.
type replica struct {
	e    *governance.Engine
	stop func()
}

func follow(b *testing.B, db *store.DB, tid uuid.UUID, users []uuid.UUID, ent uuid.UUID, listen bool) *replica {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	bus := events.NewBus(db, nil)
	if listen {
		go func() { _ = bus.Run(ctx) }()
	}
	e := engine(db)
	unwatch := e.Watch(bus)
	s, err := e.Snapshot(store.WithTenant(ctx, tid), tid)
	if err != nil {
		b.Fatal(err)
	}
	for _, u := range users { // warm, as a serving replica is: every subject's holdings cached
		s.Decide(&governance.Request{Subject: governance.Subject{Type: governance.SubjectUser, ID: u}, EntitlementID: ent}, time.Now())
	}
	return &replica{e: e, stop: func() { unwatch(); cancel() }}
}

type probe struct {
	user, ent uuid.UUID
	at        time.Time
}

func churn(b *testing.B, db, other *store.DB, tid uuid.UUID, users, ents []uuid.UUID, rate, deciders int, dur time.Duration) {
	ctx := store.WithTenant(context.Background(), tid)
	local := follow(b, db, tid, users, ents[0], false)
	defer local.stop()
	var remote *replica
	if rate > 0 {
		remote = follow(b, other, tid, users, ents[0], true)
		defer remote.stop()
	}
	e := local.e
	stop := make(chan struct{})
	var writes atomic.Int64
	var wg sync.WaitGroup
	var seenLocal, seenRemote []time.Duration
	var vmu sync.Mutex
	if rate > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(7, uint64(rate)))
			t := time.NewTicker(time.Second / time.Duration(rate))
			defer t.Stop()
			inflight := make(chan struct{}, 32) // writes run concurrently, as a server's requests do
			var writers sync.WaitGroup
			defer writers.Wait()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				select {
				case inflight <- struct{}{}:
				default:
					continue // 32 writes behind: the database sets the pace
				}
				p := &probe{user: users[r.IntN(len(users))], ent: ents[r.IntN(len(ents))]}
				writers.Add(1)
				go func() {
					defer writers.Done()
					defer func() { <-inflight }()
					id := uuid.Must(uuid.NewV7())
					err := db.InTenantTx(ctx, func(tx *store.Tx) error {
						p.at = time.Time{}
						tx.AfterCommit(func() { p.at = time.Now() }) // first of the commit's hooks: before the engine's
						_, err := tx.Exec(ctx, `INSERT INTO assignments (tenant_id, id, subject_type, subject_id, target_type, target_id, source, constraints,
							created_at, updated_at, version, dedup_key) VALUES ($1, $2, 'user', $3, 'entitlement', $4, 'direct', '{}', $5, $5, 1, $6)`,
							tid, id, p.user, p.ent, store.Now(), "churn:"+id.String())
						if err != nil {
							return err
						}
						// The event as the governance service publishes it: the new
						// record is its payload.
						now := store.Now()
						a := &governance.Assignment{ID: id, SubjectType: governance.SubjectUser, SubjectID: p.user, TargetType: "entitlement", TargetID: p.ent,
							Source: governance.SourceDirect, CreatedAt: now, UpdatedAt: now, Version: 1}
						return events.Publish(ctx, tx, events.Change{TenantID: tid, Kind: governance.EventPrefix + "assignment", ID: id.String(), Version: 1}, a)
					})
					if err != nil {
						b.Error(err)
						return
					}
					writes.Add(1)
					l, r := visible(ctx, e, tid, p), visible(ctx, remote.e, tid, p)
					vmu.Lock()
					seenLocal, seenRemote = append(seenLocal, l), append(seenRemote, r)
					vmu.Unlock()
				}()
			}
		}()
	}
	took := make([]*latencies, deciders)
	for d := range deciders {
		took[d] = &latencies{}
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
				took[d].add(time.Since(t0))
				// A request handler goes back to the scheduler between
				// requests (to read the next one): so do deciders.
				runtime.Gosched()
			}
		}()
	}
	time.Sleep(dur)
	close(stop)
	wg.Wait()
	all := &latencies{}
	for _, l := range took {
		all.merge(l)
	}
	if all.n == 0 {
		b.Fatal("no decision was made")
	}
	b.ReportMetric(float64(all.n), "decisions")
	b.ReportMetric(all.quantile(0.5).Seconds()*1e6, "p50-µs")
	b.ReportMetric(all.quantile(0.99).Seconds()*1e6, "p99-µs")
	b.ReportMetric(all.quantile(0.999).Seconds()*1e6, "p99.9-µs")
	b.ReportMetric(all.max.Seconds()*1e3, "max-ms")
	b.ReportMetric(float64(writes.Load())/dur.Seconds(), "changes/s")
	for _, v := range []struct {
		name string
		d    []time.Duration
	}{{"local", seenLocal}, {"remote", seenRemote}} {
		if len(v.d) == 0 {
			continue
		}
		slices.Sort(v.d)
		b.ReportMetric(float64(v.d[len(v.d)*99/100].Microseconds())/1000, "visible-"+v.name+"-p99-ms")
		b.ReportMetric(float64(v.d[len(v.d)-1].Microseconds())/1000, "visible-"+v.name+"-max-ms")
	}
}

// visible waits until the engine's snapshot allows the probe's new
// assignment and returns how long after the commit began that was (5 s
// at most).
func visible(ctx context.Context, e *governance.Engine, tid uuid.UUID, p *probe) time.Duration {
	req := governance.Request{Subject: governance.Subject{Type: governance.SubjectUser, ID: p.user}, EntitlementID: p.ent}
	for time.Since(p.at) < 5*time.Second {
		if s, err := e.Snapshot(ctx, tid); err == nil && s.Decide(&req, time.Now()).Decision == governance.Allow {
			break
		}
		time.Sleep(50 * time.Microsecond)
	}
	return time.Since(p.at)
}

// latencies is a log-linear histogram of durations (16 buckets per
// power of two: within 6%), so that recording one allocates nothing.
type latencies struct {
	counts [64 * 16]int64
	n      int64
	max    time.Duration
}

func bucket(d time.Duration) int {
	v := uint64(max(d, 1))
	e := bits.Len64(v) - 1
	if e < 4 {
		return int(v)
	}
	return e*16 + int(v>>(e-4)&15)
}

func (l *latencies) add(d time.Duration) {
	l.counts[bucket(d)]++
	l.n++
	l.max = max(l.max, d)
}

func (l *latencies) merge(o *latencies) {
	for i, c := range o.counts {
		l.counts[i] += c
	}
	l.n += o.n
	l.max = max(l.max, o.max)
}

// quantile returns the upper bound of the bucket holding quantile q.
func (l *latencies) quantile(q float64) time.Duration {
	rank := int64(q * float64(l.n))
	var seen int64
	for i, c := range l.counts {
		if seen += c; seen > rank {
			if i < 16 {
				return time.Duration(i)
			}
			e, m := i/16, i%16
			return min(time.Duration((uint64(16+m)+1)<<(e-4)), l.max)
		}
	}
	return l.max
}
