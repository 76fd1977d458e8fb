package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/cputime"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/routing/internal/sla"
	"github.com/cairn-dev/cairn/services/routing/internal/store"
)

// benchTimers is the number of pending SLA clocks BenchmarkRestartTimers
// prepares: CAIRN_BENCH_TIMERS (the target is 1000000), default 20000.
func benchTimers(b *testing.B) int {
	if v := os.Getenv("CAIRN_BENCH_TIMERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("CAIRN_BENCH_TIMERS: %v", err)
		}
		return n
	}
	return 20000
}

// prepareTimers writes n open MQL assignments with running 1-hour clocks,
// created Monday 09:00 UTC, each with its warning timer armed.
func prepareTimers(b *testing.B, path string, n int) {
	// Each chunk is fsynced as it commits, so the file is on disk before the
	// restart, as after a real outage: otherwise the restart's first fsync
	// flushes the setup's gigabyte of dirty pages, which took 5-10 s on the
	// shared disk.
	db, err := store.OpenDB(path, pstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	created := time.Date(2026, 11, 16, 9, 0, 0, 0, time.UTC)
	cal := utcCalendar()
	policy := &routingv1.SlaPolicy{Name: "mql", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Within: durationpb.New(time.Hour)}
	const chunk = 20000
	for done := 0; done < n; done += chunk {
		err := db.Update(func(btx *pstore.Tx) error {
			tx := store.In(btx, "ws")
			if done == 0 {
				for _, id := range []string{"alice", "bob"} {
					if err := tx.PutOwner(&routingv1.Owner{OwnerId: id, Team: routingv1.Team_TEAM_SDR}); err != nil {
						return err
					}
				}
			}
			for i := done; i < min(done+chunk, n); i++ {
				id, err := tx.NextAssignmentID()
				if err != nil {
					return err
				}
				a := &routingv1.Assignment{
					Workspace: "ws", AssignmentId: id, Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, AccountId: fmt.Sprintf("acct%d", i),
					Lead: &routingv1.Lead{Email: fmt.Sprintf("l%d@acme.com", i)}, OwnerId: []string{"alice", "bob"}[i%2],
					State: routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN, CreatedAt: timestamppb.New(created),
					Decision: &routingv1.Decision{Rule: "bench"}, Sla: sla.Start(policy, cal, created),
				}
				next, _ := sla.Next(a.GetSla(), cal, created)
				if err := tx.PutAssignment(a); err != nil {
					return err
				}
				if err := tx.Arm(id, next.At, string(next.Kind)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRestartTimers measures a restart with n pending SLA clocks that
// all fell due while the service was down: from opening the file (with
// fsync, as in production) to every overdue timer fired and published.
// Reports s/restart and timers fired per second; s/serve, from opening the
// file to a write (a handoff, group-committed like Qualify) sent as the
// backlog starts firing being durable; and s/write-max, the slowest of such
// writes sent every 10 ms while the backlog fires (they wait for the batch
// being written).
func BenchmarkRestartTimers(b *testing.B) {
	n := benchTimers(b)
	batch := 0 // the service's default
	if v := os.Getenv("CAIRN_BENCH_TIMER_BATCH"); v != "" {
		var err error
		if batch, err = strconv.Atoi(v); err != nil {
			b.Fatalf("CAIRN_BENCH_TIMER_BATCH: %v", err)
		}
	}
	dir := b.TempDir()
	var total, cpu, serve, writeMax time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		path := filepath.Join(dir, fmt.Sprintf("r%d.db", i))
		prepareTimers(b, path, n)
		b.StartTimer()
		start := time.Now()
		db, err := store.OpenDB(path, pstore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		clk := clock.NewManual(time.Date(2026, 11, 17, 12, 0, 0, 0, time.UTC))
		log, err := stream.OpenLog(db, "routing", stream.LogOptions{Partitions: 8, Clock: clk})
		if err != nil {
			b.Fatal(err)
		}
		svc, err := New(Options{DB: db, Log: log, Partitions: 8, Clock: clk, TimerBatch: batch})
		if err != nil {
			b.Fatal(err)
		}
		cpu0 := cputime.Process()
		// Serving again: handoffs (group-committed like Qualify) sent every
		// 10 ms while the backlog fires; the first is sent as it starts.
		var (
			stop    = make(chan struct{})
			served  = make(chan time.Duration, 1)
			slowest = make(chan time.Duration, 1)
		)
		go func() {
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			var worst time.Duration
			for k := 0; ; k++ {
				t0 := time.Now()
				err := svc.Commit(context.Background(), "ws", func(tx *store.Tx) error {
					_, err := svc.RouteTx(tx, Route{Type: routingv1.HandoffType_HANDOFF_TYPE_MANUAL, OwnerID: "alice", Lead: &routingv1.Lead{Email: "new@acme.com"}})
					return err
				})
				if err != nil {
					b.Error(err)
				}
				if k == 0 {
					served <- time.Since(start)
				}
				worst = max(worst, time.Since(t0))
				select {
				case <-stop:
					slowest <- worst
					return
				case <-tick.C:
				}
			}
		}()
		fired, err := svc.FireDue(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		cpu += cputime.Process() - cpu0
		close(stop)
		serve += <-served
		writeMax = max(writeMax, <-slowest)
		b.StopTimer()
		if fired != n {
			b.Fatalf("fired %d, want %d", fired, n)
		}
		_ = db.Close()
		_ = os.Remove(path)
		b.StartTimer()
	}
	secs := total.Seconds() / float64(b.N)
	b.ReportMetric(secs, "s/restart")
	b.ReportMetric(serve.Seconds()/float64(b.N), "s/serve")
	b.ReportMetric(writeMax.Seconds(), "s/write-max")
	b.ReportMetric(float64(n)/secs, "timers/s")
	// CPU time (user+system, whole process) of FireDue: steadier than wall
	// time on a machine shared with other work.
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/fire")
}

// qualifyBench opens a routing service with 200 owners in four zones, a
// weighted pool and 50 rules (49 that do not match, then the pool rule).
func qualifyBench(b *testing.B, noSync bool) *Service {
	db, err := store.OpenDB(filepath.Join(b.TempDir(), "q.db"), pstore.Options{NoSync: noSync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	clk := clock.NewManual(time.Date(2026, 11, 16, 15, 0, 0, 0, time.UTC))
	log, err := stream.OpenLog(db, "routing", stream.LogOptions{Partitions: 8, Clock: clk})
	if err != nil {
		b.Fatal(err)
	}
	svc, err := New(Options{DB: db, Log: log, Partitions: 8, Clock: clk})
	if err != nil {
		b.Fatal(err)
	}
	var ids []string
	cfg := &routingv1.Config{FallbackPoolId: "p"}
	err = svc.Update("ws", func(tx *store.Tx) error {
		for i := range 200 {
			id := fmt.Sprintf("o%03d", i)
			ids = append(ids, id)
			zone := []string{"America/New_York", "Europe/Berlin", "UTC", "Asia/Tokyo"}[i%4]
			if err := tx.PutOwner(&routingv1.Owner{OwnerId: id, Team: routingv1.Team_TEAM_SDR, TimeZone: zone, Weight: int32(1 + i%3), Holidays: []string{"2026-12-25"}}); err != nil {
				return err
			}
		}
		if err := tx.PutPool(&routingv1.Pool{PoolId: "p", OwnerIds: ids, Strategy: routingv1.Strategy_STRATEGY_WEIGHTED_ROUND_ROBIN}); err != nil {
			return err
		}
		for i := range 49 {
			cfg.Rules = append(cfg.Rules, &routingv1.Rule{
				Name:      fmt.Sprintf("r%02d", i),
				Condition: fmt.Sprintf(`lead.territory == "t%d" && has(account.segment) && account.segment in ["enterprise", "mid"]`, i),
				Action:    routingv1.ActionKind_ACTION_KIND_OWNER, OwnerId: ids[i],
			})
		}
		cfg.Rules = append(cfg.Rules, &routingv1.Rule{Name: "rest", Action: routingv1.ActionKind_ACTION_KIND_POOL, PoolId: "p"})
		return tx.PutConfig(cfg)
	})
	if err != nil {
		b.Fatal(err)
	}
	return svc
}

func p99(lat []time.Duration) float64 {
	slices.Sort(lat)
	return float64(lat[len(lat)*99/100].Microseconds()) / 1000
}

// BenchmarkQualify routes MQLs one at a time through the service (store
// transaction, rules, candidates, SLA start, timer, log record) without
// fsync, so the figure is the decision path, and reports the p99.
func BenchmarkQualify(b *testing.B) {
	svc := qualifyBench(b, true)
	lat := make([]time.Duration, 0, b.N)
	i := 0
	for b.Loop() {
		start := time.Now()
		err := svc.Update("ws", func(tx *store.Tx) error {
			_, err := svc.RouteTx(tx, Route{Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Lead: &routingv1.Lead{
				Email: fmt.Sprintf("l%d@acme%d.com", i, i), AccountId: fmt.Sprintf("a%d", i), Territory: "amer",
			}})
			return err
		})
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(p99(lat), "p99-ms")
}

// BenchmarkQualifyParallel is the production path at saturation: closed-loop
// concurrent callers (CAIRN_BENCH_PARALLEL per CPU, default 16) whose calls
// are group-committed with fsync. It reports the throughput reached and the
// p99, which at saturation is mostly queueing.
func BenchmarkQualifyParallel(b *testing.B) {
	svc := qualifyBench(b, false)
	par := 16
	if v := os.Getenv("CAIRN_BENCH_PARALLEL"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			par = n
		}
	}
	b.SetParallelism(par)
	var (
		mu  sync.Mutex
		lat []time.Duration
		seq atomic.Int64
	)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			i := seq.Add(1)
			t0 := time.Now()
			err := svc.Commit(context.Background(), "ws", func(tx *store.Tx) error {
				_, err := svc.RouteTx(tx, Route{Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Lead: &routingv1.Lead{
					Email: fmt.Sprintf("l%d@acme%d.com", i, i), AccountId: fmt.Sprintf("a%d", i), Territory: "amer",
				}})
				return err
			})
			mine = append(mine, time.Since(t0))
			if err != nil {
				b.Error(err)
				return
			}
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.ReportMetric(p99(lat), "p99-ms")
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "qualify/s")
}

// BenchmarkQualifyAtRate is the target: Qualify calls arriving at a
// fixed rate (CAIRN_BENCH_RATE per second, default 1000, open loop: arrivals
// do not wait for earlier calls), group-committed with fsync; it reports the
// p99 latency of one call. Run it with -benchtime Nx for N calls.
//
// CAIRN_BENCH_TIMER_LOOP=1 also runs the timer loop, as the service does:
// every commit wakes it.
func BenchmarkQualifyAtRate(b *testing.B) {
	svc := qualifyBench(b, false)
	if os.Getenv("CAIRN_BENCH_TIMER_LOOP") == "1" {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- svc.RunTimers(ctx) }()
		b.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				b.Error(err)
			}
		})
	}
	rate := 1000
	if v := os.Getenv("CAIRN_BENCH_RATE"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			rate = n
		}
	}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		lat []time.Duration
		i   int
	)
	for b.Loop() {
		<-tick.C
		i++
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			t0 := time.Now()
			err := svc.Commit(context.Background(), "ws", func(tx *store.Tx) error {
				_, err := svc.RouteTx(tx, Route{Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Lead: &routingv1.Lead{
					Email: fmt.Sprintf("l%d@acme%d.com", i, i), AccountId: fmt.Sprintf("a%d", i), Territory: "amer",
				}})
				return err
			})
			d := time.Since(t0)
			if err != nil {
				b.Error(err)
			}
			mu.Lock()
			lat = append(lat, d)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	b.ReportMetric(p99(lat), "p99-ms")
}
