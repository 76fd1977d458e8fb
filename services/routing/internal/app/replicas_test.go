package app

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/domain/logws"
	"github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/pkg/stream/streamtest"
)

// TestReplicasOwnWorkspaces runs two routing replicas in process, split by
// workspace, and checks at the gRPC level that each serves its own
// workspaces and refuses the other's with FailedPrecondition naming the
// owning replica, whether the workspace comes from the key or from the
// request (service key).
func TestReplicasOwnWorkspaces(t *testing.T) {
	dir := t.TempDir()
	keysPath := filepath.Join(dir, "keys.json")
	kr, err := auth.LoadKeyring(keysPath)
	if err != nil {
		t.Fatal(err)
	}
	const replicas = 2
	ws := [replicas]string{stream.WorkspaceOn("ws-", 0, replicas), stream.WorkspaceOn("ws-", 1, replicas)}
	var admin [replicas]string
	for k := range replicas {
		if admin[k], err = kr.Create(ws[k], auth.RoleAdmin); err != nil {
			t.Fatal(err)
		}
	}
	serviceTok, err := kr.Create("", auth.RoleService)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, replicas)
	var addrs [replicas]string
	for k := range replicas {
		addrs[k] = streamtest.FreeAddr(t)
		cfg := Config{Server: server.Config{
			Name: "routing", GRPCAddr: addrs[k], DataDir: filepath.Join(dir, "data-"+strconv.Itoa(k)), KeysFile: keysPath,
			Partitions: 8, Replica: k, Replicas: replicas,
		}}
		go func() { done <- Run(ctx, cfg) }()
	}
	t.Cleanup(func() {
		cancel()
		for range replicas {
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		}
	})
	owner := func(id string) *routingv1.UpsertOwnerRequest {
		return &routingv1.UpsertOwnerRequest{Owner: &routingv1.Owner{
			OwnerId: id, Name: id, Email: id + "@cairn.example", Team: routingv1.Team_TEAM_SDR, TimeZone: "UTC",
		}}
	}
	for k := range replicas {
		other := 1 - k
		conn := streamtest.Dial(t, addrs[k])
		streamtest.WaitServing(t, conn)
		c := routingv1.NewRoutingServiceClient(conn)
		name := fmt.Sprintf("replica %d", k)
		if _, err := c.UpsertOwner(streamtest.Bearer(admin[k]), owner("own")); err != nil {
			t.Fatalf("%s: own workspace UpsertOwner: %v", name, err)
		}
		if _, err := c.ListOwners(streamtest.Bearer(admin[k]), &routingv1.ListOwnersRequest{Page: &commonv1.PageRequest{PageSize: 10}}); err != nil {
			t.Fatalf("%s: own workspace ListOwners: %v", name, err)
		}
		for what, call := range map[string]func() error{
			"UpsertOwner with the other workspace's key": func() error {
				_, err := c.UpsertOwner(streamtest.Bearer(admin[other]), owner("foreign"))
				return err
			},
			"ListAssignments naming the other workspace": func() error {
				_, err := c.ListAssignments(streamtest.Bearer(serviceTok), &routingv1.ListAssignmentsRequest{Workspace: ws[other]})
				return err
			},
		} {
			err := call()
			if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), fmt.Sprintf("replica %d of 2", other)) {
				t.Errorf("%s: %s = %v, want FailedPrecondition naming replica %d", name, what, err, other)
			}
		}
	}
}

// TestOwnedSkipsOtherWorkspaces checks the consumers' filter: a routing
// replica applies only its own workspaces' records, from every upstream
// and of every kind.
func TestOwnedSkipsOtherWorkspaces(t *testing.T) {
	mine := func(ws string) bool { return ws == "mine" }
	ing := []*ingestionv1.LogRecord{
		{Offset: 1, Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{Workspace: "mine"}}},
		{Offset: 2, Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{Workspace: "theirs"}}},
		{Offset: 3, Kind: &ingestionv1.LogRecord_Tombstone{Tombstone: &commonv1.Tombstone{Workspace: "mine"}}},
		{Offset: 4, Kind: &ingestionv1.LogRecord_Tombstone{Tombstone: &commonv1.Tombstone{Workspace: "theirs"}}},
	}
	offsets := func(recs []*ingestionv1.LogRecord) []uint64 {
		var out []uint64
		for _, r := range recs {
			out = append(out, r.GetOffset())
		}
		return out
	}
	if got := offsets(logws.Owned(mine, ing, logws.Ingestion)); !slices.Equal(got, []uint64{1, 3}) {
		t.Errorf("ingestion records kept %v, want [1 3]", got)
	}
	if got := logws.Owned(nil, ing, logws.Ingestion); len(got) != len(ing) {
		t.Errorf("a single replica kept %d of %d records", len(got), len(ing))
	}
	st := []*stagesv1.LogRecord{
		{Offset: 1, Kind: &stagesv1.LogRecord_Transition{Transition: &stagesv1.Transition{Workspace: "theirs"}}},
		{Offset: 2, Kind: &stagesv1.LogRecord_Signal{Signal: &commonv1.Signal{Workspace: "mine"}}},
		{Offset: 3, Kind: &stagesv1.LogRecord_Tombstone{Tombstone: &commonv1.Tombstone{Workspace: "theirs"}}},
	}
	if got := logws.Owned(mine, st, logws.Stages); len(got) != 1 || got[0].GetOffset() != 2 {
		t.Errorf("stages records kept %v, want offset 2", got)
	}
}
