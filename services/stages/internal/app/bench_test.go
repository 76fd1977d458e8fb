package app

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/cputime"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
)

// BenchmarkApply measures events applied from the log per second with the
// seven-stage template (7 stages, 17 criteria), in consumer-sized batches of
// 512 records per transaction, over 2,000 accounts.
func BenchmarkApply(b *testing.B) {
	evs := history(2000, 60)
	recs := make([]*ingestionv1.LogRecord, len(evs))
	for i, e := range evs {
		recs[i] = &ingestionv1.LogRecord{Offset: uint64(i + 1), Kind: &ingestionv1.LogRecord_Event{Event: e}}
	}
	r := newRig(b, storetest.Open(b), clock.NewManual(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)))
	r.installTemplate("w", "seven-stage-b2b")
	const batch = 512
	b.ResetTimer()
	applied := 0
	for applied < b.N {
		for i := 0; i < len(recs) && applied < b.N; i += batch {
			end := min(i+batch, len(recs), i+b.N-applied)
			if err := r.db.Update(func(tx *pstore.Tx) error { return r.app.Apply(tx, 0, recs[i:end]) }); err != nil {
				b.Fatal(err)
			}
			applied += end - i
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkApplyDemo applies the load of `scripts/bench.sh suite`
// (services/ingestion/cmd/ingestload) as the running service does: track
// events "report_created" over 1,000 accounts of 5 users each, at ~20k
// events/s of event time, to the default journey installed on the first
// event, in consumer batches of the given size. Every account is placed
// before the timer starts, so this is the steady-state incremental path.
func BenchmarkApplyDemo(b *testing.B) {
	for _, batch := range []int{512, 4096} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchApplyDemo(b, batch) })
	}
}

func benchApplyDemo(b *testing.B, batch int) {
	const accounts = 1000
	start := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	props, err := structpb.NewStruct(map[string]any{"plan": "pro", "rows": 12, "path": "/reports/new"})
	if err != nil {
		b.Fatal(err)
	}
	seq := 0
	next := func(n int) []*ingestionv1.LogRecord {
		recs := make([]*ingestionv1.LogRecord, n)
		for i := range recs {
			ctx, _ := structpb.NewStruct(map[string]any{"groupId": fmt.Sprint("acct-", seq%accounts)})
			recs[i] = &ingestionv1.LogRecord{Offset: uint64(seq + 1), Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{
				Workspace: "w", AccountId: fmt.Sprint("acct-", seq%accounts), UserId: fmt.Sprint("user-", seq%(accounts*5)),
				Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "report_created", Source: "segment",
				MessageId: fmt.Sprintf("run-%016d", seq), Properties: props, Context: ctx,
				Timestamp: timestamppb.New(start.Add(time.Duration(seq) * 50 * time.Microsecond)),
			}}}
			seq++
		}
		return recs
	}
	r := newRig(b, storetest.Open(b), clock.NewManual(start))
	apply := func(recs []*ingestionv1.LogRecord) {
		if err := r.db.Update(func(tx *pstore.Tx) error { return r.app.Apply(tx, 0, recs) }); err != nil {
			b.Fatal(err)
		}
	}
	for range 10 {
		apply(next(accounts))
	}
	// Build the records up front so that only applying them is timed.
	recs := next(b.N)
	b.ResetTimer()
	cpu0 := cputime.Process()
	for i := 0; i < len(recs); i += batch {
		apply(recs[i:min(i+batch, len(recs))])
	}
	b.ReportMetric(float64((cputime.Process()-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/event")
}
