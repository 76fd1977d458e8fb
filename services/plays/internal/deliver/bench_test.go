package deliver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
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

// BenchmarkIsolation measures one destination's delivery latency (from
// Enqueue to the recorded outcome, p50 and p99 over 2,000 messages sent at
// 500/s) alone, and again while another destination times out on every
// request with its own queue full. The bar: within 2× of the solo
// figure.
//
//	go test -run '^$' -bench BenchmarkIsolation -benchtime 1x ./internal/deliver/
func BenchmarkIsolation(b *testing.B) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer ok.Close()
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	defer hang.Close()
	for _, withSlow := range []bool{false, true} {
		name := "solo"
		if withSlow {
			name = "beside-a-timing-out-destination"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				const n = 2000
				sent := make([]time.Time, n)
				var lat [n]time.Duration
				var got atomic.Int64
				done := make(chan struct{})
				e, err := New(Options{
					Policy: Policy{AllowPrivate: true},
					Record: func(ctx context.Context, outs []Outcome) error {
						now := time.Now()
						for _, o := range outs {
							if o.Message.Destination != "fast" || o.State != Delivered {
								continue
							}
							lat[o.Message.Seq] = now.Sub(sent[o.Message.Seq])
							if got.Add(1) == n {
								close(done)
							}
						}
						return nil
					},
				})
				if err != nil {
					b.Fatal(err)
				}
				ds := []Destination{{ID: "fast", Kind: Webhook, URL: ok.URL + "/hook", Secret: testSecret}}
				if withSlow {
					ds = append(ds, Destination{ID: "slow", Kind: Webhook, URL: hang.URL + "/hook", Secret: testSecret, Timeout: 2 * time.Second})
				}
				e.SetDestinations(ds)
				ctx, cancel := context.WithCancel(context.Background())
				stopped := make(chan struct{})
				go func() { _ = e.Run(ctx); close(stopped) }()
				if withSlow {
					slow := make([]Message, 5000)
					for i := range slow {
						slow[i] = msg("slow", "acct"+strconv.Itoa(i), uint64(i))
					}
					e.Enqueue(slow...)
				}
				start := time.Now()
				for i := range n {
					time.Sleep(time.Until(start.Add(time.Duration(i) * 2 * time.Millisecond)))
					sent[i] = time.Now()
					e.Enqueue(msg("fast", "acct"+strconv.Itoa(i%64), uint64(i)))
				}
				<-done
				cancel()
				<-stopped
				s := lat[:]
				slices.Sort(s)
				b.ReportMetric(float64(s[n/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(s[n*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}
