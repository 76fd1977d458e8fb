package app

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/pkg/stream/streamtest"
)

// TestRunEndToEnd starts the real service (Run) against fake ingestion
// servers over loopback gRPC, one or two replicas (split by workspace, each
// with its own log), logs an event per workspace, and reads each account's
// journey back through the authenticated API; the first event installs the
// default journey.
func TestRunEndToEnd(t *testing.T) {
	for _, replicas := range []int{1, 2} {
		t.Run(strconv.Itoa(replicas)+" ingestion replicas", func(t *testing.T) { runEndToEnd(t, replicas) })
	}
}

func runEndToEnd(t *testing.T, replicas int) {
	dir := t.TempDir()
	keys, err := auth.LoadKeyring(filepath.Join(dir, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	svcKey, err := keys.Create("", auth.RoleService)
	if err != nil {
		t.Fatal(err)
	}
	const parts = 2
	// Workspace w<k> is written by ingestion replica k.
	var (
		logs  []*stream.Log
		addrs []string
		read  []string
	)
	for k := range replicas {
		ingLog, err := stream.OpenLog(storetest.Open(t), "ingestion", stream.LogOptions{Partitions: parts})
		if err != nil {
			t.Fatal(err)
		}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		g := grpc.NewServer()
		ingestionv1.RegisterIngestionServiceServer(g, &streamtest.Ingestion{Log: ingLog})
		served := make(chan struct{})
		go func() { _ = g.Serve(lis); close(served) }()
		defer func() { g.Stop(); <-served }()
		readKey, err := keys.Create("w"+strconv.Itoa(k), auth.RoleRead)
		if err != nil {
			t.Fatal(err)
		}
		logs, addrs, read = append(logs, ingLog), append(addrs, lis.Addr().String()), append(read, readKey)
	}

	cfg := Config{
		Server:        server.Config{Name: "stages", GRPCAddr: streamtest.FreeAddr(t), DataDir: dir, ServiceKey: svcKey, Partitions: parts},
		IngestionAddr: strings.Join(addrs, ","),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()

	for k, ingLog := range logs {
		ws := "w" + strconv.Itoa(k)
		ev := &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{
			Workspace: ws, AccountId: "acme", Type: ingestionv1.EventType_EVENT_TYPE_TRACK, UserId: "u1",
			Event: "demo_requested", MessageId: "m1", Timestamp: timestamppb.Now()}}}
		data, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ingLog.Append(ctx, stream.Partition(ws, "acme", parts), data); err != nil {
			t.Fatal(err)
		}
	}
	for k, readKey := range read {
		conn, err := server.Dial(cfg.Server.GRPCAddr, readKey)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := stagesv1.NewStagesServiceClient(conn)
		// Poll until the consumer has applied the event: this waits for a
		// separate server to catch up, not for a deadline of the code under test.
		var aj *stagesv1.AccountJourney
		for i := 0; i < 600 && aj == nil; i++ {
			resp, err := c.GetAccountJourney(ctx, &stagesv1.GetAccountJourneyRequest{AccountId: "acme"})
			switch status.Code(err) {
			case codes.OK:
				aj = resp.GetJourney()
			case codes.NotFound, codes.Unavailable:
				time.Sleep(20 * time.Millisecond)
			default:
				t.Fatal(err)
			}
		}
		if aj == nil {
			t.Fatalf("account of workspace w%d (ingestion replica %d) never placed", k, k)
		}
		if aj.GetStage() != "evaluation" || aj.GetJourneyId() != "default" || len(aj.GetHistory()) != 1 || aj.GetHistory()[0].GetTriggerMessageId() != "m1" {
			t.Fatalf("journey = %v", aj)
		}
		if _, err := c.ApplyJourney(ctx, &stagesv1.ApplyJourneyRequest{Yaml: "id: x\nstages: [{id: one}]\n"}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("read key applying a journey: err = %v, want PermissionDenied", err)
		}
	}
}

// TestRunRejectsBadReplica checks that an inconsistent replica setting
// stops the service before it consumes anything, naming the flag.
func TestRunRejectsBadReplica(t *testing.T) {
	tests := []struct {
		name              string
		replica, replicas int
		err               string
	}{
		{name: "index not below count", replica: 2, replicas: 2, err: "-replica: 2 is not between 0 and -replicas - 1 (1)"},
		{name: "more replicas than partitions", replica: 0, replicas: 3, err: "-replicas: 3 is not between 1 and -partitions (2)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{
				Server:        server.Config{Name: "stages", GRPCAddr: "127.0.0.1:0", DataDir: t.TempDir(), Partitions: 2, Replica: tc.replica, Replicas: tc.replicas},
				IngestionAddr: "127.0.0.1:1",
			}
			if err := Run(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Run = %v, want an error containing %q", err, tc.err)
			}
		})
	}
}
