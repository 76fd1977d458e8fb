package deliver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkDeliver measures signed webhook deliveries per second to a
// loopback receiver, with a Recorder that does nothing, over 64 accounts
// (each account's messages go one at a time, in order).
//
//	go test -run '^$' -bench BenchmarkDeliver -benchtime 20000x ./internal/deliver/
func BenchmarkDeliver(b *testing.B) {
	for _, conc := range []int{8, 32} {
		b.Run("concurrency="+strconv.Itoa(conc), func(b *testing.B) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNoContent)
			}))
			defer srv.Close()
			var delivered atomic.Int64
			done := make(chan struct{})
			n := int64(b.N)
			e, err := New(Options{
				Policy: Policy{AllowPrivate: true},
				Record: func(ctx context.Context, outs []Outcome) error {
					var d int64
					for _, o := range outs {
						if o.State == Delivered {
							d++
						}
					}
					if delivered.Add(d) == n {
						close(done)
					}
					return nil
				},
			})
			if err != nil {
				b.Fatal(err)
			}
			e.SetDestinations([]Destination{{ID: "d", Kind: Webhook, URL: srv.URL + "/hook", Secret: testSecret, Concurrency: conc}})
			ms := make([]Message, b.N)
			for i := range ms {
				ms[i] = msg("d", "acct"+strconv.Itoa(i%64), uint64(i))
			}
			ctx, cancel := context.WithCancel(context.Background())
			stopped := make(chan struct{})
			go func() { _ = e.Run(ctx); close(stopped) }()
			b.ResetTimer()
			start := time.Now()
			e.Enqueue(ms...)
			<-done
			elapsed := time.Since(start)
			b.StopTimer()
			cancel()
			<-stopped
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
		})
	}
}
