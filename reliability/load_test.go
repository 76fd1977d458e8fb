package reliability

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
)

const (
	loadAccounts = 500
	loadRounds   = 4
	loadBatch    = 100
	// At least loadIngesters concurrent unary Ingest clients and
	// loadRouters routing writers take the paced work, more at higher rates
	// so that the offered rate is not capped by the number of callers.
	loadIngesters = 4
	loadRouters   = 4
)

// loadRates returns the paced open-loop rates: events/s (CAIRN_LOAD_RATE,
// default 3,000) and routing writes/s (CAIRN_LOAD_ROUTING_RATE, default
// 100; each write is a Qualify or a manual Handoff followed by a
// RecordTouch). The defaults fit CI's race run on 2 cores; the benchmarked
// rates (docs/benchmarks.md) are 50,000 events/s paced into ingestion alone,
// 12,000–15,000 events/s into the whole suite, and 1,000 Qualify/s.
func loadRates(t *testing.T) (events, routing float64) {
	events, routing = 3000, 100
	for _, v := range []struct {
		env string
		dst *float64
	}{{"CAIRN_LOAD_RATE", &events}, {"CAIRN_LOAD_ROUTING_RATE", &routing}} {
		if e := os.Getenv(v.env); e != "" {
			r, err := strconv.ParseFloat(e, 64)
			if err != nil || r <= 0 || math.IsInf(r, 0) {
				t.Fatalf("%s=%q: want a positive number", v.env, e)
			}
			*v.dst = r
		}
	}
	return events, routing
}

// paced hands the indexes 0..n-1 to work at rate per second from start, open
// loop: an index is released at its due time whether or not earlier work is
// done (the channel holds all n), so a slow server shows as a lower achieved
// rate, not as a slower offered one.
func paced(ctx context.Context, n int, rate float64, start time.Time) <-chan int {
	ch := make(chan int, n)
	go func() {
		defer close(ch)
		for i := range n {
			due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
			ch <- i
		}
	}()
	return ch
}

// gauges reads one process's goroutine count and Go heap in use.
func (s *suite) gauges(ctx context.Context, name string) (goroutines, heap float64, err error) {
	g, err := s.scrape(ctx, name, "go_goroutines")
	if err != nil || len(g) != 1 {
		return 0, 0, fmt.Errorf("scrape go_goroutines of %s: %d series, %w", name, len(g), err)
	}
	h, err := s.scrape(ctx, name, "go_memstats_heap_inuse_bytes")
	if err != nil || len(h) != 1 {
		return 0, 0, fmt.Errorf("scrape go_memstats_heap_inuse_bytes of %s: %d series, %w", name, len(h), err)
	}
	return g[0].value, h[0].value, nil
}

// TestSustainedLoad drives rounds of a mixed workload at paced open-loop
// rates: concurrent ingest clients (batches of 100), routing writes
// (Qualify or a manual Handoff, each followed by RecordTouch) and three
// readers querying stages, health and routing. After each round the
// consumers must settle; goroutines and heap after the last round must be no
// higher than after the first plus a margin (nothing accumulates per request
// or per record), and every acknowledged event and assignment must be
// stored exactly once. Bounded by the amount of work, not by time; the
// achieved rates are logged, not asserted.
func TestSustainedLoad(t *testing.T) {
	s := newSuite(t)
	for _, name := range services {
		s.start(name)
	}
	ctx := t.Context()
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := setupRouting(actx, routingv1.NewRoutingServiceClient(s.conn("routing", s.keys.admin)))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	eventRate, routingRate := loadRates(t)
	accounts := make([]string, loadAccounts)
	for a := range accounts {
		accounts[a] = fmt.Sprintf("acct-%03d", a)
	}
	ing := ingestionv1.NewIngestionServiceClient(s.conn("ingestion", s.keys.write))
	st := stagesv1.NewStagesServiceClient(s.conn("stages", s.keys.read))
	he := healthv1.NewHealthServiceClient(s.conn("health", s.keys.read))
	ro := routingv1.NewRoutingServiceClient(s.conn("routing", s.keys.read))
	rw := routingv1.NewRoutingServiceClient(s.conn("routing", s.keys.write))
	base := time.Now().UTC().Truncate(24 * time.Hour)

	type sample struct{ goroutines, heap float64 }
	first := map[string]sample{}
	var (
		events, routed int
		ingestD        time.Duration
		routeD         time.Duration
		queries        atomic.Int64
		acked          = map[string]bool{} // message ids acknowledged
		assignments    = map[string]bool{} // assignment ids returned and touched
		mu             sync.Mutex
	)
	for round := range loadRounds {
		evs := workload(uint64(1000+round), loadAccounts, base)
		nBatches := (len(evs) + loadBatch - 1) / loadBatch
		// The routing writes are sized to span the same paced interval as
		// the events: the amount of work is fixed before the round starts.
		nRouting := int(float64(len(evs)) / eventRate * routingRate)
		ingesters := max(loadIngesters, int(eventRate/2000))
		routers := max(loadRouters, int(routingRate/50))
		rctx, stop := context.WithCancel(ctx)
		var readers, ingestWG, routeWG sync.WaitGroup
		errs := make(chan error, 3+ingesters+routers)
		reader := func(q func(ctx context.Context, acct string) error) {
			defer readers.Done()
			for i := 0; rctx.Err() == nil; i++ {
				if err := q(rctx, accounts[i%len(accounts)]); err != nil && rctx.Err() == nil {
					errs <- err
					return
				}
				queries.Add(1)
			}
		}
		readers.Add(3)
		go reader(func(ctx context.Context, a string) error {
			_, err := st.GetAccountJourney(ctx, &stagesv1.GetAccountJourneyRequest{AccountId: a})
			return ignoreNotFound(err)
		})
		go reader(func(ctx context.Context, a string) error {
			_, err := he.GetAccountHealth(ctx, &healthv1.GetAccountHealthRequest{AccountId: a})
			return ignoreNotFound(err)
		})
		go reader(func(ctx context.Context, a string) error {
			_, err := ro.ListAssignments(ctx, &routingv1.ListAssignmentsRequest{AccountId: a})
			return err
		})
		start := time.Now()
		batches := paced(rctx, nBatches, eventRate/loadBatch, start)
		for range ingesters {
			ingestWG.Add(1)
			go func() {
				defer ingestWG.Done()
				for b := range batches {
					batch := evs[b*loadBatch : min((b+1)*loadBatch, len(evs))]
					resp, _, err := sendBatch(rctx, ing, batch)
					if err == nil && resp.GetRejected() != 0 {
						err = fmt.Errorf("batch %d: %d events rejected: %v", b, resp.GetRejected(), resp.GetResults())
					}
					if err != nil {
						errs <- fmt.Errorf("ingest: %w", err)
						stop()
						return
					}
					mu.Lock()
					for _, e := range batch {
						acked[e.GetMessageId()] = true
					}
					mu.Unlock()
				}
			}()
		}
		writes := paced(rctx, nRouting, routingRate, start)
		for range routers {
			routeWG.Add(1)
			go func() {
				defer routeWG.Done()
				for w := range writes {
					id, err := routingWrite(rctx, rw, round, w, accounts[(w*7)%len(accounts)])
					if err != nil {
						errs <- fmt.Errorf("routing write %d: %w", w, err)
						stop()
						return
					}
					mu.Lock()
					assignments[id] = true
					mu.Unlock()
				}
			}()
		}
		var ingestT, routeT time.Duration
		var done sync.WaitGroup
		done.Add(2)
		go func() { defer done.Done(); ingestWG.Wait(); ingestT = time.Since(start) }()
		go func() { defer done.Done(); routeWG.Wait(); routeT = time.Since(start) }()
		done.Wait()
		stop()
		readers.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
		ingestD += ingestT
		routeD += routeT
		events += len(evs)
		routed += nRouting
		t.Logf("round %d: %d events in %s (%.0f/s, offered %.0f/s, %d clients), %d routing writes in %s (%.0f/s, offered %.0f/s, %d clients)",
			round, len(evs), ingestT.Round(time.Millisecond), float64(len(evs))/ingestT.Seconds(), eventRate, ingesters,
			nRouting, routeT.Round(time.Millisecond), float64(nRouting)/routeT.Seconds(), routingRate, routers)
		if _, err := s.settle(ctx, accounts); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for _, name := range services {
			g, h, err := s.gauges(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("round %d %s: %v goroutines, heap in use %.1f MiB", round, name, g, h/(1<<20))
			if round == 0 {
				first[name] = sample{g, h}
				continue
			}
			if round == loadRounds-1 {
				f := first[name]
				// A few goroutines come and go (gRPC transports, timers);
				// a leak per batch or per query would add hundreds.
				if g > f.goroutines+20 {
					t.Errorf("%s: %v goroutines after the last round, %v after the first: goroutines accumulate", name, g, f.goroutines)
				}
				// The heap may grow with the data (caches, state), but not
				// without bound: the same work again must not double it.
				if h > 2*f.heap+32<<20 {
					t.Errorf("%s: heap in use %.1f MiB after the last round, %.1f MiB after the first", name, h/(1<<20), f.heap/(1<<20))
				}
			}
		}
	}
	t.Logf("%d rounds: %d events in %s (%.0f events/s), %d routing writes in %s (%.0f/s), achieved with the readers running, under contention; %d queries",
		loadRounds, events, ingestD.Round(time.Millisecond), float64(events)/ingestD.Seconds(),
		routed, routeD.Round(time.Millisecond), float64(routed)/routeD.Seconds(), queries.Load())

	// Every acknowledged event is in the log exactly once.
	ids, err := s.ingestedIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(acked) != events {
		t.Errorf("%d events acknowledged, %d sent", len(acked), events)
	}
	for id := range acked {
		if ids[id] != 1 {
			t.Errorf("acknowledged event %s is in the log %d times, want 1", id, ids[id])
		}
	}
	// Every assignment returned is stored and carries its touch.
	for id := range assignments {
		gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		a, err := ro.GetAssignment(gctx, &routingv1.GetAssignmentRequest{AssignmentId: id})
		cancel()
		if err != nil {
			t.Errorf("assignment %s: %v", id, err)
			continue
		}
		if a.GetAssignment().GetFirstTouchAt() == nil {
			t.Errorf("assignment %s: touched but no first_touch_at", id)
		}
	}
	t.Logf("%d events in the log exactly once, %d distinct assignments stored and touched", len(acked), len(assignments))
}

// routingWrite makes the w-th routing write of a round: three in four are
// an MQL Qualify for a new lead, one in four a manual handoff of the
// account to the AE; each is followed by a "contacted" touch. It returns the
// assignment id.
func routingWrite(ctx context.Context, c routingv1.RoutingServiceClient, round, w int, account string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	reqID := fmt.Sprintf("load-%d-%05d", round, w)
	var a *routingv1.Assignment
	if w%4 == 3 {
		resp, err := c.Handoff(ctx, &routingv1.HandoffRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_MANUAL, AccountId: account, OwnerId: "olivia", Reason: "load test", RequestId: reqID})
		if err != nil {
			return "", fmt.Errorf("handoff: %w", err)
		}
		a = resp.GetAssignment()
	} else {
		resp, err := c.Qualify(ctx, &routingv1.QualifyRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, RequestId: reqID, Lead: &routingv1.Lead{
			LeadId: reqID, AccountId: account, Email: reqID + "@lead.example",
		}})
		if err != nil {
			return "", fmt.Errorf("qualify: %w", err)
		}
		a = resp.GetAssignment()
	}
	if a.GetAssignmentId() == "" {
		return "", fmt.Errorf("%s: no assignment returned", reqID)
	}
	if _, err := c.RecordTouch(ctx, &routingv1.RecordTouchRequest{AssignmentId: a.GetAssignmentId(), TouchType: "contacted"}); err != nil {
		return "", fmt.Errorf("touch %s: %w", a.GetAssignmentId(), err)
	}
	return a.GetAssignmentId(), nil
}

func ignoreNotFound(err error) error {
	if status.Code(err) == codes.NotFound {
		return nil
	}
	return err
}
