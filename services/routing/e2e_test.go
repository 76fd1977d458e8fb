package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/stream/streamtest"
)

// TestWithIngestion runs the real ingestion and routing binaries: events
// ingested over gRPC reach routing through its ingestion consumer and become
// assignments, touches and handoffs.
func TestWithIngestion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs two binaries")
	}
	dir := t.TempDir()
	bins := map[string]string{".": filepath.Join(dir, "cairn-routing"), "../ingestion": filepath.Join(dir, "cairn-ingestion")}
	for src, out := range bins {
		build := exec.Command("go", "build", "-tags", testTags, "-o", out, src)
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			t.Skipf("cannot build %s: %v", src, err)
		}
	}
	keysFile := filepath.Join(dir, "keys.json")
	keys, err := auth.LoadKeyring(keysFile)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := keys.Create("ws", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	service, err := keys.Create("", auth.RoleService)
	if err != nil {
		t.Fatal(err)
	}

	ingestAddr := streamtest.FreeAddr(t)
	ing := exec.Command(bins["../ingestion"], "-grpc-addr", ingestAddr, "-metrics-addr", "", "-data", filepath.Join(dir, "ingestion"), "-keys", keysFile, "-partitions", "4")
	ing.Stderr = os.Stderr
	if err := ing.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ing.Process.Kill(); _ = ing.Wait() })

	routeAddr := streamtest.FreeAddr(t)
	rt := exec.Command(bins["."], "-grpc-addr", routeAddr, "-metrics-addr", "", "-data", filepath.Join(dir, "routing"), "-keys", keysFile, "-partitions", "4",
		"-ingestion-addr", ingestAddr, "-stages-addr", "", "-health-addr", "")
	rt.Env = append(os.Environ(), "CAIRN_SERVICE_KEY="+service, "CAIRN_LOG_LEVEL=warn")
	rt.Stderr = os.Stderr
	if err := rt.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Process.Kill(); _ = rt.Wait() })

	ingConn, routeConn := streamtest.Dial(t, ingestAddr), streamtest.Dial(t, routeAddr)
	streamtest.WaitServing(t, ingConn)
	streamtest.WaitServing(t, routeConn)
	ctx := streamtest.Bearer(admin)
	rc := routingv1.NewRoutingServiceClient(routeConn)
	for _, o := range []*routingv1.Owner{
		{OwnerId: "sam", Team: routingv1.Team_TEAM_SDR, Capacity: 10},
		{OwnerId: "cara", Team: routingv1.Team_TEAM_CSM},
		{OwnerId: "ian", Team: routingv1.Team_TEAM_IMPLEMENTATION},
	} {
		if _, err := rc.UpsertOwner(ctx, &routingv1.UpsertOwnerRequest{Owner: o}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []*routingv1.Pool{{PoolId: "sdr", OwnerIds: []string{"sam"}}, {PoolId: "impl", OwnerIds: []string{"ian"}}} {
		if _, err := rc.UpsertPool(ctx, &routingv1.UpsertPoolRequest{Pool: p}); err != nil {
			t.Fatal(err)
		}
	}
	yml := "fallback_pool: sdr\nrules:\n  - {name: kickoff, types: [closed_won], action: pool, pool: impl}\n"
	if _, err := rc.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Yaml: yml}); err != nil {
		t.Fatal(err)
	}

	ic := ingestionv1.NewIngestionServiceClient(ingConn)
	ingest := func(events ...*ingestionv1.Event) {
		t.Helper()
		r, err := ic.Ingest(ctx, &ingestionv1.IngestRequest{Events: events})
		if err != nil {
			t.Fatal(err)
		}
		for _, res := range r.GetResults() {
			if res.GetStatus() != ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED {
				t.Fatalf("event %d: %v", res.GetIndex(), res)
			}
		}
	}
	traits, _ := structpb.NewStruct(map[string]any{"email": "pat@acme.com", "segment": "smb"})
	group, _ := structpb.NewStruct(map[string]any{"name": "Acme", "domain": "acme.com"})
	ingest(
		&ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_IDENTIFY, UserId: "u1", Traits: traits},
		&ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_GROUP, UserId: "u1", GroupId: "acme", Traits: group},
		&ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, UserId: "u1", Event: "crm.mql"},
	)
	waitAssignments := func(want int, cond func([]*routingv1.Assignment) bool) []*routingv1.Assignment {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			r, err := rc.ListAssignments(ctx, &routingv1.ListAssignmentsRequest{Page: &commonv1.PageRequest{PageSize: 100}})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.GetAssignments()) == want && cond(r.GetAssignments()) {
				return r.GetAssignments()
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 30s: %v", r.GetAssignments())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	as := waitAssignments(1, func([]*routingv1.Assignment) bool { return true })
	if a := as[0]; a.GetType() != routingv1.HandoffType_HANDOFF_TYPE_MQL || a.GetOwnerId() != "sam" || a.GetLead().GetEmail() != "pat@acme.com" || a.GetAccountId() != "acme" {
		t.Fatalf("MQL assignment: %v", a)
	}

	ingest(
		&ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, UserId: "u1", Event: "crm.contacted"},
		&ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, UserId: "u1", Event: "crm.closed_won"},
	)
	as = waitAssignments(2, func(as []*routingv1.Assignment) bool {
		return as[0].GetState() == routingv1.AssignmentState_ASSIGNMENT_STATE_TOUCHED
	})
	if a := as[1]; a.GetType() != routingv1.HandoffType_HANDOFF_TYPE_CLOSED_WON || a.GetOwnerId() != "ian" || a.GetDecision().GetRule() != "kickoff" {
		t.Fatalf("closed-won assignment: %v", a)
	}
	if as[0].GetSla().GetMetAt() == nil {
		t.Fatalf("MQL SLA not met after crm.contacted: %v", as[0].GetSla())
	}
}
