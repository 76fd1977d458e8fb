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
// read from the replica that owns it, must equal the single-replica run;
// and each replica must hold only its own accounts or workspaces.
func TestScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("suite-level test")
	}
	spread := func(s *suite) { s.spread(scaleWorkspaces...) }
	events, accounts, want := baselineOn(t, "single replica", spread)

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
// account of the workspace exactly once; an aggregate that cannot be
// merged exactly is refused (501) rather than answered by one replica;
// and an event sent through the REST API with each workspace's key is
// accepted (its ingestion replica refuses other workspaces).
func checkGateway(t *testing.T, s *suite, accounts []string) {
	t.Helper()
	call := func(method, path, key, body string, into any) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, "http://"+s.http+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		if into != nil && resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
				t.Fatalf("%s %s: decode: %v", method, path, err)
			}
		}
		return resp.StatusCode
	}
	get := func(path, key string, into any) int { t.Helper(); return call(http.MethodGet, path, key, "", into) }
	byWorkspace := map[string][]string{}
	for _, a := range accounts {
		key := s.keysOf(s.workspaceOf(a)).read
		byWorkspace[s.workspaceOf(a)] = append(byWorkspace[s.workspaceOf(a)], a)
		for _, path := range []string{"/v1/accounts/" + a + "/journey", "/v1/accounts/" + a + "/health", "/v1/assignments?accountId=" + a} {
			if code := get(path, key, nil); code != http.StatusOK {
				t.Errorf("GET %s = %d, want 200 from the owning replica", path, code)
			}
		}
		var timeline struct {
			Events []json.RawMessage `json:"events"`
		}
		if code := get("/v1/accounts/"+a+"/events", key, &timeline); code != http.StatusOK || len(timeline.Events) == 0 {
			t.Errorf("GET /v1/accounts/%s/events = %d with %d events, want 200 with the account's events", a, code, len(timeline.Events))
		}
	}
	for ws, want := range byWorkspace {
		key := s.keysOf(ws).read
		for _, path := range []string{"/v1/journey/accounts", "/v1/health/accounts"} {
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
	if len(s.replicaNames("stages")) > 1 {
		if code := get("/v1/funnel", s.keys.read, nil); code != http.StatusNotImplemented {
			t.Errorf("GET funnel over replicas = %d, want 501", code)
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
