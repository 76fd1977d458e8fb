package app_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/cputime"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/domain/vocab"
	kv "github.com/cairn-dev/cairn/pkg/store"

	"github.com/cairn-dev/cairn/services/health/internal/app"
	"github.com/cairn-dev/cairn/services/health/internal/store"
)

// synthetic builds a realistic small account without replaying events, so
// benchmark setup stays fast: a few users active on some of the last 60
// days, a few features, a QBR and an activation, seats, ARR and NPS.
func synthetic(ws string, i int, now time.Time) *store.Account {
	a := account.New(ws, fmt.Sprintf("acct-%06d", i))
	created := now.AddDate(0, 0, -200).Unix()
	a.CreatedAt, a.FirstEventAt, a.LastEventAt = created, created, now.Unix()
	a.Seats = 10
	a.ARR = float64(1000 * (i%50 + 1))
	a.ContractEnd = now.AddDate(0, 0, i%365).Unix()
	a.NPS = int32(i % 11)
	users := 1 + i%8
	for u := 0; u < users; u++ {
		id := fmt.Sprintf("u%d", u)
		a.Users[id] = &account.User{ID: id, FirstSeen: created, LastSeen: now.AddDate(0, 0, -(u * 5)).Unix()}
	}
	a.ChampionID = "u0"
	for f := 0; f < i%7; f++ {
		a.Features[vocab.Features()[f%len(vocab.Features())]] = now.AddDate(0, 0, -f*6).Unix()
	}
	a.Events["activated"] = account.Span{First: created, Last: created}
	// A paying customer: health scores customers only.
	a.Events["billing.subscription_started"] = account.Span{First: created, Last: created}
	qbr := now.AddDate(0, 0, -(i % 120)).Unix()
	a.Events["meeting.qbr_held"] = account.Span{First: qbr, Last: qbr}
	day := account.DayOf(now)
	for d := int32(0); d < 60; d += 3 {
		n := int32(10 + i%20)
		var active []string
		for u := 0; u < users; u++ {
			if int(60-d) >= u*5 {
				active = append(active, fmt.Sprintf("u%d", u))
			}
		}
		a.Days = append(a.Days, account.Day{Day: day - 60 + d, Counts: map[string]int32{vocab.Features()[0]: n}, Users: active, Total: n, Product: n})
	}
	return &store.Account{Agg: a, Meta: store.Meta{LastEval: now}}
}

func seedAccounts(b *testing.B, db *kv.DB, ws string, n int, now time.Time) {
	b.Helper()
	for i := 0; i < n; i += 10000 {
		if err := db.Update(func(tx *kv.Tx) error {
			for j := i; j < min(i+10000, n); j++ {
				if err := store.PutAccount(tx, synthetic(ws, j, now), true); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchRescore(b *testing.B, n int) { benchRescoreAfter(b, n, 0, false) }

// benchRescoreAfter measures a rescore after warm full rescores, each on a
// new day (warm = 0: accounts never scored before); durable commits fsync
// like the service does.
func benchRescoreAfter(b *testing.B, n, warm int, durable bool) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	db, err := kv.Open(filepath.Join(b.TempDir(), "bench.db"), kv.Options{NoSync: !durable, SchemaVersion: store.SchemaVersion})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	seedAccounts(b, db, "w", n, now)
	clk := clock.NewManual(now)
	e, err := app.New(app.Options{DB: db, Log: boltLog{parts: 8}, Clock: clk})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < warm; i++ {
		clk.Advance(24 * time.Hour)
		if _, err := e.Rescore(context.Background(), "w"); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	cpu0 := cputime.Process()
	for i := 0; i < b.N; i++ {
		clk.Advance(24 * time.Hour) // each run is a new day: new snapshots, real work
		got, err := e.Rescore(context.Background(), "w")
		if err != nil || got != n {
			b.Fatalf("rescored %d: %v", got, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/rescore")
	b.ReportMetric(float64((cputime.Process()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/rescore")
}

// BenchmarkRescore100k rescores a workspace of 100,000 accounts (target ≤ 2 s).
func BenchmarkRescore100k(b *testing.B) { benchRescore(b, 100000) }

// BenchmarkRescore100kRescored rescores 100,000 accounts that were all
// scored the day before: previous health, snapshots, signals and timers
// exist, as after a model change in a running workspace.
func BenchmarkRescore100kRescored(b *testing.B) { benchRescoreAfter(b, 100000, 1, false) }

// BenchmarkRescore100kDurable is Rescore100k with fsync on every commit,
// as in the service (the other benchmarks skip fsync like the tests).
func BenchmarkRescore100kDurable(b *testing.B) { benchRescoreAfter(b, 100000, 0, true) }

// BenchmarkRescore10k is the same at a tenth of the size, for quick runs.
func BenchmarkRescore10k(b *testing.B) { benchRescore(b, 10000) }

// BenchmarkApplyEvent measures the incremental path: one product event
// applied, rescored and committed, in consumer-sized batches of 500 over
// 1,000 accounts that already have 60 days of history.
func BenchmarkApplyEvent(b *testing.B) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	db, err := kv.Open(filepath.Join(b.TempDir(), "bench.db"), kv.Options{NoSync: true, SchemaVersion: store.SchemaVersion})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	seedAccounts(b, db, "w", 1000, now)
	e, err := app.New(app.Options{DB: db, Log: boltLog{parts: 8}, Clock: clock.NewManual(now)})
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]*ingestionv1.LogRecord, 0, 500)
	b.ResetTimer()
	cpu0 := cputime.Process()
	defer func() { b.ReportMetric(float64((cputime.Process()-cpu0).Microseconds())/float64(b.N), "cpu-µs/event") }()
	for i := 0; i < b.N; {
		recs = recs[:0]
		for ; len(recs) < 500 && i < b.N; i++ {
			r := event(fmt.Sprintf("acct-%06d", i%1000), 151, track, fmt.Sprintf("u%d", i%5), fmt.Sprintf("f%d", i%7))
			r.GetEvent().Workspace = "w"
			recs = append(recs, r)
		}
		if err := db.Update(func(tx *kv.Tx) error { return e.ApplyIngestion(tx, 0, recs) }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplySuiteEvent measures the incremental path under the whole
// suite benchmark's traffic (services/ingestion/cmd/ingestload): one
// "report_created" track event with three properties per record, for 1,000
// accounts that are prospects (no billing event: not scored) with five
// users each, accounts taking turns as the load tool's batches do. batch is
// the consumer's transaction: from one load batch to the 4,096 records a
// lagging consumer coalesces.
func BenchmarkApplySuiteEvent(b *testing.B) {
	for _, batch := range []int{100, 1000, 4096} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchApplySuite(b, batch) })
	}
}

func benchApplySuite(b *testing.B, batch int) {
	const accounts = 1000
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	db, err := kv.Open(filepath.Join(b.TempDir(), "bench.db"), kv.Options{NoSync: true, SchemaVersion: store.SchemaVersion})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	e, err := app.New(app.Options{DB: db, Log: boltLog{parts: 8}, Clock: clock.NewManual(now)})
	if err != nil {
		b.Fatal(err)
	}
	props, err := structpb.NewStruct(map[string]any{"plan": "pro", "rows": 12, "path": "/reports/new"})
	if err != nil {
		b.Fatal(err)
	}
	mk := func(seq int) *ingestionv1.LogRecord {
		ev := &ingestionv1.Event{Workspace: "w", AccountId: fmt.Sprint("acct-", seq%accounts), Type: track,
			MessageId: fmt.Sprintf("run-%016d", seq), UserId: fmt.Sprint("user-", seq%(accounts*5)),
			Event: "report_created", Properties: props,
			Timestamp: timestamppb.New(now.Add(time.Duration(seq) * 50 * time.Microsecond))}
		return &ingestionv1.LogRecord{Offset: uint64(seq + 1), Kind: &ingestionv1.LogRecord_Event{Event: ev}}
	}
	seq := 0
	// The records are built before the clock starts: decoding and building
	// them is not health's work.
	build := func(n int) []*ingestionv1.LogRecord {
		recs := make([]*ingestionv1.LogRecord, n)
		for i := range recs {
			recs[i] = mk(seq)
			seq++
		}
		return recs
	}
	run := func(recs []*ingestionv1.LogRecord) {
		for i := 0; i < len(recs); i += batch {
			part := recs[i:min(i+batch, len(recs))]
			if err := db.Update(func(tx *kv.Tx) error { return e.ApplyIngestion(tx, 0, part) }); err != nil {
				b.Fatal(err)
			}
		}
	}
	run(build(accounts * 10)) // every account exists, with its five users
	recs := build(b.N)
	b.ResetTimer()
	cpu0 := cputime.Process()
	run(recs)
	b.ReportMetric(float64((cputime.Process()-cpu0).Microseconds())/float64(b.N), "cpu-µs/event")
}
