package server_test

import (
	"context"
	"fmt"
	"testing"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"go.etcd.io/bbolt"
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
		for d := 0; d < 5; d++ {
			recs = append(recs, ev(fmt.Sprintf("acct-%d", a), d, tr, "u1", fmt.Sprintf("f%d", d)))
		}
	}
	if err := e.db.Update(func(tx *bbolt.Tx) error { return e.eng.ApplyIngestion(tx, 0, recs) }); err != nil {
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
