package reliability

import (
	"context"
	"fmt"
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
	loadAccounts = 200
	loadRounds   = 4
	loadBatch    = 250
)

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

// TestSustainedLoad drives rounds of a mixed workload (ingest while three
// readers query stages, health and routing) and checks that, once the
// consumers have settled, goroutines and heap after the last round are no
// higher than after the first round plus a margin: nothing accumulates per
// request or per record. Bounded by the amount of work, not by time.
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
	accounts := make([]string, loadAccounts)
	for a := range accounts {
		accounts[a] = fmt.Sprintf("acct-%03d", a)
	}
	ing := ingestionv1.NewIngestionServiceClient(s.conn("ingestion", s.keys.write))
	st := stagesv1.NewStagesServiceClient(s.conn("stages", s.keys.read))
	he := healthv1.NewHealthServiceClient(s.conn("health", s.keys.read))
	ro := routingv1.NewRoutingServiceClient(s.conn("routing", s.keys.read))
	base := time.Now().UTC().Truncate(24 * time.Hour)

	type sample struct{ goroutines, heap float64 }
	first := map[string]sample{}
	var (
		events  int
		ingestD time.Duration
		queries atomic.Int64
	)
	for round := range loadRounds {
		evs := workload(uint64(1000+round), loadAccounts, base)
		rctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		reader := func(q func(ctx context.Context, acct string) error) {
			defer wg.Done()
			for i := 0; rctx.Err() == nil; i++ {
				if err := q(rctx, accounts[i%len(accounts)]); err != nil && rctx.Err() == nil {
					errs <- err
					return
				}
				queries.Add(1)
			}
		}
		wg.Add(3)
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
		for i := 0; i < len(evs); i += loadBatch {
			if _, _, err := sendBatch(ctx, ing, evs[i:min(i+loadBatch, len(evs))]); err != nil {
				stop()
				wg.Wait()
				t.Fatalf("round %d: %v", round, err)
			}
		}
		ingestD += time.Since(start)
		events += len(evs)
		stop()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: query: %v", round, err)
		}
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
	t.Logf("ingested %d events in %d rounds; ingest wall time %s (%.0f events/s with readers running, measured under contention); %d queries",
		events, loadRounds, ingestD.Round(time.Millisecond), float64(events)/ingestD.Seconds(), queries.Load())
}

func ignoreNotFound(err error) error {
	if status.Code(err) == codes.NotFound {
		return nil
	}
	return err
}
