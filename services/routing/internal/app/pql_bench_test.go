package app

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/routing/internal/store"
)

// BenchmarkApplyIngestionPQL measures the ingestion consumer's apply path
// for product events in a workspace with a PQL rule over aggregates: per
// event, the account's aggregates are decoded, updated, stored and the rule
// evaluated. 1,000 accounts, 20 users each, batches of 500 events per
// transaction as the consumer delivers them; no fsync.
func BenchmarkApplyIngestionPQL(b *testing.B) {
	db, err := store.OpenDB(filepath.Join(b.TempDir(), "p.db"), pstore.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	start := time.Date(2026, 11, 16, 9, 0, 0, 0, time.UTC)
	svc, err := New(Options{DB: db, Log: txLog{}, Partitions: 8, Clock: clock.NewManual(start)})
	if err != nil {
		b.Fatal(err)
	}
	err = svc.Update("ws", func(tx *store.Tx) error {
		return tx.PutConfig(&routingv1.Config{Version: 1, PqlRules: []*routingv1.PqlRule{{Name: "activated",
			Condition: `has_event("activation_reached") && active_users("7d") >= 50`}}})
	})
	if err != nil {
		b.Fatal(err)
	}
	const batch = 500
	recs := make([]*ingestionv1.LogRecord, batch)
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		for j := range recs {
			n := i + j
			recs[j] = &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{
				Workspace: "ws", MessageId: fmt.Sprint(n), Type: ingestionv1.EventType_EVENT_TYPE_TRACK,
				Event: "report_viewed", UserId: fmt.Sprintf("u%d", n%20), AccountId: fmt.Sprintf("acct%d", n%1000),
				Timestamp: timestamppb.New(start.Add(time.Duration(n) * time.Second)),
			}}}
		}
		if err := db.Update(func(tx *pstore.Tx) error { return svc.ApplyIngestion(tx, 0, recs) }); err != nil {
			b.Fatal(err)
		}
	}
}
