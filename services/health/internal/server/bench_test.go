package server_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	kv "github.com/cairn-dev/cairn/pkg/store"
)

// BenchmarkGetAccountHealth measures one GetAccountHealth call through a
// real gRPC client over bufconn (auth interceptor included) against a store
// of 1,000 scored accounts. For p99 at 1,000 req/s, run the service and use
// ghz (see docs/health.md).
func BenchmarkGetAccountHealth(b *testing.B) {
	e := setupB(b)
	tr := ingestionv1.EventType_EVENT_TYPE_TRACK
	var recs []*ingestionv1.LogRecord
	for a := 0; a < 1000; a++ {
		recs = append(recs, ev(fmt.Sprintf("acct-%d", a), 0, tr, "", "billing.subscription_started", "plan", "pro"))
		for d := 0; d < 5; d++ {
			recs = append(recs, ev(fmt.Sprintf("acct-%d", a), d, tr, "u1", fmt.Sprintf("f%d", d)))
		}
	}
	if err := e.db.Update(func(tx *kv.Tx) error { return e.app.ApplyIngestion(tx, 0, recs) }); err != nil {
		b.Fatal(err)
	}
	c := e.clients["read"]
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := c.GetAccountHealth(ctx, &healthv1.GetAccountHealthRequest{AccountId: fmt.Sprintf("acct-%d", i%1000)}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGetAccountHealthRate1000 offers GetAccountHealth at 1,000
// requests/s for 3 s per iteration (open loop, over bufconn with auth) and
// reports the latency percentiles. Run with -benchtime 1x.
func BenchmarkGetAccountHealthRate1000(b *testing.B) {
	e := setupB(b)
	tr := ingestionv1.EventType_EVENT_TYPE_TRACK
	var recs []*ingestionv1.LogRecord
	for a := 0; a < 1000; a++ {
		recs = append(recs, ev(fmt.Sprintf("acct-%d", a), 0, tr, "u1", "f1"))
	}
	if err := e.db.Update(func(tx *kv.Tx) error { return e.app.ApplyIngestion(tx, 0, recs) }); err != nil {
		b.Fatal(err)
	}
	c := e.clients["read"]
	ctx := context.Background()
	const rate, secs = 1000, 3
	b.ResetTimer()
	var all []time.Duration
	for i := 0; i < b.N; i++ {
		lat := make([]time.Duration, rate*secs)
		var wg sync.WaitGroup
		start := time.Now()
		for n := range lat {
			// Open loop: request n is due at start + n ms, whatever the
			// latency of earlier ones, so queueing shows up in the tail.
			time.Sleep(time.Until(start.Add(time.Duration(n) * time.Second / rate)))
			wg.Add(1)
			go func(n int) {
				defer wg.Done()
				t := time.Now()
				if _, err := c.GetAccountHealth(ctx, &healthv1.GetAccountHealthRequest{AccountId: fmt.Sprintf("acct-%d", n%1000)}); err != nil {
					b.Error(err)
				}
				lat[n] = time.Since(t)
			}(n)
		}
		wg.Wait()
		all = append(all, lat...)
	}
	b.StopTimer()
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
}
