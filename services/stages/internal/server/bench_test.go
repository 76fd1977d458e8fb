package server

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/stream"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/services/stages/internal/journey"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
	"go.etcd.io/bbolt"
)

// BenchmarkFunnel computes the funnel of 100,000 accounts with 3 stage
// visits each on average, from a real bbolt file.
func BenchmarkFunnel(b *testing.B) {
	def, err := journey.Template("seven-stage-b2b")
	if err != nil {
		b.Fatal(err)
	}
	db := storetest.Open(b)
	const accounts = 100000
	err = db.Update(func(tx *bbolt.Tx) error {
		for a := 0; a < accounts; a++ {
			acct := fmt.Sprintf("acct-%06d", a)
			at := t0.Add(time.Duration(a) * time.Minute)
			n := 1 + a%5
			for s := 0; s < n && s < len(def.GetStages()); s++ {
				v := &store.Visit{Stage: def.GetStages()[s].GetId(), Account: acct, Entered: at, Cohort: at.Format("2006-01"), Segment: []string{"smb", "mid", "ent"}[a%3]}
				at = at.Add(time.Duration(1+a%30) * 24 * time.Hour)
				if s < n-1 {
					v.Left, v.Outcome = at, store.OutcomeConverted
				}
				v.Dropoff = a%7 == 0
				if err := store.Live.PutVisit(tx, "w", "b2b", v); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		err := db.View(func(tx *bbolt.Tx) error {
			resp, err := computeFunnel(tx, store.Live, "w", "b2b", def, "", "")
			if err != nil {
				return err
			}
			if resp.GetAccounts() != accounts {
				return fmt.Errorf("accounts = %d", resp.GetAccounts())
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEventToSubscribe measures, at a paced 5,000 events/s, the time
// from an event's append to the ingestion log (start of the call) to its transition
// arriving on a Subscribe stream (over bufconn, NoSync files). Every event is
// the first of a new account, so each one produces a transition. It reports
// p50 and p99 in milliseconds.
func BenchmarkEventToSubscribe(b *testing.B) {
	r := newRig(b)
	svc, ctx := r.client("service")
	received := make(chan string, 1<<16)
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for p := uint32(0); p < parts; p++ {
		sub, err := svc.Subscribe(subCtx, &stagesv1.SubscribeRequest{Partition: p})
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				resp, err := sub.Recv()
				if err != nil {
					return
				}
				for _, rec := range resp.GetRecords() {
					if tr := rec.GetTransition(); tr != nil {
						received <- tr.GetTriggerMessageId()
					}
				}
			}
		}()
	}
	const rate = 5000
	n := b.N
	sent := make(map[string]time.Time, n)
	var mu sync.Mutex
	b.ResetTimer()
	go func() {
		tick := time.Second / rate
		next := time.Now()
		for i := 0; i < n; i++ {
			e := event(fmt.Sprintf("acct-%d", i), "u", "demo_requested", t0, nil)
			e.MessageId = fmt.Sprintf("m-%d", i)
			p := stream.Partition("w", e.GetAccountId(), parts)
			data, _ := proto.Marshal(&ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: e}})
			// Stamped before the append, so the figure includes the append
			// itself: an upper bound of acknowledgement-to-visible.
			mu.Lock()
			sent[e.MessageId] = time.Now()
			mu.Unlock()
			if _, err := r.ingest.Append(context.Background(), p, data); err != nil {
				return
			}
			next = next.Add(tick)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
		}
	}()
	lat := make([]time.Duration, 0, n)
	for len(lat) < n {
		id := <-received
		now := time.Now()
		mu.Lock()
		at := sent[id]
		mu.Unlock()
		lat = append(lat, now.Sub(at))
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[(len(lat)*99+99)/100-1].Microseconds())/1000, "p99_ms")
}
