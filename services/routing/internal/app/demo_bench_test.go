package app

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/cputime"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/routing/internal/store"
)

// BenchmarkApplyIngestionDemo is the ingestion consumer in the running
// suite's shape (scripts/bench.sh suite): the demo workspace's PQL rules
// (cmd/cairn/internal/demo/routing.yaml) and ingestload's events, a
// report_created track with properties and context.groupId for 1,000
// accounts of 5 users each, at 21k events/s of event time, applied
// incrementally in batches of CAIRN_BENCH_BATCH records (default 512, the
// upstream log's read batch) to accounts whose product context stages and
// health already filled. Reports the process CPU per applied event.
func BenchmarkApplyIngestionDemo(b *testing.B) {
	batch := 512
	if v := os.Getenv("CAIRN_BENCH_BATCH"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("CAIRN_BENCH_BATCH: %q", v)
		}
		batch = n
	}
	const accounts = 1000
	db, err := store.OpenDB(filepath.Join(b.TempDir(), "d.db"), pstore.Options{NoSync: true})
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
		for i := range accounts {
			a := &store.Account{
				Stage: "activation", PreviousStage: "onboarding", HealthBand: "healthy", HealthScore: 71.5,
				Signals:          []string{"activation_reached"},
				SignalAttributes: map[string]any{"milestone": "first_report"},
			}
			if err := tx.PutAccount(fmt.Sprint("acct-", i), a); err != nil {
				return err
			}
		}
		return tx.PutConfig(&routingv1.Config{PqlRules: []*routingv1.PqlRule{
			{Name: "team-trial", Condition: `status == "trial" && active_users("14d") >= 3 && features_used("14d") >= 2`},
			{Name: "trial-integration", Condition: `status == "trial" && integrations() >= 1`},
		}})
	})
	if err != nil {
		b.Fatal(err)
	}
	props, err := structpb.NewStruct(map[string]any{"plan": "pro", "rows": 12, "path": "/reports/new"})
	if err != nil {
		b.Fatal(err)
	}
	seq := 0
	recs := make([]*ingestionv1.LogRecord, batch)
	build := func() {
		for j := range recs {
			acct := fmt.Sprint("acct-", seq%accounts)
			c, _ := structpb.NewStruct(map[string]any{"groupId": acct})
			at := timestamppb.New(start.Add(time.Duration(seq) * time.Second / 21000))
			recs[j] = &ingestionv1.LogRecord{Offset: uint64(seq), Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{
				Workspace: "ws", MessageId: fmt.Sprintf("run-%010d", seq), Type: ingestionv1.EventType_EVENT_TYPE_TRACK,
				Event: "report_created", UserId: fmt.Sprint("user-", seq%(accounts*5)), AccountId: acct,
				Properties: props, Context: c, Timestamp: at, ReceivedAt: at,
			}}}
			seq++
		}
	}
	commit := func() {
		if err := db.Update(func(tx *pstore.Tx) error { return svc.ApplyIngestion(tx, 0, recs) }); err != nil {
			b.Fatal(err)
		}
	}
	// Every user has been seen, as after the suite's first seconds.
	for seq < accounts*5 {
		build()
		commit()
	}
	b.ResetTimer()
	var cpu time.Duration
	events := 0
	for events < b.N {
		// Building the records stands for the subscription's decode, not
		// the consumer's apply: it stays out of the figure.
		b.StopTimer()
		build()
		b.StartTimer()
		c0 := cputime.Process()
		commit()
		cpu += cputime.Process() - c0
		events += batch
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(events), "cpu-µs/event")
}
