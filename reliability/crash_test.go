package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
)

const (
	seed       = 42
	nAccounts  = 50
	batchSize  = 25
	crashKills = 12
)

// disruption is what a run does to the suite while it ingests: before
// sending batch number i, act(i) may kill, stop or restart processes.
type disruption func(t *testing.T, s *suite, batch int, nBatches int)

// runWorkload starts the four services, applies the routing config,
// ingests the workload under the given disruption, checks that every event
// was acknowledged and is in the log exactly once, and returns the settled
// derived state.
func runWorkload(t *testing.T, events []*ingestionv1.Event, accounts []string, disrupt disruption) snapshot {
	t.Helper()
	return runWorkloadOn(t, newSuite(t), events, accounts, disrupt)
}

// runWorkloadOn is runWorkload on a suite the caller has prepared (e.g.
// scaled); it starts every replica of every service.
func runWorkloadOn(t *testing.T, s *suite, events []*ingestionv1.Event, accounts []string, disrupt disruption) snapshot {
	t.Helper()
	for _, svc := range services {
		for _, name := range s.replicaNames(svc) {
			s.start(name)
		}
	}
	ctx := t.Context()
	// Routing's owners, pools and rules are per workspace, on the routing
	// replica that keeps it.
	for _, ws := range s.workspaces() {
		ro := routingv1.NewRoutingServiceClient(s.conn(s.wsOwner("routing", ws), s.keysOf(ws).admin))
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := setupRouting(actx, ro); err != nil {
			cancel()
			t.Fatalf("workspace %s: %v", ws, err)
		}
		cancel()
	}

	// Each batch is sent as one per workspace (in the workload's order
	// within each), with the workspace's key, to its ingestion replica.
	clients := map[string]ingestionv1.IngestionServiceClient{}
	for _, ws := range s.workspaces() {
		clients[ws] = ingestionv1.NewIngestionServiceClient(s.conn(s.wsOwner("ingestion", ws), s.keysOf(ws).write))
	}
	acked := map[string]bool{}
	nBatches := (len(events) + batchSize - 1) / batchSize
	retries := 0
	for i := range nBatches {
		batch := events[i*batchSize : min((i+1)*batchSize, len(events))]
		var done chan struct{}
		if disrupt != nil {
			// The disruption runs while the batch is in flight, so a kill
			// can land in the middle of a group commit.
			done = make(chan struct{})
			go func() {
				defer close(done)
				disrupt(t, s, i, nBatches)
			}()
		}
		byWorkspace := map[string][]*ingestionv1.Event{}
		for _, ev := range batch {
			ws := s.workspaceOf(ev.GetContext().GetFields()["groupId"].GetStringValue())
			byWorkspace[ws] = append(byWorkspace[ws], ev)
		}
		var (
			results []*ingestionv1.EventResult
			err     error
		)
		for _, ws := range s.workspaces() {
			if len(byWorkspace[ws]) == 0 {
				continue
			}
			resp, r, serr := sendBatch(ctx, clients[ws], byWorkspace[ws])
			retries += r
			if serr != nil {
				err = fmt.Errorf("workspace %s: %w", ws, serr)
				break
			}
			results = append(results, resp.GetResults()...)
		}
		if done != nil {
			<-done
			if t.Failed() {
				t.FailNow()
			}
		}
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		for _, res := range results {
			switch res.GetStatus() {
			case ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED, ingestionv1.EventStatus_EVENT_STATUS_DUPLICATE:
				acked[res.GetMessageId()] = true
			default:
				t.Fatalf("batch %d event %d (%s) %v: %s %s", i, res.GetIndex(), res.GetMessageId(), res.GetStatus(), res.GetField(), res.GetReason())
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// Every process is up again at the end of a run.
	for _, name := range services {
		s.mu.Lock()
		up := s.procs[name] != nil
		s.mu.Unlock()
		if !up {
			s.start(name)
		}
	}
	t.Logf("ingested %d events in %d batches (%d retries after failures)", len(events), nBatches, retries)
	if len(acked) != len(events) {
		t.Fatalf("acknowledged %d distinct events, want %d", len(acked), len(events))
	}
	ids, err := s.ingestedIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		if n := ids[ev.GetMessageId()]; n != 1 {
			t.Errorf("message %s is in the ingestion log %d times, want exactly once", ev.GetMessageId(), n)
		}
	}
	if len(ids) != len(events) {
		t.Errorf("ingestion log holds %d distinct message ids, want %d", len(ids), len(events))
	}
	snap, err := s.settle(ctx, accounts)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// TestCrashAndOutage runs the same workload three times: undisturbed; with
// services SIGKILLed at seeded random points and restarted; and with the
// downstream services stopped for part of the load. The derived state of
// the disturbed runs must equal the undisturbed run.
func TestCrashAndOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("suite-level test")
	}
	events, accounts, want := baseline(t, "undisturbed")

	t.Run("crash", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(seed, 7))
		nBatches := (len(events) + batchSize - 1) / batchSize
		plan := map[int]string{}
		for len(plan) < crashKills {
			plan[1+rng.IntN(nBatches-1)] = services[rng.IntN(len(services))]
		}
		got := runWorkload(t, events, accounts, func(t *testing.T, s *suite, batch, _ int) {
			name, ok := plan[batch]
			if !ok {
				return
			}
			t.Logf("batch %d: SIGKILL %s and restart it", batch, name)
			s.kill(name)
			s.start(name)
		})
		compare(t, "after crashes", want, got)
	})

	t.Run("downstream outage", func(t *testing.T) {
		got := runWorkload(t, events, accounts, func(t *testing.T, s *suite, batch, n int) {
			switch batch {
			case n / 4:
				t.Logf("batch %d: stop stages, health and routing", batch)
				for _, name := range []string{"routing", "health", "stages"} {
					s.stop(name)
				}
			case 3 * n / 4:
				t.Logf("batch %d: start stages, health and routing", batch)
				for _, name := range []string{"stages", "health", "routing"} {
					s.start(name)
				}
			}
		})
		compare(t, "after the outage", want, got)
	})
}

// checkNonTrivial guards against comparing two empty states: the workload
// must have moved accounts through stages, scored them and routed some.
func checkNonTrivial(t *testing.T, s snapshot) {
	t.Helper()
	var staged, scored, routed int
	for k, v := range s {
		switch {
		case len(k) > 7 && k[:7] == "stages/" && v != "not found":
			staged++
		case len(k) > 7 && k[:7] == "health/" && v != "not found":
			scored++
		case len(k) > 8 && k[:8] == "routing/" && v != "":
			routed++
		}
	}
	t.Logf("baseline: %d accounts staged, %d scored, %d with assignments", staged, scored, routed)
	if staged == 0 || scored == 0 || routed == 0 {
		t.Fatalf("baseline state is trivial (staged %d, scored %d, routed %d): the comparison would prove nothing", staged, scored, routed)
	}
}

// compare fails on differences in the required state and logs the
// order-dependent routing lines that differ (see signalledPrefix).
func compare(t *testing.T, what string, want, got snapshot) {
	t.Helper()
	if d := want.diff(got, 10, required); len(d) > 0 {
		t.Errorf("state %s differs from the undisturbed run:\n%s", what, strings.Join(d, "\n"))
	}
	if d := want.diff(got, 10, signalled); len(d) > 0 {
		t.Logf("risk/renewal handoffs %s differ (read order of three logs, not required equal):\n%s", what, strings.Join(d, "\n"))
	}
}

// baseline builds the seeded workload and runs it once, undisturbed, on one
// replica of each service, as subtest name: the state the disturbed or
// scaled runs must reproduce. Event times lie in the 36 hours before the
// start of today, so that every one is in the past and no time-based rule
// changes its answer between runs.
func baseline(t *testing.T, name string) ([]*ingestionv1.Event, []string, snapshot) {
	t.Helper()
	return baselineOn(t, name, nil)
}

// baselineOn is baseline on a suite prepare sets up first (e.g. spreads
// the accounts over workspaces); nil prepares nothing.
func baselineOn(t *testing.T, name string, prepare func(*suite)) ([]*ingestionv1.Event, []string, snapshot) {
	t.Helper()
	base := time.Now().UTC().Truncate(24 * time.Hour)
	events := workload(seed, nAccounts, base)
	accounts := make([]string, nAccounts)
	for a := range accounts {
		accounts[a] = fmt.Sprintf("acct-%03d", a)
	}
	var want snapshot
	t.Run(name, func(t *testing.T) {
		s := newSuite(t)
		if prepare != nil {
			prepare(s)
		}
		want = runWorkloadOn(t, s, events, accounts, nil)
		checkNonTrivial(t, want)
	})
	if want == nil {
		t.Fatalf("no %s baseline", name)
	}
	return events, accounts, want
}
