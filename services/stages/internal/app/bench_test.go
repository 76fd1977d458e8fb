package app

import (
	"testing"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
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
