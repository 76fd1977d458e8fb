package server_test

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
)

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
