package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// scaleReplicas is how many replicas of stages and health the first scaled
// run starts.
const scaleReplicas = 2

// scaleWorkspaces are the workspaces TestScaleOut spreads the workload's
// accounts over (account n into scaleWorkspaces[n % 3]); with two ingestion
// or routing replicas, each holds at least one of them (checked).
var scaleWorkspaces = []string{workspace, "north-ws", "south-ws"}

// TestScaleOut runs the crash test's workload, its accounts spread over
// three workspaces, on one replica of each service, then on several
// replicas: stages and health split by partition (two and two, then three
// and two), each replica owning the partitions p % replicas == its index
// and the downstream consumers reading each partition from its owner; and
// with two ingestion and two routing replicas as well, split by workspace,
// each ingestion replica taking its workspaces' events into its own log,
// every downstream service following both logs, and each routing replica
// keeping its workspaces. Every account's journey, health and assignments,
// read from the replica that owns it, must equal the single-replica run,
// and so must the funnels, moments of truth, backtests and replays read
// through the gateway, which merges them from every replica's part; and
// each replica must hold only its own accounts or workspaces.
func TestScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("suite-level test")
	}
	spread := func(s *suite) { s.spread(scaleWorkspaces...) }
	events, accounts, want, wantAgg := scaleBaseline(t, spread)

	for _, tc := range []struct{ stages, health, ingestion, routing int }{
		{scaleReplicas, scaleReplicas, 1, 1},
		// Unequal counts: health replica i owns partitions that come from
		// different stages replicas.
		{3, 2, 1, 1},
		// Ingestion and routing split by workspace.
		{scaleReplicas, scaleReplicas, 2, 2},
	} {
		name := fmt.Sprintf("%d stages %d health", tc.stages, tc.health)
		if tc.ingestion > 1 || tc.routing > 1 {
			name += fmt.Sprintf(" %d ingestion %d routing", tc.ingestion, tc.routing)
		}
		t.Run(name, func(t *testing.T) {
			s := newSuite(t)
			spread(s)
			s.scale("stages", tc.stages)
			s.scale("health", tc.health)
			s.scale("ingestion", tc.ingestion)
			s.scale("routing", tc.routing)
			got := runWorkloadOn(t, s, events, accounts, nil)
			compare(t, "with "+name+" replicas", want, got)
			checkSharded(t, s, accounts)
			checkWorkspaceSplit(t, s, accounts)
			s.start("gateway")
			compareAggregates(t, wantAgg, readAggregates(t, s, accounts))
			checkGateway(t, s, accounts)
		})
	}
}

// checkWorkspaceSplit checks the services split by workspace (ingestion,
// routing) when they run as several replicas: each replica holds some of
// the workspaces, a workspace's account timeline is served by its
// ingestion replica and refused by the other with FailedPrecondition
// naming the owner, and so are its routing assignments.
func checkWorkspaceSplit(t *testing.T, s *suite, accounts []string) {
	t.Helper()
	ctx := t.Context()
	for _, svc := range []string{"ingestion", "routing"} {
		names := s.replicaNames(svc)
		if len(names) < 2 {
			continue
		}
		held := map[string][]string{}
		for _, ws := range s.workspaces() {
			held[s.wsOwner(svc, ws)] = append(held[s.wsOwner(svc, ws)], ws)
		}
		t.Logf("%s workspaces by replica: %v", svc, held)
		for _, name := range names {
			if len(held[name]) == 0 {
				t.Errorf("%s holds no workspace: the workload did not exercise it", name)
			}
		}
	}
	if len(s.replicaNames("ingestion")) < 2 && len(s.replicaNames("routing")) < 2 {
		return
	}
	done := map[string]bool{}
	for _, a := range accounts {
		ws := s.workspaceOf(a)
		if done[ws] {
			continue
		}
		done[ws] = true
		read := s.keysOf(ws).read
		for _, svc := range []string{"ingestion", "routing"} {
			for i, name := range s.replicaNames(svc) {
				var err error
				n := 0
				switch svc {
				case "ingestion":
					var r *ingestionv1.ListAccountEventsResponse
					r, err = ingestionv1.NewIngestionServiceClient(s.conn(name, read)).ListAccountEvents(ctx, &ingestionv1.ListAccountEventsRequest{AccountId: a})
					n = len(r.GetEvents())
				case "routing":
					_, err = routingv1.NewRoutingServiceClient(s.conn(name, read)).ListAssignments(ctx, &routingv1.ListAssignmentsRequest{AccountId: a})
					n = 1
				}
				owner := s.wsOwner(svc, ws)
				switch {
				case name == owner && (err != nil || n == 0):
					t.Errorf("%s of %s (%s) on its owner %s: %d items, %v", svc, a, ws, name, n, err)
				case name != owner && (status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), fmt.Sprintf("replica %d of", stream.WorkspaceReplica(ws, len(s.replicaNames(svc)))))):
					t.Errorf("%s of %s (%s) on replica %d, which does not keep it: %v, want FailedPrecondition naming the owner", svc, a, ws, i, err)
				}
			}
		}
	}
}

// checkSharded checks that the replicas split the accounts: each replica
// holds some accounts, and an account is unknown to the replica that does
// not own it (so the equal results come from sharded state, not from every
// replica processing everything).
func checkSharded(t *testing.T, s *suite, accounts []string) {
	t.Helper()
	ctx := t.Context()
	held := map[string]int{}
	for _, a := range accounts {
		for _, svc := range []string{"stages", "health"} {
			owner := s.ownerOf(svc, a)
			for _, name := range s.replicaNames(svc) {
				var err error
				switch svc {
				case "stages":
					_, err = stagesv1.NewStagesServiceClient(s.conn(name, s.keysOf(s.workspaceOf(a)).read)).GetAccountJourney(ctx, &stagesv1.GetAccountJourneyRequest{AccountId: a})
				case "health":
					_, err = healthv1.NewHealthServiceClient(s.conn(name, s.keysOf(s.workspaceOf(a)).read)).GetAccountHealth(ctx, &healthv1.GetAccountHealthRequest{AccountId: a})
				}
				switch {
				case name == owner && err == nil:
					held[name]++
				case name == owner && status.Code(err) != codes.NotFound:
					t.Errorf("%s on its owner %s: %v", a, name, err)
				case name != owner && status.Code(err) != codes.NotFound:
					t.Errorf("%s on %s, which does not own it: err %v, want NotFound", a, name, err)
				}
			}
		}
	}
	t.Logf("accounts held by replica: %v", held)
	// A client with a misordered address list is told so, instead of
	// waiting on an empty partition: partition 0 belongs to replica 0.
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sub, err := stagesv1.NewStagesServiceClient(s.conn("stages-1", s.keys.service)).Subscribe(sctx, &stagesv1.SubscribeRequest{Partition: 0, FromOffset: 1})
	if err == nil {
		_, err = sub.Recv()
	}
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Subscribe to partition 0 on stages-1: %v, want FailedPrecondition", err)
	}
	for _, svc := range []string{"stages", "health"} {
		for _, name := range s.replicaNames(svc) {
			if held[name] == 0 {
				t.Errorf("replica %s holds no account: the workload did not exercise it", name)
			}
		}
	}
}

// checkGateway checks the gateway over replicas: every account's journey
// and health (a non-owner would answer 404), its event timeline (from its
// workspace's ingestion replica) and its assignments (from its workspace's
// routing replica); each list paged across the replicas lists every
// account of the workspace exactly once; and an event sent through the REST API with each workspace's key is
// accepted (its ingestion replica refuses other workspaces).
func checkGateway(t *testing.T, s *suite, accounts []string) {
	t.Helper()
	call := func(method, path, key, body string, into any) int {
		t.Helper()
		code, raw := s.rest(t, t.Context(), method, path, key, body)
		if into != nil && code == http.StatusOK {
			if err := json.Unmarshal(raw, into); err != nil {
				t.Fatalf("%s %s: decode: %v", method, path, err)
			}
		}
		return code
	}
	get := func(path, key string, into any) int { t.Helper(); return call(http.MethodGet, path, key, "", into) }
	byWorkspace := map[string][]string{}
	// Customer health lists only paying accounts; each account's own health
	// says whether it is one.
	scoredByWorkspace := map[string][]string{}
	for _, a := range accounts {
		key := s.keysOf(s.workspaceOf(a)).read
		byWorkspace[s.workspaceOf(a)] = append(byWorkspace[s.workspaceOf(a)], a)
		for _, path := range []string{"/v1/accounts/" + a + "/journey", "/v1/assignments?accountId=" + a} {
			if code := get(path, key, nil); code != http.StatusOK {
				t.Errorf("GET %s = %d, want 200 from the owning replica", path, code)
			}
		}
		var h struct {
			Health struct {
				Scored bool `json:"scored"`
			} `json:"health"`
		}
		if code := get("/v1/accounts/"+a+"/health", key, &h); code != http.StatusOK {
			t.Errorf("GET /v1/accounts/%s/health = %d, want 200 from the owning replica", a, code)
		} else if h.Health.Scored {
			scoredByWorkspace[s.workspaceOf(a)] = append(scoredByWorkspace[s.workspaceOf(a)], a)
		}
		var timeline struct {
			Events []json.RawMessage `json:"events"`
		}
		if code := get("/v1/accounts/"+a+"/events", key, &timeline); code != http.StatusOK || len(timeline.Events) == 0 {
			t.Errorf("GET /v1/accounts/%s/events = %d with %d events, want 200 with the account's events", a, code, len(timeline.Events))
		}
	}
	for ws, all := range byWorkspace {
		key := s.keysOf(ws).read
		for _, path := range []string{"/v1/journey/accounts", "/v1/health/accounts"} {
			want := all
			if path == "/v1/health/accounts" {
				want = scoredByWorkspace[ws]
				if len(want) == 0 {
					t.Errorf("%s has no paying account: the workload should give the health list something to page", ws)
				}
			}
			seen := map[string]int{}
			token := ""
			for pages := 0; ; pages++ {
				if pages > len(accounts) {
					t.Fatalf("%s: no last page after %d pages", path, pages)
				}
				var page struct {
					Accounts []struct {
						AccountID string `json:"accountId"`
					} `json:"accounts"`
					Page struct {
						NextPageToken string `json:"nextPageToken"`
					} `json:"page"`
				}
				q := url.Values{"page.pageSize": {"7"}}
				if token != "" {
					q.Set("page.pageToken", token)
				}
				if code := get(path+"?"+q.Encode(), key, &page); code != http.StatusOK {
					t.Fatalf("GET %s = %d", path, code)
				}
				for _, a := range page.Accounts {
					seen[a.AccountID]++
				}
				if token = page.Page.NextPageToken; token == "" {
					break
				}
			}
			for _, a := range want {
				if seen[a] != 1 {
					t.Errorf("%s of %s lists %s %d times, want once", path, ws, a, seen[a])
				}
			}
			if len(seen) != len(want) {
				t.Errorf("%s of %s lists %d accounts, want %d", path, ws, len(seen), len(want))
			}
		}
	}
	// Last, as it adds to the state compared above.
	for _, ws := range s.workspaces() {
		body := `{"events": [{"type": "EVENT_TYPE_TRACK", "userId": "gw-user", "event": "gateway_check", "messageId": "gw-` + ws + `"}]}`
		var r struct {
			Accepted int32 `json:"accepted"`
		}
		if code := call(http.MethodPost, "/v1/events:batch", s.keysOf(ws).write, body, &r); code != http.StatusOK || r.Accepted != 1 {
			t.Errorf("POST /v1/events:batch with %s's key = %d, accepted %d; want 200, 1", ws, code, r.Accepted)
		}
	}
}

// aggregates are the cross-account answers read through the gateway, by
// workspace and call ("north-ws GET /v1/funnel?cohort=..."): the ones the
// gateway merges from every replica's part.
type aggregates map[string]proto.Message

// scaleBaseline is baselineOn with one replica of each service, plus the
// aggregates read through a gateway over it.
func scaleBaseline(t *testing.T, prepare func(*suite)) ([]*ingestionv1.Event, []string, snapshot, aggregates) {
	t.Helper()
	base := time.Now().UTC().Truncate(24 * time.Hour)
	events := workload(seed, nAccounts, base)
	accounts := make([]string, nAccounts)
	for a := range accounts {
		accounts[a] = fmt.Sprintf("acct-%03d", a)
	}
	var want snapshot
	var agg aggregates
	t.Run("single replica", func(t *testing.T) {
		s := newSuite(t)
		prepare(s)
		want = runWorkloadOn(t, s, events, accounts, nil)
		checkNonTrivial(t, want)
		s.start("gateway")
		agg = readAggregates(t, s, accounts)
	})
	if want == nil || agg == nil {
		t.Fatal("no single-replica baseline")
	}
	return events, accounts, want, agg
}

// readAggregates reads through the gateway, for every workspace: the
// funnel (all, and per cohort and per segment it lists), the moments of
// truth, backtests at two horizons, and a replay of the active journey
// version run to its end (its id and times left out: they name when it
// ran). With several ingestion replicas stages refuses replays (it re-reads
// one ingestion log), so none is started.
func readAggregates(t *testing.T, s *suite, accounts []string) aggregates {
	t.Helper()
	out := aggregates{}
	call := func(method, path, key, body string, into proto.Message) {
		t.Helper()
		code, raw := s.rest(t, t.Context(), method, path, key, body)
		if code != http.StatusOK {
			t.Fatalf("%s %s = %d: %s", method, path, code, raw)
		}
		if err := protojson.Unmarshal(raw, into); err != nil {
			t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
	journeyOf := map[string]*stagesv1.AccountJourney{}
	for _, a := range accounts {
		ws := s.workspaceOf(a)
		if journeyOf[ws] != nil {
			continue
		}
		var j stagesv1.GetAccountJourneyResponse
		call(http.MethodGet, "/v1/accounts/"+a+"/journey", s.keysOf(ws).read, "", &j)
		if j.GetJourney().GetJourneyId() != "" {
			journeyOf[ws] = j.GetJourney()
		}
	}
	for _, ws := range s.workspaces() {
		k := s.keysOf(ws)
		all := &stagesv1.GetFunnelResponse{}
		call(http.MethodGet, "/v1/funnel", k.read, "", all)
		out[ws+" GET /v1/funnel"] = all
		if all.GetAccounts() == 0 || len(all.GetCohorts()) == 0 {
			t.Errorf("%s: the funnel is trivial (%d accounts, cohorts %v): comparing it would prove little", ws, all.GetAccounts(), all.GetCohorts())
		}
		for _, q := range append(prefixed("cohort=", all.GetCohorts()), prefixed("segment=", all.GetSegments())...) {
			f := &stagesv1.GetFunnelResponse{}
			call(http.MethodGet, "/v1/funnel?"+q, k.read, "", f)
			out[ws+" GET /v1/funnel?"+q] = f
		}
		m := &stagesv1.GetMomentsOfTruthResponse{}
		call(http.MethodGet, "/v1/moments-of-truth", k.read, "", m)
		out[ws+" GET /v1/moments-of-truth"] = m
		for _, horizon := range []int{0, 1} {
			b := &healthv1.BacktestResponse{}
			call(http.MethodPost, "/v1/health:backtest", k.read, fmt.Sprintf(`{"horizonDays": %d}`, horizon), b)
			out[fmt.Sprintf("%s POST /v1/health:backtest horizon %d", ws, horizon)] = b
		}
		j := journeyOf[ws]
		if j == nil {
			t.Fatalf("%s: no account journey to name the journey to replay", ws)
		}
		if len(s.replicaNames("ingestion")) > 1 {
			continue
		}
		start := &stagesv1.StartReplayResponse{}
		call(http.MethodPost, fmt.Sprintf("/v1/journeys/%s/versions/%d:replay", j.GetJourneyId(), j.GetVersion()), k.admin, "{}", start)
		rp := start.GetReplay()
		for rp.GetState() == stagesv1.ReplayState_REPLAY_STATE_RUNNING {
			if t.Context().Err() != nil {
				t.Fatalf("%s: replay %s did not finish", ws, rp.GetReplayId())
			}
			time.Sleep(20 * time.Millisecond) // waiting for a background job's progress, not for a deadline
			got := &stagesv1.GetReplayResponse{}
			call(http.MethodGet, "/v1/replays/"+url.PathEscape(rp.GetReplayId()), k.read, "", got)
			rp = got.GetReplay()
		}
		if rp.GetState() != stagesv1.ReplayState_REPLAY_STATE_DONE || rp.GetTotal() == 0 {
			t.Errorf("%s: replay = %v, want done over some records", ws, rp)
		}
		rp.ReplayId, rp.StartedAt, rp.FinishedAt = "", nil, nil
		out[ws+" replay of the active version"] = rp
	}
	for _, ws := range s.workspaces() {
		f := out[ws+" GET /v1/funnel"].(*stagesv1.GetFunnelResponse)
		medians := 0
		for _, st := range f.GetStages() {
			if st.GetMedianTimeInStage() != nil {
				medians++
			}
		}
		b := out[ws+" POST /v1/health:backtest horizon 1"].(*healthv1.BacktestResponse)
		rp, _ := out[ws+" replay of the active version"].(*stagesv1.Replay)
		t.Logf("%s: funnel of %d accounts, %d stages with a median time; backtest (1 day) %d renewed %d churned, AUC %.3f; replay over %d records",
			ws, f.GetAccounts(), medians, b.GetRenewed(), b.GetChurned(), b.GetAuc(), rp.GetTotal())
	}
	return out
}

// prefixed is each value as a query "name=value".
func prefixed(name string, values []string) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = name + url.QueryEscape(v)
	}
	return out
}

// compareAggregates requires every aggregate of got equal to want's; a
// replay is compared only where got has one (none is started with several
// ingestion replicas).
func compareAggregates(t *testing.T, want, got aggregates) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			if !strings.HasSuffix(k, "replay of the active version") {
				t.Errorf("%s: not read over replicas", k)
			}
			continue
		}
		if !proto.Equal(w, g) {
			t.Errorf("%s over replicas differs from one replica's:\nwant: %s\ngot:  %s", k, prototext.Format(w), prototext.Format(g))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: read over replicas only (e.g. a cohort one replica does not list)", k)
		}
	}
	t.Logf("%d aggregates equal to the single-replica run", len(got))
}
