package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
)

// scaleReplicas is how many replicas of stages and health the first scaled
// run starts; ingestion and routing stay single (docs/scaling.md says why).
const scaleReplicas = 2

// TestScaleOut runs the crash test's workload on one replica of each
// service, then on ingestion, several stages and health replicas and
// routing (two and two, then three and two), each replica owning the
// partitions p % replicas == its index and the downstream consumers reading
// each partition from its owner. Every
// account's journey, health and assignments, read from the replica that
// owns it, must equal the single-replica run; and each replica must hold
// only its own accounts.
func TestScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("suite-level test")
	}
	events, accounts, want := baseline(t, "single replica")

	for _, tc := range []struct{ stages, health int }{
		{scaleReplicas, scaleReplicas},
		// Unequal counts: health replica i owns partitions that come from
		// different stages replicas.
		{3, 2},
	} {
		t.Run(fmt.Sprintf("%d stages %d health", tc.stages, tc.health), func(t *testing.T) {
			s := newSuite(t)
			s.scale("stages", tc.stages)
			s.scale("health", tc.health)
			got := runWorkloadOn(t, s, events, accounts, nil)
			compare(t, fmt.Sprintf("with %d stages and %d health replicas", tc.stages, tc.health), want, got)
			checkSharded(t, s, accounts)
			s.start("gateway")
			checkGateway(t, s, accounts)
		})
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
					_, err = stagesv1.NewStagesServiceClient(s.conn(name, s.keys.read)).GetAccountJourney(ctx, &stagesv1.GetAccountJourneyRequest{AccountId: a})
				case "health":
					_, err = healthv1.NewHealthServiceClient(s.conn(name, s.keys.read)).GetAccountHealth(ctx, &healthv1.GetAccountHealthRequest{AccountId: a})
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
// and health (a non-owner would answer 404), each list paged across the
// replicas lists every account exactly once, and an aggregate that cannot
// be merged exactly is refused (501) rather than answered by one replica.
func checkGateway(t *testing.T, s *suite, accounts []string) {
	t.Helper()
	get := func(path string, into any) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+s.http+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+s.keys.read)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		if into != nil && resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
				t.Fatalf("GET %s: decode: %v", path, err)
			}
		}
		return resp.StatusCode
	}
	for _, a := range accounts {
		for _, path := range []string{"/v1/accounts/" + a + "/journey", "/v1/accounts/" + a + "/health"} {
			if code := get(path, nil); code != http.StatusOK {
				t.Errorf("GET %s = %d, want 200 from the owning replica", path, code)
			}
		}
	}
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
			if code := get(path+"?"+q.Encode(), &page); code != http.StatusOK {
				t.Fatalf("GET %s = %d", path, code)
			}
			for _, a := range page.Accounts {
				seen[a.AccountID]++
			}
			if token = page.Page.NextPageToken; token == "" {
				break
			}
		}
		for _, a := range accounts {
			if seen[a] != 1 {
				t.Errorf("%s lists %s %d times, want once", path, a, seen[a])
			}
		}
		if len(seen) != len(accounts) {
			t.Errorf("%s lists %d accounts, want %d", path, len(seen), len(accounts))
		}
	}
	if code := get("/v1/funnel", nil); code != http.StatusNotImplemented {
		t.Errorf("GET funnel over replicas = %d, want 501", code)
	}
}
