package app

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	pkgstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/ingestion/internal/store"
	"github.com/cairn-dev/cairn/services/ingestion/internal/validate"
	"google.golang.org/protobuf/types/known/structpb"
)

// BenchmarkIngest measures durable (fsynced) ingestion of batches of 100
// events with 1 and 8 concurrent writers, with group commit and with one
// transaction per batch. One op is one batch; events/s is reported.
func BenchmarkIngest(b *testing.B) {
	for _, mode := range []struct {
		name    string
		noGroup bool
	}{{"group", false}, {"nogroup", true}} {
		for _, conc := range []int{1, 8, 32} {
			b.Run(fmt.Sprintf("%s/conc=%d", mode.name, conc), func(b *testing.B) {
				benchIngest(b, mode.noGroup, conc, 100)
			})
		}
	}
}

func benchIngest(b *testing.B, noGroup bool, conc, batch int) {
	db, err := pkgstore.Open(filepath.Join(b.TempDir(), "ingestion.db"), pkgstore.Options{SchemaVersion: store.SchemaVersion})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	clk := clock.Real{}
	s, err := New(db, Options{Partitions: 8, DedupWindow: 7 * 24 * time.Hour, Clock: clk, NoGroupCommit: noGroup})
	if err != nil {
		b.Fatal(err)
	}
	props, _ := structpb.NewStruct(map[string]any{"plan": "pro", "rows": 12, "path": "/reports/new"})
	makeBatch := func(n int64) []*ingestionv1.Event {
		out := make([]*ingestionv1.Event, batch)
		for i := range out {
			ctx, _ := structpb.NewStruct(map[string]any{"groupId": fmt.Sprint("acct-", (n*int64(batch)+int64(i))%500)})
			e := &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, MessageId: fmt.Sprint("m-", n, "-", i),
				UserId: fmt.Sprint("u-", i%50), Event: "report_created", Properties: props, Context: ctx}
			if err := validate.Event(e, validate.DefaultLimits(), clk.Now()); err != nil {
				b.Fatal(err)
			}
			out[i] = e
		}
		return out
	}
	// The indexer runs as in the service, and the clock stops only once
	// everything staged is indexed, so the figure includes indexing.
	ctx, cancel := context.WithCancel(context.Background())
	indexed := make(chan error, 1)
	go func() { indexed <- s.Index(ctx) }()
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
				if _, err := s.Ingest(context.Background(), "bench", makeBatch(n)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := s.flush(context.Background(), 0); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	cancel()
	if err := <-indexed; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	st := db.Bolt().Stats()
	b.ReportMetric(float64(b.N*batch)/elapsed.Seconds(), "events/s")
	// Pages written per event show the write amplification behind the
	// fsync cost: a commit writes every leaf (and its parents) it touched.
	b.ReportMetric(float64(st.TxStats.GetWrite())/float64(b.N*batch), "pages/event")
}
