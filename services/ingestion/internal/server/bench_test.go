package server_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/services/ingestion/internal/server"
)

// BenchmarkIngestRPC measures the whole unary path over bufconn: gRPC,
// validation, dedup, attribution and the group-committed write (NoSync
// store, so it shows the CPU cost per event rather than the disk). One op
// is one batch of 100 events; 8 concurrent callers.
func BenchmarkIngestRPC(b *testing.B) {
	benchIngestRPC(b, start(b, server.Config{}), 8, 100)
}

func benchIngestRPC(b *testing.B, f *fixture, conc, batch int) {
	c := f.clients[writeKey]
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1) - 1
				if n >= int64(b.N) {
					return
				}
				req := &ingestionv1.IngestRequest{Events: make([]*ingestionv1.Event, batch)}
				for i := range req.Events {
					req.Events[i] = track(fmt.Sprint("m-", n, "-", i), fmt.Sprint("u", i%50), fmt.Sprint("acct-", i%20), "report_created",
						map[string]any{"plan": "pro", "rows": 12})
				}
				if _, err := c.Ingest(context.Background(), req); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "events/s")
}
