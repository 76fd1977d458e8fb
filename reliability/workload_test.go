package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
)

// routingYAML holds the routing rules. Every pool (see routingSetup) has a
// single owner, so that the owner of an assignment does not depend on the
// order in which routing sees accounts from different partitions (round
// robin would). No SLA policies: SLA clocks run on the wall clock and would
// make breach state timing-dependent.
const routingYAML = `fallback_pool: sdr-pool
rules:
  - {name: post-sale, types: [closed_won, renewal, risk], action: pool, pool: cs-pool}
  - {name: sql-to-ae, types: [sql], action: pool, pool: ae-pool}
  - {name: leads, types: [mql, pql], action: pool, pool: sdr-pool}
`

// setupRouting stores one owner per pool and applies routingYAML.
func setupRouting(ctx context.Context, c routingv1.RoutingServiceClient) error {
	for _, o := range []struct {
		id, pool string
		team     routingv1.Team
	}{
		{"sam", "sdr-pool", routingv1.Team_TEAM_SDR},
		{"olivia", "ae-pool", routingv1.Team_TEAM_AE},
		{"nora", "cs-pool", routingv1.Team_TEAM_CSM},
	} {
		if _, err := c.UpsertOwner(ctx, &routingv1.UpsertOwnerRequest{Owner: &routingv1.Owner{
			OwnerId: o.id, Name: o.id, Email: o.id + "@cairn.example", Team: o.team, TimeZone: "UTC",
		}}); err != nil {
			return fmt.Errorf("upsert owner %s: %w", o.id, err)
		}
		if _, err := c.UpsertPool(ctx, &routingv1.UpsertPoolRequest{Pool: &routingv1.Pool{
			PoolId: o.pool, Name: o.pool, OwnerIds: []string{o.id}, Strategy: routingv1.Strategy_STRATEGY_ROUND_ROBIN,
		}}); err != nil {
			return fmt.Errorf("upsert pool %s: %w", o.pool, err)
		}
	}
	if _, err := c.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Yaml: routingYAML}); err != nil {
		return fmt.Errorf("apply routing rules: %w", err)
	}
	return nil
}

// workload is a deterministic list of events for nAccounts accounts.
// Event times are spread over the 36 hours before base, so that no
// time-based rule (14-day drop-off timers, renewal windows) changes its
// answer while the test runs, and ascending in slice order so that a
// sequential sender delivers each account's events in event-time order.
func workload(seed uint64, nAccounts int, base time.Time) []*ingestionv1.Event {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	type step struct {
		acct, user int
		kind       string
	}
	var steps []step
	for a := range nAccounts {
		steps = append(steps, step{a, 0, "group"}, step{a, 0, "identify"}, step{a, 1, "identify"})
		for range 3 + rng.IntN(8) {
			steps = append(steps, step{a, rng.IntN(3), "product"})
		}
		if rng.IntN(10) < 7 {
			steps = append(steps, step{a, 0, "crm.mql"})
		}
		if rng.IntN(10) < 4 {
			steps = append(steps, step{a, 0, "crm.sql_accepted"})
		}
		if rng.IntN(10) < 5 {
			steps = append(steps, step{a, 1, "crm.closed_won"}, step{a, 1, "billing.contract_updated"})
		}
		for range rng.IntN(3) {
			steps = append(steps, step{a, 2, "support.ticket_opened"})
		}
		if rng.IntN(10) < 6 {
			steps = append(steps, step{a, 2, "survey.nps"})
		}
	}
	// Interleave accounts: a seeded shuffle, then a stable per-account order
	// is kept because each account's steps keep their relative order.
	perm := rng.Perm(len(steps))
	order := make([]step, 0, len(steps))
	queues := map[int][]step{}
	for _, st := range steps {
		queues[st.acct] = append(queues[st.acct], st)
	}
	for _, i := range perm {
		a := steps[i].acct
		order = append(order, queues[a][0])
		queues[a] = queues[a][1:]
	}
	start := base.Add(-36 * time.Hour)
	gap := 36 * time.Hour / time.Duration(len(order)+1)
	events := make([]*ingestionv1.Event, 0, len(order))
	features := []string{"report_created", "dashboard_shared", "alert_configured", "export_run", "integration_connected"}
	for i, st := range order {
		acct := fmt.Sprintf("acct-%03d", st.acct)
		user := fmt.Sprintf("user-%03d-%d", st.acct, st.user)
		ts := start.Add(time.Duration(i+1) * gap)
		ev := &ingestionv1.Event{
			MessageId: fmt.Sprintf("rel-%d-%05d", seed, i),
			UserId:    user,
			Timestamp: timestamppb.New(ts),
			Context:   fields(map[string]any{"groupId": acct}),
		}
		segment := []string{"smb", "mid-market", "enterprise"}[st.acct%3]
		switch st.kind {
		case "group":
			ev.Type, ev.GroupId = ingestionv1.EventType_EVENT_TYPE_GROUP, acct
			ev.Traits = fields(map[string]any{"name": "Account " + acct, "segment": segment, "plan": "business"})
		case "identify":
			ev.Type = ingestionv1.EventType_EVENT_TYPE_IDENTIFY
			ev.Traits = fields(map[string]any{"email": user + "@example.com", "role": "champion"})
		default:
			ev.Type, ev.Event = ingestionv1.EventType_EVENT_TYPE_TRACK, st.kind
			props := map[string]any{}
			switch st.kind {
			case "product":
				ev.Event = features[(st.acct+i)%len(features)]
			case "crm.mql":
				props["score"] = float64(50 + st.acct%50)
			case "crm.closed_won":
				props["amount"] = float64(10000 + 1000*st.acct)
			case "billing.contract_updated":
				props = map[string]any{
					"plan": "business", "seats": float64(10 + st.acct%40), "arr": float64(12000 + 500*st.acct),
					"contract_start": ts.Add(-30 * 24 * time.Hour).Format(time.RFC3339),
					"contract_end":   ts.Add(time.Duration(60+st.acct*5) * 24 * time.Hour).Format(time.RFC3339),
				}
			case "support.ticket_opened":
				props = map[string]any{"ticket_id": fmt.Sprintf("T-%d", i), "priority": []string{"p1", "p2", "p3"}[i%3]}
			case "survey.nps":
				props["score"] = float64(st.acct % 11)
			}
			if len(props) > 0 {
				ev.Properties = fields(props)
			}
		}
		events = append(events, ev)
	}
	return events
}

// fields builds a Struct from string and number values, the only kinds the
// workload uses.
func fields(m map[string]any) *structpb.Struct {
	f := make(map[string]*structpb.Value, len(m))
	for k, v := range m {
		switch v := v.(type) {
		case string:
			f[k] = structpb.NewStringValue(v)
		case float64:
			f[k] = structpb.NewNumberValue(v)
		}
	}
	return &structpb.Struct{Fields: f}
}

// retryable reports whether an Ingest error may come from a process being
// killed or restarted: the batch is then sent again with the same message
// ids, and deduplication makes the retry safe.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Internal, codes.Aborted, codes.ResourceExhausted:
		return true
	}
	return false
}

// sendBatch ingests one batch until it is acknowledged, retrying transient
// failures within a bounded guard; it returns every event's final result.
func sendBatch(ctx context.Context, c ingestionv1.IngestionServiceClient, batch []*ingestionv1.Event) (*ingestionv1.IngestResponse, int, error) {
	guard, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	retries := 0
	for {
		cctx, ccancel := context.WithTimeout(guard, 15*time.Second)
		resp, err := c.Ingest(cctx, &ingestionv1.IngestRequest{Events: batch}, grpc.WaitForReady(true))
		ccancel()
		if err == nil {
			return resp, retries, nil
		}
		if !retryable(err) || guard.Err() != nil {
			return nil, retries, fmt.Errorf("ingest a batch of %d after %d retries: %w", len(batch), retries, err)
		}
		retries++
		select {
		case <-guard.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}
