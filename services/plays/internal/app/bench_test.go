package app

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/plays/internal/deliver"
	"github.com/cairn-dev/cairn/services/plays/internal/store"
)

// benchFile fires one webhook per risk signal to url.
func benchFile(url string) string {
	return fmt.Sprintf(`destinations:
  - id: crm
    type: webhook
    url: %s
    secret: %s
    concurrency: 32
plays:
  - id: risk
    on: [signal.opened]
    when: record.kind == "risk"
    actions:
      - webhook: {destination: crm}
`, url, testSecret)
}

// benchEnv is a Service on the real clock (the receiver does not verify
// signatures here) delivering to a loopback receiver that counts
// deliveries and when each arrived.
type benchEnv struct {
	*env
	mu      sync.Mutex
	arrived map[string]time.Time
	done    chan struct{}
	want    int
}

func newBenchEnv(b *testing.B, want int) *benchEnv {
	be := &benchEnv{arrived: make(map[string]time.Time, want), done: make(chan struct{}), want: want}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		be.mu.Lock()
		be.arrived[r.Header.Get("webhook-id")] = now
		if len(be.arrived) == be.want {
			close(be.done)
		}
		be.mu.Unlock()
	}))
	b.Cleanup(srv.Close)
	db, err := store.OpenDB(filepath.Join(b.TempDir(), "plays.db"), pstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	e := &env{db: db, path: db.Path()}
	pol := deliver.Policy{AllowPrivate: true}
	engine, err := deliver.New(deliver.Options{
		Clock: clock.Real{}, Policy: pol,
		Record: func(ctx context.Context, outs []deliver.Outcome) error { return e.svc.Record(ctx, outs) },
	})
	if err != nil {
		b.Fatal(err)
	}
	e.engine = engine
	e.svc = New(Options{DB: db, Clock: clock.Real{}, Engine: engine, Policy: pol})
	if _, _, err := e.svc.ApplyPlays(context.Background(), ws, benchFile(srv.URL), false); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = engine.Run(ctx); close(stopped) }()
	b.Cleanup(func() { cancel(); <-stopped; _ = db.Close() })
	be.env = e
	return be
}

// BenchmarkTriggerToDelivery applies risk signals in consumer-sized
// batches (one transaction each, as the health consumer does) and waits
// until the receiver has every webhook: triggers decided, written to the
// outbox, delivered over loopback HTTP and recorded back in bbolt. It
// reports deliveries/s and the p50/p99 time from a trigger's commit to its
// delivery's arrival.
func BenchmarkTriggerToDelivery(b *testing.B) {
	b.Run("burst", func(b *testing.B) { triggerToDelivery(b, 20000, 100, 0) })
	// 1,000 triggers/s: a batch of 10 every 10 ms.
	b.Run("paced-1000/s", func(b *testing.B) { triggerToDelivery(b, 5000, 10, 10*time.Millisecond) })
}

func triggerToDelivery(b *testing.B, n, batch int, pace time.Duration) {
	for range b.N {
		b.StopTimer()
		be := newBenchEnv(b, n)
		committed := make(map[string]time.Time, n)
		var cmu sync.Mutex
		b.StartTimer()
		start := time.Now()
		for i := 0; i < n; i += batch {
			if pace > 0 {
				time.Sleep(time.Until(start.Add(time.Duration(i/batch) * pace)))
			}
			recs := make([]*healthv1.LogRecord, 0, batch)
			for j := i; j < i+batch; j++ {
				recs = append(recs, risk(fmt.Sprintf("acct-%05d", j), "usage_drop_30d", start))
			}
			if err := be.db.Commit(context.Background(), func(tx *pstore.Tx) error {
				tx.OnCommit(func() {
					now := time.Now()
					cmu.Lock()
					for j := i; j < i+batch; j++ {
						committed[fmt.Sprintf("acct-%05d", j)] = now
					}
					cmu.Unlock()
				})
				return be.svc.ApplyHealth(tx, 0, recs)
			}); err != nil {
				b.Fatal(err)
			}
		}
		<-be.done
		elapsed := time.Since(start)
		b.StopTimer()
		defer b.StartTimer()
		// Map webhook-ids back to accounts through the delivery log.
		ds, _, _, err := be.svc.ListDeliveries(ws, &playsv1.ListDeliveriesRequest{}, nil, n)
		if err != nil {
			b.Fatal(err)
		}
		var lat []time.Duration
		be.mu.Lock()
		for _, d := range ds {
			if at, ok := be.arrived[d.GetDeliveryId()]; ok {
				lat = append(lat, at.Sub(committed[d.GetAccountId()]))
			}
		}
		be.mu.Unlock()
		slices.Sort(lat)
		b.ReportMetric(float64(n)/elapsed.Seconds(), "deliveries/s")
		if len(lat) > 0 {
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		}
	}
}

// BenchmarkResume100kPending measures a restart with 100,000 pending
// deliveries in the outbox: loading them and handing them to the engine.
func BenchmarkResume100kPending(b *testing.B) {
	const pending = 100000
	path := filepath.Join(b.TempDir(), "plays.db")
	db, err := store.OpenDB(path, pstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < pending; i += 10000 {
		if err := db.Update(func(tx *pstore.Tx) error {
			t := store.In(tx, ws)
			for j := i; j < i+10000; j++ {
				seq := uint64(j + 1)
				d := &playsv1.Delivery{
					Workspace: ws, DeliveryId: deliveryID(ws, seq), DestinationId: "crm", AccountId: fmt.Sprintf("acct-%06d", j),
					State: playsv1.DeliveryState_DELIVERY_STATE_PENDING, Body: `{"type":"play.fired","data":{"account":{"id":"x"}}}`,
				}
				if err := t.AddDelivery(seq, d); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	_ = db.Close()
	for b.Loop() {
		db, err := store.OpenDB(path, pstore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		engine, err := deliver.New(deliver.Options{Record: func(context.Context, []deliver.Outcome) error { return nil }})
		if err != nil {
			b.Fatal(err)
		}
		svc := New(Options{DB: db, Clock: clock.Real{}, Engine: engine})
		n, err := svc.Resume()
		if err != nil || n != pending {
			b.Fatalf("Resume = %d, %v", n, err)
		}
		_ = db.Close()
	}
}
